//! The access rules for the app's own SQL on a replica: what an app
//! statement may do, decided while SQLite prepares it (the store's
//! authorizer calls [`check_access`] for every action it codes).
//!
//! Refused: DDL on a synced table's view or on the engine's objects
//! (`_erth_*`), an object of the app's own named like the engine's (a
//! trigger `_erth_x` on an app table would run as the engine: the rules
//! trust statements coded for `_erth_*` triggers), writes to the engine's tables, `ATTACH`/`DETACH`,
//! transaction control (`BEGIN`, `SAVEPOINT`: the engine owns
//! transactions), `PRAGMA`s that change settings, and calls of the engine's
//! functions outside its triggers. A leaf of the engine: the store imports
//! it, and it imports only the names of the engine's objects.

use crate::schema::local::is_engine_object;

/// What the authorizer asks about, in the engine's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access<'a> {
    Read(&'a str),
    /// `INSERT`, `UPDATE` or `DELETE` on a table or view.
    Write(&'a str),
    /// Creating, dropping or altering a table, view, index or trigger on this table.
    Schema(&'a str),
    /// Creating or dropping an index or trigger named `object` on `table`.
    SchemaObject {
        object: &'a str,
        table: &'a str,
    },
    Attach,
    Transaction,
    Pragma(&'a str, Option<&'a str>),
    Function(&'a str),
    Other,
}

/// Pragmas that take an argument but only read.
const READ_PRAGMAS: [&str; 11] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "function_list",
];

/// Whether an app statement may do `access`; `accessor` is the trigger or
/// view SQLite is coding it for (`None` at top level), `protected` the
/// synced tables' names. `Err` holds the reason the app is told.
pub fn check_access(
    access: Access<'_>,
    accessor: Option<&str>,
    protected: &[String],
) -> std::result::Result<(), String> {
    if accessor.is_some_and(is_engine_object) {
        // The engine's own triggers, run on the app's behalf.
        return Ok(());
    }
    let synced = |name: &str| protected.iter().any(|p| p.eq_ignore_ascii_case(name));
    match access {
        Access::Read(_) | Access::Other => Ok(()),
        Access::Write(t) if is_engine_object(t) => Err(format!(
            "{t} is the engine's own table: write to the synced table's name instead"
        )),
        Access::Write(_) => Ok(()),
        Access::Schema(t) if synced(t) || is_engine_object(t) => Err(format!(
            "{t} is synced by Erth Sync: change its shape through the schema passed at open (additive changes only), not with DDL"
        )),
        Access::Schema(_) => Ok(()),
        Access::SchemaObject { object, .. } if is_engine_object(object) => Err(format!(
            "{object}: names starting with _erth_ belong to Erth Sync; name your trigger or index otherwise"
        )),
        Access::SchemaObject { table, .. } => check_access(Access::Schema(table), None, protected),
        Access::Attach => Err("ATTACH and DETACH are not allowed on a replica".into()),
        Access::Transaction => Err(
            "BEGIN, COMMIT and SAVEPOINT are not allowed: every call is its own transaction; use transaction() to run several statements as one".into(),
        ),
        Access::Pragma(name, Some(_))
            if !READ_PRAGMAS.iter().any(|p| p.eq_ignore_ascii_case(name)) =>
        {
            Err(format!(
                "PRAGMA {name} with a value would change how the replica works; only reading pragmas are allowed"
            ))
        }
        Access::Pragma(..) => Ok(()),
        Access::Function(f) if f.to_ascii_lowercase().starts_with("erth_") => Err(format!(
            "{f}() belongs to Erth Sync's write triggers"
        )),
        Access::Function(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn access_rules() {
        let p = vec!["notes".to_string()];
        let ok = |a, by| check_access(a, by, &p).is_ok();
        assert!(ok(Access::Write("notes"), None));
        assert!(ok(Access::Write("my_local"), None));
        assert!(!ok(Access::Write("_erth_rows_notes"), None));
        assert!(!ok(Access::Write("_ERTH_state"), None));
        assert!(ok(
            Access::Write("_erth_rows_notes"),
            Some("_erth_insert_notes")
        ));
        assert!(!ok(Access::Write("_erth_rows_notes"), Some("my_trigger")));
        assert!(!ok(Access::Schema("notes"), None));
        assert!(!ok(Access::Schema("NOTES"), None));
        assert!(!ok(Access::Schema("_erth_rows_notes"), None));
        assert!(ok(Access::Schema("my_local"), None));
        let object = |object, table| Access::SchemaObject { object, table };
        assert!(ok(object("my_trigger", "my_local"), None));
        assert!(!ok(object("_erth_x", "my_local"), None));
        assert!(!ok(object("_ERTH_insert_notes", "my_local"), None));
        assert!(!ok(object("my_trigger", "notes"), None));
        assert!(!ok(object("my_trigger", "_erth_rows_notes"), None));
        assert!(!ok(Access::Attach, None));
        assert!(!ok(Access::Transaction, None));
        assert!(!ok(Access::Pragma("user_version", Some("9")), None));
        assert!(!ok(Access::Pragma("writable_schema", Some("1")), None));
        assert!(ok(Access::Pragma("user_version", None), None));
        assert!(ok(Access::Pragma("table_info", Some("notes")), None));
        assert!(!ok(Access::Function("erth_clock"), None));
        assert!(!ok(Access::Function("ERTH_NEW_ID"), Some("my_view")));
        assert!(ok(
            Access::Function("erth_clock"),
            Some("_erth_update_notes")
        ));
        assert!(ok(Access::Function("uuid7"), None));
        assert!(ok(Access::Read("_erth_rows_notes"), None));
    }
}
