//! The schema format every face passes in, parsed and validated here once
//! (bindings forward the text unchanged):
//!
//! ```json
//! {"tables": {"notes": {
//!     "columns": {"title": {"type": "text", "notNull": true, "default": ""},
//!                 "n": {"type": "integer"}, "score": {"type": "real"},
//!                 "data": {"type": "blob"}},
//!     "indexes": [["title"]]}}}
//! ```
//!
//! Types are SQLite's (`text`, `integer`, `real`, `blob`; booleans are
//! integers 0/1, and `true`/`false` are accepted as integer defaults).
//! Columns keep the order they are written in. A blob default is written as
//! lowercase hex. Unknown keys are refused, so a typo (`"notnull"`) is an
//! error rather than a silently nullable column. Without a schema a replica
//! has the built-in `todos` table ([`super::todos_table`]).

use super::{invalid, ColumnDef, SqlType, TableDef};
use crate::error::Error;
use crate::value::SqlValue;
use serde_json::{Map, Value};

/// The app's synced tables, in declaration order.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub tables: Vec<TableDef>,
}

impl Default for Schema {
    /// The built-in `todos` table alone.
    fn default() -> Self {
        Schema {
            tables: vec![super::todos_table()],
        }
    }
}

fn only_keys(
    obj: &Map<String, Value>,
    allowed: &[&str],
    table: &str,
    column: Option<&str>,
) -> Result<(), Error> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(
            table,
            column,
            format!(
                "unknown key {:?} (allowed: {allowed:?})",
                crate::error::clip(k, 40)
            ),
        )),
        None => Ok(()),
    }
}

fn parse_type(text: &str) -> Option<SqlType> {
    Some(match text {
        "text" => SqlType::Text,
        "integer" => SqlType::Integer,
        "real" => SqlType::Real,
        "blob" => SqlType::Blob,
        _ => return None,
    })
}

fn type_name(t: SqlType) -> &'static str {
    match t {
        SqlType::Text => "text",
        SqlType::Integer => "integer",
        SqlType::Real => "real",
        SqlType::Blob => "blob",
    }
}

fn parse_default(t: SqlType, v: &Value) -> Option<SqlValue> {
    Some(match (t, v) {
        (_, Value::Null) => SqlValue::Null,
        (SqlType::Text, Value::String(s)) => SqlValue::Text(s.clone()),
        (SqlType::Integer, Value::Bool(b)) => SqlValue::Integer(i64::from(*b)),
        (SqlType::Integer, Value::Number(n)) => SqlValue::Integer(n.as_i64()?),
        (SqlType::Real, Value::Number(n)) => SqlValue::Real(n.as_f64()?),
        (SqlType::Blob, Value::String(hex)) => SqlValue::Blob(crate::value::from_hex(hex)?),
        _ => return None,
    })
}

fn default_json(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) => Value::from(*i),
        SqlValue::Real(r) => Value::from(*r),
        SqlValue::Text(t) => Value::from(t.as_str()),
        SqlValue::Blob(b) => Value::from(crate::value::to_hex(b)),
    }
}

impl Schema {
    /// Parses and validates the JSON text of a schema.
    ///
    /// Errors: [`Error::InvalidSchema`] naming the table and column at fault
    /// (bad JSON, unknown keys or types, bad names, defaults of the wrong
    /// type, indexes on unknown columns, a table declared twice).
    pub fn from_json(text: &str) -> Result<Schema, Error> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| invalid("(schema)", None, format!("not valid JSON: {e}")))?;
        let root = root
            .as_object()
            .ok_or_else(|| invalid("(schema)", None, "the schema must be a JSON object"))?;
        only_keys(root, &["tables"], "(schema)", None)?;
        let tables = root
            .get("tables")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("(schema)", None, "\"tables\" must be an object of tables"))?;
        let mut out: Vec<TableDef> = Vec::with_capacity(tables.len());
        for (name, spec) in tables {
            let def = parse_table(name, spec)?;
            if out.iter().any(|t| t.name.eq_ignore_ascii_case(name)) {
                return Err(invalid(name, None, "the table is declared twice"));
            }
            out.push(def);
        }
        if out.is_empty() {
            return Err(invalid("(schema)", None, "declare at least one table"));
        }
        Ok(Schema { tables: out })
    }

    /// The JSON text of this schema ([`Schema::from_json`] reads it back).
    pub fn to_json(&self) -> String {
        let mut tables = Map::new();
        for t in &self.tables {
            let mut cols = Map::new();
            for c in &t.columns {
                let mut col = Map::new();
                col.insert("type".into(), type_name(c.sql_type).into());
                if !c.nullable {
                    col.insert("notNull".into(), true.into());
                }
                if let Some(d) = &c.default {
                    col.insert("default".into(), default_json(d));
                }
                if c.encrypted {
                    col.insert("encrypted".into(), true.into());
                }
                cols.insert(c.name.clone(), Value::Object(col));
            }
            let mut table = Map::new();
            table.insert("columns".into(), Value::Object(cols));
            if !t.indexes.is_empty() {
                table.insert("indexes".into(), serde_json::json!(t.indexes));
            }
            tables.insert(t.name.clone(), Value::Object(table));
        }
        serde_json::json!({ "tables": tables }).to_string()
    }
}

fn parse_table(name: &str, spec: &Value) -> Result<TableDef, Error> {
    let spec = spec
        .as_object()
        .ok_or_else(|| invalid(name, None, "a table must be an object with \"columns\""))?;
    only_keys(spec, &["columns", "indexes"], name, None)?;
    let cols = spec
        .get("columns")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(name, None, "\"columns\" must be an object of columns"))?;
    let mut columns = Vec::with_capacity(cols.len());
    for (col, cspec) in cols {
        let c = cspec
            .as_object()
            .ok_or_else(|| invalid(name, Some(col), "a column must be an object with \"type\""))?;
        only_keys(
            c,
            &["type", "notNull", "default", "encrypted"],
            name,
            Some(col),
        )?;
        let sql_type = c
            .get("type")
            .and_then(Value::as_str)
            .and_then(parse_type)
            .ok_or_else(|| {
                invalid(
                    name,
                    Some(col),
                    "\"type\" must be one of \"text\", \"integer\", \"real\", \"blob\"",
                )
            })?;
        let not_null = match c.get("notNull") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    name,
                    Some(col),
                    "\"notNull\" must be true or false",
                ))
            }
        };
        let encrypted = match c.get("encrypted") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(invalid(
                    name,
                    Some(col),
                    "\"encrypted\" must be true or false",
                ))
            }
        };
        let default = match c.get("default") {
            None | Some(Value::Null) => None,
            Some(v) => Some(parse_default(sql_type, v).ok_or_else(|| {
                invalid(
                    name,
                    Some(col),
                    format!("the default does not fit type {}", type_name(sql_type)),
                )
            })?),
        };
        columns.push(ColumnDef {
            name: col.clone(),
            sql_type,
            nullable: !not_null,
            default,
            encrypted,
        });
    }
    let indexes = match spec.get("indexes") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|ix| {
                ix.as_array()
                    .and_then(|cols| {
                        cols.iter()
                            .map(|c| c.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| invalid(name, None, "each index is a list of column names"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid(name, None, "\"indexes\" must be a list of lists")),
    };
    TableDef::with_indexes(name, columns, indexes)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const NOTES: &str = r#"{"tables": {"notes": {"columns": {"title": {"type": "text", "notNull": true, "default": ""}, "n": {"type": "integer"}, "score": {"type": "real"}, "data": {"type": "blob", "default": "00ff"}, "done": {"type": "integer", "notNull": true, "default": false}}, "indexes": [["title"]]}, "todos": {"columns": {"title": {"type": "text", "notNull": true}, "is_completed": {"type": "integer", "notNull": true, "default": 0}}}}}"#;

    #[test]
    fn parses_the_documented_format_in_order() {
        let s = Schema::from_json(NOTES).unwrap();
        assert_eq!(s.tables.len(), 2);
        let notes = &s.tables[0];
        let names: Vec<&str> = notes.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["title", "n", "score", "data", "done"]);
        assert!(!notes.columns[0].nullable);
        assert_eq!(
            notes.columns[0].default,
            Some(SqlValue::Text(String::new()))
        );
        assert!(notes.columns[1].nullable);
        assert_eq!(notes.columns[3].default, Some(SqlValue::Blob(vec![0, 255])));
        assert_eq!(notes.columns[4].default, Some(SqlValue::Integer(0)));
        assert_eq!(notes.indexes, vec![vec!["title".to_string()]]);
        // The built-in todos table, declared by hand, is the same table.
        assert_eq!(s.tables[1], super::super::todos_table());
        assert_eq!(Schema::from_json(&s.to_json()).unwrap(), s);
    }

    #[test]
    fn mistakes_name_the_table_and_column() {
        let cases = [
            ("[]", "(schema)", None),
            ("{\"tables\": {}}", "(schema)", None),
            ("{\"tables\": {\"t\": {\"columns\": {\"a\": {\"type\": \"varchar\"}}}}}", "t", Some("a")),
            ("{\"tables\": {\"t\": {\"columns\": {\"a\": {\"type\": \"text\", \"notnull\": true}}}}}", "t", Some("a")),
            ("{\"tables\": {\"t\": {\"columns\": {\"a\": {\"type\": \"integer\", \"default\": \"x\"}}}}}", "t", Some("a")),
            ("{\"tables\": {\"t\": {\"columns\": {\"a\": {\"type\": \"text\"}}, \"indexes\": [[\"b\"]]}}}", "t", Some("b")),
            ("{\"tables\": {\"t\": {\"columns\": {\"a'; DROP TABLE x; --\": {\"type\": \"text\"}}}}}", "t", Some("a'; DROP TABLE x; --")),
            ("{\"tables\": {\"_erth_state\": {\"columns\": {}}}}", "_erth_state", None),
            ("{\"tables\": {\"t\": {\"columns\": {\"_clk_a\": {\"type\": \"text\"}}}}}", "t", Some("_clk_a")),
            ("{\"tables\": {\"t\": {\"columns\": {\"is_deleted\": {\"type\": \"integer\"}}}}}", "t", Some("is_deleted")),
            ("{\"tables\": {\"t\": {\"columns\": {}}, \"T\": {\"columns\": {}}}}", "T", None),
        ];
        for (json, table, column) in cases {
            match Schema::from_json(json) {
                Err(Error::InvalidSchema {
                    table: t,
                    column: c,
                    ..
                }) => {
                    assert_eq!(t, table, "{json}");
                    assert_eq!(c.as_deref(), column, "{json}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        let long = format!(
            "{{\"tables\": {{\"{}\": {{\"columns\": {{}}}}}}}}",
            "t".repeat(300)
        );
        assert!(matches!(
            Schema::from_json(&long),
            Err(Error::InvalidSchema { .. })
        ));
    }
}
