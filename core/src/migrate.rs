//! Opening a replica file: check the declared schema against the file,
//! then create or migrate everything in one local transaction.
//!
//! Every check runs before anything is written, so a refused change leaves
//! the file as it was. Allowed (additive): a new table; a new column that is
//! nullable or has a default. Refused with [`Error::SchemaChange`] naming
//! the table and column: a table or column the file has and the schema does
//! not (drop, rename), a changed type or nullability, an added NOT NULL
//! column without a default.
//!
//! Local formats (`PRAGMA user_version`):
//! - 1 (releases before the schema work): the engine table of `todos` was
//!   `todos` itself. Opening renames it to `_erth_rows_todos` (keeping rows,
//!   pending changes and cursors) and creates the view.
//! - 2: engine tables `_erth_rows_<table>`, a view per table
//!   ([`crate::schema::local`]).
//!
//! Every open also marks clean rows without a `_seq` (acknowledged by the
//! server under a release before purging) with `_seq` 0, and clears
//! tombstones that still hold user data (see
//! [`crate::merge`], rule 5) and marks them pending, so the next sync clears
//! them on the server as well.
//!
//! A column added on a replica that already pulled rows is *backfilled*:
//! those rows hold the column's default with the zero clock, while the
//! server may hold real values. The `backfill:<table>` state key records the
//! cursor at the upgrade and the new columns; the next sync re-pulls only
//! the rows up to that cursor whose new columns carry a clock
//! (`crate::sync`), not the whole table.

use crate::error::{Error, Result};
use crate::hlc::NodeId;
use crate::schema::local::{hidden_column_ddl, HIDDEN_COLUMN, LOCAL_PREFIX};
use crate::schema::{q, TableDef};
use crate::state;
use crate::store::Store;
use crate::value::{SqlValue, Statement};
use std::collections::HashMap;

/// One object of `sqlite_schema`.
struct Object {
    kind: String,
    name: String,
    sql: Option<String>,
}

/// A column as `PRAGMA table_xinfo` reports it.
struct Column {
    name: String,
    decl_type: String,
    not_null: bool,
}

fn change(table: &str, column: Option<&str>, reason: impl Into<String>) -> Error {
    Error::SchemaChange {
        table: table.to_owned(),
        column: column.map(str::to_owned),
        reason: reason.into(),
    }
}

async fn read_objects(store: &dyn Store) -> Result<Vec<Object>> {
    let rows = store
        .query(&Statement::plain(
            "SELECT \"type\", \"name\", \"sql\" FROM \"sqlite_schema\"",
        ))
        .await?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|r| match <[SqlValue; 3]>::try_from(r).ok()? {
            [SqlValue::Text(kind), SqlValue::Text(name), sql] => Some(Object {
                kind,
                name,
                sql: sql.as_str().map(str::to_owned),
            }),
            _ => None,
        })
        .collect())
}

async fn read_columns(store: &dyn Store, table: &str) -> Result<Vec<Column>> {
    let rows = store
        .query(&Statement::plain(format!(
            "PRAGMA table_xinfo({})",
            q(table)
        )))
        .await?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|r| {
            Some(Column {
                name: r.get(1)?.as_str()?.to_owned(),
                decl_type: r.get(2)?.as_str().unwrap_or_default().to_ascii_uppercase(),
                not_null: r.get(3)?.as_i64()? != 0,
            })
        })
        .collect())
}

/// Checks that `def` only adds to what `columns` (the file's table) has.
fn check_additive(def: &TableDef, columns: &[Column]) -> Result<()> {
    for col in columns
        .iter()
        .filter(|c| !crate::schema::is_system_column(&c.name))
    {
        let Some((_, declared)) = def.column(&col.name) else {
            return Err(change(
                &def.name,
                Some(&col.name),
                "the database has this column but the schema does not: dropping or renaming a column is not supported",
            ));
        };
        if declared.sql_type.sql() != col.decl_type {
            return Err(change(
                &def.name,
                Some(&col.name),
                format!(
                    "the column is {} in the database and {} in the schema: changing a type is not supported",
                    col.decl_type,
                    declared.sql_type.sql()
                ),
            ));
        }
        if declared.nullable == col.not_null {
            return Err(change(
                &def.name,
                Some(&col.name),
                "changing whether a column may be NULL is not supported",
            ));
        }
    }
    Ok(())
}

/// A pending backfill of `table`: rows with `_seq` in `(after, upto]` whose
/// `columns` carry a clock are pulled again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Backfill {
    pub upto: i64,
    pub after: i64,
    pub columns: Vec<String>,
}

impl Backfill {
    pub(crate) fn parse(text: &str) -> Option<Backfill> {
        let mut parts = text.splitn(3, ' ');
        Some(Backfill {
            upto: parts.next()?.parse().ok()?,
            after: parts.next()?.parse().ok()?,
            columns: parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    pub(crate) fn text(&self) -> String {
        format!("{} {} {}", self.upto, self.after, self.columns.join(","))
    }
}

/// The stage table of `def` (where a pull keeps rows until it has caught
/// up): created, or given the columns added since.
async fn stage_sql(
    store: &dyn Store,
    def: &TableDef,
    objects: &[Object],
) -> Result<Vec<Statement>> {
    let stage = def.stage_name();
    if !objects.iter().any(|o| o.kind == "table" && o.name == stage) {
        return Ok(vec![Statement::plain(def.create_table_sql_as(&stage))]);
    }
    let names: Vec<String> = read_columns(store, &stage)
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Ok(def
        .migration_sql(&stage, &names)?
        .into_iter()
        .map(Statement::plain)
        .collect())
}

/// Creates or migrates the replica's tables, views and bookkeeping for
/// `tables` (see the module docs). Nothing is written when a check fails.
/// Returns the session's fresh node id (another process sharing the file
/// may record its own right after).
pub(crate) async fn open_local(store: &dyn Store, tables: &[TableDef]) -> Result<NodeId> {
    let version = store
        .query(&Statement::plain("PRAGMA user_version"))
        .await?
        .rows
        .first()
        .and_then(|r| r.first())
        .and_then(SqlValue::as_i64)
        .unwrap_or(0);
    if version > state::LOCAL_SCHEMA_VERSION {
        return Err(Error::InvalidInput(format!(
            "this database was written by a newer Erth Sync (format {version}, this build reads {})",
            state::LOCAL_SCHEMA_VERSION
        )));
    }
    let objects = read_objects(store).await?;
    let has = |kind: &str, name: &str| objects.iter().any(|o| o.kind == kind && o.name == name);
    let kv: HashMap<String, String> = if has("table", "_erth_state") {
        state::read_state_in(store).await?
    } else {
        HashMap::new()
    };

    // Engine tables in the file: format 2 by prefix; format 1 by layout.
    let mut in_file: Vec<(String, String)> = Vec::new(); // (synced name, physical name)
    for o in objects.iter().filter(|o| o.kind == "table") {
        if let Some(name) = o.name.strip_prefix(LOCAL_PREFIX) {
            in_file.push((name.to_owned(), o.name.clone()));
        } else if version < 2
            && !o.name.starts_with("_erth")
            && !o.name.starts_with("sqlite_")
            && read_columns(store, &o.name)
                .await?
                .iter()
                .any(|c| c.name == "_clk_is_deleted")
        {
            in_file.push((o.name.clone(), o.name.clone()));
        }
    }
    if let Some((name, _)) = in_file
        .iter()
        .find(|(name, _)| !tables.iter().any(|t| &t.name == name))
    {
        let synced: Vec<&str> = in_file.iter().map(|(n, _)| n.as_str()).collect();
        return Err(change(
            name,
            None,
            format!(
                "the database syncs the tables {synced:?} but the schema does not declare {name}: open it with the schema it was created with (the CLI's --schema or ERTH_SCHEMA; Config::with_schema_json); dropping or renaming a synced table is not supported"
            ),
        ));
    }

    let node = NodeId::random();
    let mut stmts = vec![
        Statement::plain(state::CREATE),
        Statement::plain(state::CREATE_REJECTED),
        Statement::plain(state::CREATE_QUARANTINED),
        Statement::plain(crate::subscription::CREATE),
        Statement::plain(crate::subscription::CREATE_PARAMS),
        // A fresh node id on every open (see `crate::db`): two copies of one
        // file never issue the same clock.
        state::set(state::KEY_NODE, format!("{:016x}", node.0)),
        state::init(state::KEY_HLC, format!("{:016x}", 0)),
    ];
    for def in tables {
        let physical = in_file
            .iter()
            .find(|(name, _)| *name == def.name)
            .map(|(_, p)| p.clone());
        let local = def.local_name();
        let Some(physical) = physical else {
            if objects
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&def.name) && o.kind != "view")
            {
                return Err(change(
                    &def.name,
                    None,
                    "the database already has a table, index or trigger of that name that Erth Sync did not create",
                ));
            }
            stmts.push(Statement::plain(def.create_local_table_sql()));
            stmts.extend(stage_sql(store, def, &objects).await?);
            continue;
        };
        stmts.extend(stage_sql(store, def, &objects).await?);
        let columns = read_columns(store, &physical).await?;
        check_additive(def, &columns)?;
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        if physical != local {
            // Format 1: its indexes go with the old names; new ones follow.
            for what in ["seq", "pending", "live"] {
                stmts.push(Statement::plain(format!(
                    "DROP INDEX IF EXISTS {}",
                    q(&format!("{}__{what}", def.name))
                )));
            }
            stmts.push(Statement::plain(format!(
                "ALTER TABLE {} RENAME TO {}",
                q(&physical),
                q(&local)
            )));
        }
        let alters = def.migration_sql(&local, &names)?;
        let added: Vec<String> = def
            .columns
            .iter()
            .filter(|c| !names.contains(&c.name))
            .map(|c| c.name.clone())
            .collect();
        stmts.extend(alters.into_iter().map(Statement::plain));
        if !names.iter().any(|n| n == HIDDEN_COLUMN) {
            // Format 2 and older: no first pull is under way in them (each
            // applied its pulls whole from the stage).
            stmts.push(Statement::plain(format!(
                "ALTER TABLE {} ADD COLUMN {}",
                q(&local),
                hidden_column_ddl()
            )));
        }
        let cursor: i64 = kv
            .get(&state::cursor_key(&def.name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if !added.is_empty() && cursor > 0 {
            let key = state::backfill_key(&def.name);
            let mut backfill = kv
                .get(&key)
                .and_then(|v| Backfill::parse(v))
                .unwrap_or(Backfill {
                    upto: 0,
                    after: 0,
                    columns: Vec::new(),
                });
            backfill.upto = backfill.upto.max(cursor);
            backfill.after = 0;
            backfill.columns.extend(added);
            stmts.push(state::set(&key, backfill.text()));
        }
    }
    for def in tables {
        // Rows the server acknowledged under a release before purging
        // existed carry no `_seq`; a row becomes clean only when the server
        // acknowledges it, so a clean row without one is marked as the
        // server's (0: at a `_seq` not pulled), and a purge of it is not
        // taken for a row the server never had (`sync::purged`).
        stmts.push(Statement::plain(format!(
            "UPDATE {} SET \"_seq\" = 0 WHERE \"_seq\" IS NULL AND \"_dirty\" = 0",
            q(&def.local_name())
        )));
        // Tombstones that still hold user data (written by an earlier
        // release, or filled with a default by an added column) are cleared
        // and marked pending, so the next sync clears them on the server too.
        if let Some(holds) = def.holds_user_data_sql("") {
            stmts.push(Statement::plain(format!(
                "UPDATE {} SET {}, \"_dirty\" = \"_dirty\" + 1 WHERE \"is_deleted\" = 1 AND ({holds})",
                q(&def.local_name()),
                def.clear_user_data_sql().join(", ")
            )));
        }
        stmts.extend(def.old_index_sql().into_iter().map(Statement::plain));
        stmts.extend(def.local_index_sql().into_iter().map(Statement::plain));
        let wanted: Vec<String> = def.indexes.iter().map(|c| def.app_index_name(c)).collect();
        for o in objects.iter().filter(|o| {
            o.kind == "index"
                && o.name.starts_with(&def.app_index_prefix())
                && !wanted.contains(&o.name)
        }) {
            stmts.push(Statement::plain(format!(
                "DROP INDEX IF EXISTS {}",
                q(&o.name)
            )));
        }
        let view = def.view_sql();
        let current = view.iter().all(|(name, sql)| {
            objects
                .iter()
                .any(|o| &o.name == name && o.sql.as_deref() == Some(sql.as_str()))
        });
        if !current {
            // Dropping the view drops its triggers.
            stmts.push(Statement::plain(format!(
                "DROP VIEW IF EXISTS {}",
                q(&def.name)
            )));
            stmts.extend(view.into_iter().map(|(_, sql)| Statement::plain(sql)));
        }
    }
    if version != state::LOCAL_SCHEMA_VERSION {
        stmts.push(Statement::plain(format!(
            "PRAGMA user_version = {}",
            state::LOCAL_SCHEMA_VERSION
        )));
    }
    store.write(&stmts).await?;
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn backfill_state_round_trips() {
        let b = Backfill {
            upto: 42,
            after: 7,
            columns: vec!["a".into(), "b_c".into()],
        };
        assert_eq!(Backfill::parse(&b.text()), Some(b));
        assert_eq!(Backfill::parse("x 1 a"), None);
    }
}
