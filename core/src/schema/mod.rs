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
//!
//! - [`json`]: the schema format every face passes in (`{"tables": ...}`);
//! - [`local`]: what only replicas have: the engine table's local name, the
//!   view the app reads and writes, its `INSTEAD OF` triggers.

pub mod guard;
pub mod json;
pub mod local;

use crate::error::Error;
use crate::value::SqlValue;

/// The clock value of a column nobody has written: every real write wins over it.
pub const ZERO_CLOCK: &str = "0000000000000000-0000000000000000";

/// Largest text or blob value accepted (sqld refuses arguments over 5 MB).
pub const MAX_VALUE_BYTES: usize = 5_000_000;

/// Names the engine uses itself; user columns may not take them (compared
/// without regard to case, as SQLite compares identifiers).
const RESERVED: [&str; 6] = [
    "id",
    "is_deleted",
    "created_at",
    "updated_at",
    "_seq",
    "_dirty",
];

/// Whether `name` is a column of the row layout the engine owns (a system
/// column or a clock), as opposed to a user column.
pub fn is_system_column(name: &str) -> bool {
    RESERVED.contains(&name) || name.starts_with("_clk_") || name == local::HIDDEN_COLUMN
}

/// Prefixes of the engine's own objects; no table or column may start with one.
const ENGINE_PREFIXES: [&str; 3] = ["_erth", "_clk_", "sqlite_"];

/// Longest table or column name, in bytes (the engine adds prefixes such as
/// `_erth_rows_` and `_clk_` to it).
pub const MAX_NAME_LEN: usize = 64;

/// The SQLite type of a user column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Integer,
    Real,
    Blob,
}

impl SqlType {
    /// SQLite's name of the type (`TEXT`, `INTEGER`, `REAL`, `BLOB`).
    pub fn sql(self) -> &'static str {
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

/// The prefix of a sealed value of an encrypted column (see
/// `crate::encrypted`, which seals and opens them).
pub const SEALED_PREFIX: &str = "e1.";

/// One user column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    pub nullable: bool,
    /// Required for NOT NULL columns added by a later migration.
    pub default: Option<SqlValue>,
    /// Values travel sealed end to end: the server holds ciphertext
    /// (see [`crate::encrypted`]).
    pub encrypted: bool,
}

impl ColumnDef {
    pub fn new(name: &str, sql_type: SqlType) -> Self {
        ColumnDef {
            name: name.to_owned(),
            sql_type,
            nullable: false,
            default: None,
            encrypted: false,
        }
    }

    pub fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// Marks the column end-to-end encrypted (see [`crate::encrypted`]).
    pub fn encrypted(mut self) -> Self {
        self.encrypted = true;
        self
    }

    pub fn default_value(mut self, value: impl Into<SqlValue>) -> Self {
        self.default = Some(value.into());
        self
    }

    /// The value this column holds in a tombstone (a deleted row keeps no
    /// user data): NULL where the column is nullable, else the type's zero
    /// (`''`, `0`, `0.0`, an empty blob). Not the declared default: a
    /// default may differ between replicas (changing it is a local change,
    /// see `crate::migrate`), and every replica must clear to the same bytes.
    pub fn cleared(&self) -> SqlValue {
        match (self.nullable, self.sql_type) {
            (true, _) => SqlValue::Null,
            (false, SqlType::Text) => SqlValue::Text(String::new()),
            (false, SqlType::Integer) => SqlValue::Integer(0),
            (false, SqlType::Real) => SqlValue::Real(0.0),
            (false, SqlType::Blob) => SqlValue::Blob(Vec::new()),
        }
    }

    /// Checks `value` against this column's type, nullability and size
    /// limit; in an encrypted column, a sealed value (text) passes too
    /// (opened and checked by [`ColumnDef::check_plain`] after a pull).
    pub fn check(&self, value: &SqlValue) -> Result<(), String> {
        match value {
            SqlValue::Text(t) if self.encrypted && t.starts_with(SEALED_PREFIX) => {
                if t.len() > MAX_VALUE_BYTES * 4 / 3 + 64 {
                    return Err(format!(
                        "column {}: a sealed value over the limit",
                        self.name
                    ));
                }
                Ok(())
            }
            _ => self.check_plain(value),
        }
    }

    /// [`ColumnDef::check`] of a plain value.
    pub fn check_plain(&self, value: &SqlValue) -> Result<(), String> {
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

/// A synced table: its name, user columns in order, and the app's indexes
/// (each a list of user column names).
#[derive(Debug, Clone, PartialEq)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    pub indexes: Vec<Vec<String>>,
}

/// Quotes a validated identifier.
pub(crate) fn q(ident: &str) -> String {
    format!("\"{ident}\"")
}

/// Why `name` cannot name a table or column, if it cannot: identifier rules
/// (ASCII letters, digits and `_`, not starting with a digit), length, and
/// the engine's prefixes.
fn name_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let ident = matches!(chars.next(), Some('a'..='z' | 'A'..='Z' | '_'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ident {
        return Some("use ASCII letters, digits and _, starting with a letter or _".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "{} bytes is over the {MAX_NAME_LEN}-byte limit",
            name.len()
        ));
    }
    let lower = name.to_ascii_lowercase();
    if SQL_RESERVED.contains(&lower.as_str()) {
        return Some(format!(
            "{name} has a meaning of its own in the engine's SQL ({}: the upsert's new row, or a row's rowid), so rows of it would not merge; pick another name",
            SQL_RESERVED.join(", ")
        ));
    }
    ENGINE_PREFIXES
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| format!("names starting with {p} belong to the engine"))
}

/// Names that SQLite gives a meaning of their own inside the engine's
/// statements: `excluded` is the new row in an upsert (a table of that name
/// is the same row as the upsert's own on SQLite-based servers, so only its
/// first insert would land; tursodb cannot alias an upsert's target), and
/// `rowid`, `oid`, `_rowid_` name a row's rowid, which the views' triggers
/// and the change tracking read.
const SQL_RESERVED: [&str; 4] = ["excluded", "rowid", "oid", "_rowid_"];

/// An [`Error::InvalidSchema`] naming the table (and column) at fault,
/// clipped: the names may be hostile and long.
pub(crate) fn invalid(table: &str, column: Option<&str>, reason: impl Into<String>) -> Error {
    Error::InvalidSchema {
        table: crate::error::clip(table, 80),
        column: column.map(|c| crate::error::clip(c, 80)),
        reason: reason.into(),
    }
}

pub(crate) fn literal(value: &SqlValue) -> String {
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
    /// Validates and builds a table definition without app indexes.
    ///
    /// Errors: [`Error::InvalidSchema`] naming the table or column at fault.
    pub fn new(name: &str, columns: Vec<ColumnDef>) -> Result<Self, Error> {
        TableDef::with_indexes(name, columns, Vec::new())
    }

    /// Validates and builds a table definition with app indexes.
    ///
    /// Errors: [`Error::InvalidSchema`] naming the table or column at fault.
    pub fn with_indexes(
        name: &str,
        columns: Vec<ColumnDef>,
        indexes: Vec<Vec<String>>,
    ) -> Result<Self, Error> {
        let def = TableDef {
            name: name.to_owned(),
            columns,
            indexes,
        };
        def.validate()?;
        Ok(def)
    }

    /// Checks names, defaults and indexes (see [`TableDef::with_indexes`]).
    pub fn validate(&self) -> Result<(), Error> {
        let name = self.name.as_str();
        if let Some(why) = name_problem(name) {
            return Err(invalid(name, None, format!("bad table name: {why}")));
        }
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(why) = name_problem(&c.name) {
                return Err(invalid(
                    name,
                    Some(&c.name),
                    format!("bad column name: {why}"),
                ));
            }
            let lower = c.name.to_ascii_lowercase();
            if RESERVED.contains(&lower.as_str()) {
                return Err(invalid(
                    name,
                    Some(&c.name),
                    format!("{} is a system column (reserved: {RESERVED:?})", c.name),
                ));
            }
            if self.columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(invalid(name, Some(&c.name), "the column is declared twice"));
            }
            if let Some(d) = &c.default {
                c.check(d)
                    .map_err(|e| invalid(name, Some(&c.name), format!("bad default: {e}")))?;
            }
        }
        for index in &self.indexes {
            if index.is_empty() {
                return Err(invalid(name, None, "an index needs at least one column"));
            }
            for col in index {
                let known = self.columns.iter().any(|c| &c.name == col)
                    || ["id", "created_at", "updated_at"].contains(&col.as_str());
                if !known {
                    return Err(invalid(
                        name,
                        Some(col),
                        "an index names a column the table does not declare",
                    ));
                }
            }
        }
        Ok(())
    }

    /// `"a" IS NOT <cleared> OR ...` over the user columns of `table`
    /// (a qualifier such as `"t"`, or empty): true when a row still holds
    /// user data a tombstone must not keep ([`ColumnDef::cleared`]).
    /// `None` for a table without user columns.
    pub fn holds_user_data_sql(&self, table: &str) -> Option<String> {
        let prefix = if table.is_empty() {
            String::new()
        } else {
            format!("{table}.")
        };
        let parts: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("{prefix}{} IS NOT {}", q(&c.name), literal(&c.cleared())))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" OR "))
    }

    /// `"a" = <cleared>, ...` over the user columns (empty without columns).
    pub fn clear_user_data_sql(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| format!("{} = {}", q(&c.name), literal(&c.cleared())))
            .collect()
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

    /// `CREATE TABLE IF NOT EXISTS` for this table on the server.
    pub fn create_table_sql(&self) -> String {
        self.create_table_sql_as(&self.name)
    }

    /// `CREATE TABLE IF NOT EXISTS` with this table's row layout under
    /// `table` (the server uses the table's name, replicas its
    /// [`TableDef::local_name`]).
    pub fn create_table_sql_as(&self, table: &str) -> String {
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
            q(table),
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

    /// Indexes the server needs: `_seq` for keyset pulls, named with the
    /// engine's prefix (no app table can take that name). Servers
    /// bootstrapped by earlier releases named it `<table>__seq`, a name an
    /// app table could take: it is dropped when the schema is created or
    /// migrated.
    pub fn server_index_sql(&self) -> Vec<String> {
        vec![
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                q(&format!("_erth_seq_{}", self.name)),
                q(&self.name),
                q("_seq")
            ),
            format!("DROP INDEX IF EXISTS {}", q(&format!("{}__seq", self.name))),
        ]
    }

    /// `SELECT * ... LIMIT 0` on `table`: reads the existing column names.
    pub fn probe_columns_sql(&self, table: &str) -> String {
        format!("SELECT * FROM {} LIMIT 0", q(table))
    }

    /// Additive migration of `table`: `ALTER TABLE ADD COLUMN` for every
    /// user column (and its clock) missing from `existing`. Rows that exist
    /// take the column default with the zero clock, so every replica agrees
    /// and any real write wins over it.
    pub fn migration_sql(&self, table: &str, existing: &[String]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        for c in &self.columns {
            let clk = format!("_clk_{}", c.name);
            if !existing.contains(&c.name) {
                if !c.nullable && c.default.is_none() {
                    return Err(Error::SchemaChange {
                        table: self.name.clone(),
                        column: Some(c.name.clone()),
                        reason: "an added column must be nullable or have a default".into(),
                    });
                }
                out.push(format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    q(table),
                    self.column_ddl(c)
                ));
            }
            if !existing.contains(&clk) {
                out.push(format!(
                    "ALTER TABLE {} ADD COLUMN {} TEXT NOT NULL DEFAULT '{ZERO_CLOCK}'",
                    q(table),
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
        indexes: Vec::new(),
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
        assert!(ddl.starts_with("CREATE TABLE IF NOT EXISTS \"todos\" ("));
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
        let long = "x".repeat(MAX_NAME_LEN + 1);
        for name in [
            "",
            "todos; DROP TABLE x",
            "_erth",
            "_ERTH_x",
            "a\"b",
            "1abc",
            "sqlite_x",
            "na\u{e9}me",
            &long,
        ] {
            let e = TableDef::new(name, vec![]).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidSchema { column: None, .. }),
                "{name}: {e}"
            );
        }
        assert!(TableDef::new("Todos", vec![]).is_ok());
        assert!(TableDef::new(&"x".repeat(MAX_NAME_LEN), vec![]).is_ok());
        for col in [
            "id",
            "ID",
            "is_deleted",
            "_clk_x",
            "x y",
            "updated_at",
            "_seq",
            "_dirty",
            "a'b",
            "a;b",
        ] {
            assert!(
                TableDef::new("t", vec![ColumnDef::new(col, SqlType::Text)]).is_err(),
                "{col}"
            );
        }
        let dup = vec![
            ColumnDef::new("a", SqlType::Text),
            ColumnDef::new("A", SqlType::Integer),
        ];
        let e = TableDef::new("t", dup).unwrap_err();
        assert!(e.to_string().contains("column A"), "{e}");
        let bad_index = TableDef::with_indexes(
            "t",
            vec![ColumnDef::new("a", SqlType::Text)],
            vec![vec!["b".into()]],
        );
        assert!(bad_index.is_err());
    }

    #[test]
    fn names_with_a_meaning_in_the_engines_sql_are_refused() {
        for name in ["excluded", "EXCLUDED", "rowid", "oid", "_rowid_", "RowId"] {
            let e = TableDef::new(name, vec![]).unwrap_err();
            assert!(e.to_string().contains("meaning of its own"), "{name}: {e}");
            let e = TableDef::new("t", vec![ColumnDef::new(name, SqlType::Text)]).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidSchema { column: Some(c), .. } if c == name),
                "{name}: {e}"
            );
        }
        assert!(TableDef::new("excluded_items", vec![]).is_ok());
        assert!(TableDef::new("t", vec![ColumnDef::new("oids", SqlType::Text)]).is_ok());
        // The server's index takes the engine's prefix: no app table can be named so.
        let t = TableDef::new("a__seq", vec![]).unwrap();
        assert!(t.server_index_sql()[0].contains("\"_erth_seq_a__seq\""));
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
        assert!(t.migration_sql("todos", &existing).unwrap().is_empty());
        t.columns
            .push(ColumnDef::new("note", SqlType::Text).nullable());
        let sql = t.migration_sql("todos", &existing).unwrap();
        assert_eq!(sql.len(), 2);
        assert!(sql[0].contains("ADD COLUMN \"note\" TEXT"));
        assert!(sql[1].contains("ADD COLUMN \"_clk_note\""));
        t.columns.push(ColumnDef::new("must", SqlType::Text));
        let e = t.migration_sql("todos", &existing).unwrap_err();
        assert!(
            matches!(&e, Error::SchemaChange { column: Some(c), .. } if c == "must"),
            "{e}"
        );
    }

    #[test]
    fn text_defaults_are_quoted() {
        let c = ColumnDef::new("tag", SqlType::Text).default_value("it's");
        let t = TableDef::new("t", vec![c]).unwrap();
        assert!(t.create_table_sql().contains("DEFAULT 'it''s'"));
    }
}
