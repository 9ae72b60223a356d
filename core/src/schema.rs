//! Declared tables: a [`TableDef`] lists the user columns; the engine adds the
//! system columns and generates every DDL statement from it.
//!
//! Row layout (the same on every replica and on the server):
//! `id`, user columns, `is_deleted`, `created_at`, `updated_at`,
//! `_clk_<col>` for every mergeable column (user columns and `is_deleted`),
//! `_seq` (server change sequence) and `_dirty` (local change counter).
//!
//! Table and column names are validated here, once; everything else in the
//! engine binds values as parameters.

use crate::value::SqlValue;

/// The clock value of a column nobody has written: every real write wins over it.
pub const ZERO_CLOCK: &str = "0000000000000000-0000000000000000";

/// Largest text or blob value accepted (sqld refuses arguments over 5 MB).
pub const MAX_VALUE_BYTES: usize = 5_000_000;

/// Names the engine uses itself; user columns may not take them.
const RESERVED: [&str; 4] = ["id", "is_deleted", "created_at", "updated_at"];

/// The SQLite type of a user column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Integer,
    Real,
    Blob,
}

impl SqlType {
    fn sql(self) -> &'static str {
        match self {
            SqlType::Text => "TEXT",
            SqlType::Integer => "INTEGER",
            SqlType::Real => "REAL",
            SqlType::Blob => "BLOB",
        }
    }

    /// Whether `value` may be stored in a column of this type.
    pub fn accepts(self, value: &SqlValue) -> bool {
        matches!(
            (self, value),
            (SqlType::Text, SqlValue::Text(_))
                | (SqlType::Integer, SqlValue::Integer(_))
                | (SqlType::Real, SqlValue::Real(_) | SqlValue::Integer(_))
                | (SqlType::Blob, SqlValue::Blob(_))
        )
    }
}

/// One user column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// Required for NOT NULL columns added by a later migration.
    pub default: Option<SqlValue>,
}

impl ColumnDef {
    pub fn new(name: &str, sql_type: SqlType) -> Self {
        ColumnDef {
            name: name.to_owned(),
            sql_type,
            nullable: false,
            default: None,
        }
    }

    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    pub fn default_value(mut self, value: impl Into<SqlValue>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// Checks `value` against this column's type, nullability and size limit.
    pub fn check(&self, value: &SqlValue) -> Result<(), String> {
        match value {
            SqlValue::Null if self.nullable => return Ok(()),
            SqlValue::Null => return Err(format!("column {} may not be NULL", self.name)),
            SqlValue::Text(t) if t.len() > MAX_VALUE_BYTES => {
                return Err(format!(
                    "column {}: {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
                    self.name,
                    t.len()
                ))
            }
            SqlValue::Blob(b) if b.len() > MAX_VALUE_BYTES => {
                return Err(format!(
                    "column {}: {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
                    self.name,
                    b.len()
                ))
            }
            SqlValue::Real(r) if !r.is_finite() => {
                return Err(format!("column {}: {r} is not a finite number", self.name))
            }
            _ => {}
        }
        if self.sql_type.accepts(value) {
            Ok(())
        } else {
            Err(format!(
                "column {} is {} but got {}",
                self.name,
                self.sql_type.sql(),
                value.type_name()
            ))
        }
    }
}

/// A synced table: its name and user columns, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
}

/// Quotes a validated identifier.
pub(crate) fn q(ident: &str) -> String {
    format!("\"{ident}\"")
}

fn valid_ident(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 48
}

fn literal(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(r) => format!("{r:?}"),
        SqlValue::Text(t) => format!("'{}'", t.replace('\'', "''")),
        SqlValue::Blob(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

impl TableDef {
    /// Validates and builds a table definition.
    pub fn new(name: &str, columns: Vec<ColumnDef>) -> Result<Self, String> {
        if !valid_ident(name) {
            return Err(format!("table name {name:?}: use lowercase letters, digits and _ (starting with a letter, at most 48)"));
        }
        for (i, c) in columns.iter().enumerate() {
            if !valid_ident(&c.name) || RESERVED.contains(&c.name.as_str()) {
                return Err(format!("column name {:?} in table {name}: use lowercase letters, digits and _, not one of {RESERVED:?}", c.name));
            }
            if columns[..i].iter().any(|o| o.name == c.name) {
                return Err(format!("column {} appears twice in table {name}", c.name));
            }
            if let Some(d) = &c.default {
                c.check(d).map_err(|e| format!("default of {e}"))?;
            }
        }
        Ok(TableDef {
            name: name.to_owned(),
            columns,
        })
    }

    /// The column with that name.
    pub fn column(&self, name: &str) -> Option<(usize, &ColumnDef)> {
        self.columns
            .iter()
            .enumerate()
            .find(|(_, c)| c.name == name)
    }

    /// Names of the mergeable columns: user columns, then `is_deleted`.
    pub fn mergeable(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .map(|c| c.name.as_str())
            .chain(["is_deleted"])
    }

    /// Every synced column in row order (without `_seq` and `_dirty`).
    pub fn row_columns(&self) -> Vec<String> {
        let mut cols = vec!["id".to_owned()];
        cols.extend(self.columns.iter().map(|c| c.name.clone()));
        cols.extend(["is_deleted", "created_at", "updated_at"].map(String::from));
        cols.extend(self.mergeable().map(|c| format!("_clk_{c}")));
        cols
    }

    /// `"id", "title", ...` for SELECT and INSERT lists.
    pub fn row_column_list(&self) -> String {
        self.row_columns()
            .iter()
            .map(|c| q(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `CREATE TABLE IF NOT EXISTS` for this table (same on server and replicas).
    pub fn create_table_sql(&self) -> String {
        let mut cols = vec![format!("{} TEXT PRIMARY KEY NOT NULL", q("id"))];
        for c in &self.columns {
            cols.push(self.column_ddl(c));
        }
        cols.push(format!("{} INTEGER NOT NULL DEFAULT 0", q("is_deleted")));
        cols.push(format!("{} INTEGER NOT NULL", q("created_at")));
        cols.push(format!("{} INTEGER NOT NULL", q("updated_at")));
        for m in self.mergeable() {
            cols.push(format!(
                "{} TEXT NOT NULL DEFAULT '{ZERO_CLOCK}'",
                q(&format!("_clk_{m}"))
            ));
        }
        cols.push(format!("{} INTEGER", q("_seq")));
        cols.push(format!("{} INTEGER NOT NULL DEFAULT 0", q("_dirty")));
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            q(&self.name),
            cols.join(", ")
        )
    }

    fn column_ddl(&self, c: &ColumnDef) -> String {
        let mut s = format!("{} {}", q(&c.name), c.sql_type.sql());
        if !c.nullable {
            s.push_str(" NOT NULL");
        }
        if let Some(d) = &c.default {
            s.push_str(" DEFAULT ");
            s.push_str(&literal(d));
        }
        s
    }

    /// Indexes every database needs: `_seq` for keyset pulls.
    pub fn server_index_sql(&self) -> Vec<String> {
        vec![format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
            q(&format!("{}__seq", self.name)),
            q(&self.name),
            q("_seq")
        )]
    }

    /// Indexes only replicas need: pending changes and live rows by age.
    pub fn local_index_sql(&self) -> Vec<String> {
        let mut v = self.server_index_sql();
        // Pending rows in id order (the push keyset): serves the filter and
        // the order together, so finding 10 pending rows among 1,000,000 is
        // an index range, not a table scan.
        v.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE {} > 0",
            q(&format!("{}__pending", self.name)),
            q(&self.name),
            q("id"),
            q("_dirty")
        ));
        v.push(format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({}, {}, {})",
            q(&format!("{}__live", self.name)),
            q(&self.name),
            q("is_deleted"),
            q("created_at"),
            q("id")
        ));
        v
    }

    /// `SELECT * ... LIMIT 0`: reads the existing column names.
    pub fn probe_columns_sql(&self) -> String {
        format!("SELECT * FROM {} LIMIT 0", q(&self.name))
    }

    /// Additive migration: `ALTER TABLE ADD COLUMN` for every user column
    /// (and its clock) missing from `existing`. New rows' values start at the
    /// column default with the zero clock, so every replica agrees.
    pub fn migration_sql(&self, existing: &[String]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for c in &self.columns {
            let clk = format!("_clk_{}", c.name);
            if !existing.contains(&c.name) {
                if !c.nullable && c.default.is_none() {
                    return Err(format!(
                        "column {} of table {} is NOT NULL without a default: an added column needs one",
                        c.name, self.name
                    ));
                }
                out.push(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    q(&self.name),
                    self.column_ddl(c)
                ));
            }
            if !existing.contains(&clk) {
                out.push(format!(
                    "ALTER TABLE {} ADD COLUMN {} TEXT NOT NULL DEFAULT '{ZERO_CLOCK}'",
                    q(&self.name),
                    q(&clk)
                ));
            }
        }
        Ok(out)
    }
}

/// The built-in `todos` table of the original design.
pub fn todos_table() -> TableDef {
    TableDef {
        name: "todos".into(),
        columns: vec![
            ColumnDef::new("title", SqlType::Text),
            ColumnDef::new("is_completed", SqlType::Integer).default_value(0),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn todos_ddl_has_the_row_layout() {
        let t = todos_table();
        assert_eq!(TableDef::new(&t.name, t.columns.clone()).unwrap(), t);
        let ddl = t.create_table_sql();
        for col in [
            "\"id\" TEXT PRIMARY KEY",
            "\"title\" TEXT NOT NULL",
            "\"is_completed\" INTEGER NOT NULL DEFAULT 0",
            "\"is_deleted\" INTEGER NOT NULL DEFAULT 0",
            "\"_clk_title\" TEXT NOT NULL",
            "\"_clk_is_deleted\"",
            "\"_seq\" INTEGER",
            "\"_dirty\"",
        ] {
            assert!(ddl.contains(col), "{col} missing from {ddl}");
        }
        assert_eq!(t.row_columns().len(), 9);
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in ["", "Todos", "todos; DROP TABLE x", "_erth", "a\"b", "1abc"] {
            assert!(TableDef::new(name, vec![]).is_err(), "{name}");
        }
        for col in ["id", "is_deleted", "_clk_x", "x y", "updated_at"] {
            assert!(
                TableDef::new("t", vec![ColumnDef::new(col, SqlType::Text)]).is_err(),
                "{col}"
            );
        }
        let dup = vec![
            ColumnDef::new("a", SqlType::Text),
            ColumnDef::new("a", SqlType::Integer),
        ];
        assert!(TableDef::new("t", dup).is_err());
    }

    #[test]
    fn values_are_checked_against_columns() {
        let title = ColumnDef::new("title", SqlType::Text);
        assert!(title.check(&"x".into()).is_ok());
        assert!(title.check(&SqlValue::Null).is_err());
        assert!(title.check(&SqlValue::Integer(1)).is_err());
        assert!(title
            .check(&SqlValue::Text("x".repeat(MAX_VALUE_BYTES + 1)))
            .is_err());
        let score = ColumnDef::new("score", SqlType::Real).nullable();
        assert!(score.check(&SqlValue::Null).is_ok());
        assert!(score.check(&SqlValue::Integer(3)).is_ok());
        assert!(score.check(&SqlValue::Real(f64::NAN)).is_err());
    }

    #[test]
    fn migration_adds_missing_columns_and_clocks() {
        let mut t = todos_table();
        let existing = t.row_columns();
        assert!(t.migration_sql(&existing).unwrap().is_empty());
        t.columns
            .push(ColumnDef::new("note", SqlType::Text).nullable());
        let sql = t.migration_sql(&existing).unwrap();
        assert_eq!(sql.len(), 2);
        assert!(sql[0].contains("ADD COLUMN \"note\" TEXT"));
        assert!(sql[1].contains("ADD COLUMN \"_clk_note\""));
        t.columns.push(ColumnDef::new("must", SqlType::Text));
        assert!(t.migration_sql(&existing).is_err());
    }

    #[test]
    fn text_defaults_are_quoted() {
        let c = ColumnDef::new("tag", SqlType::Text).default_value("it's");
        let t = TableDef::new("t", vec![c]).unwrap();
        assert!(t.create_table_sql().contains("DEFAULT 'it''s'"));
    }
}
