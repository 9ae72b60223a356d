//! The server's guard: triggers in plain SQL, installed on the server's
//! tables at bootstrap when a replica asks for them (`Config::server_guard`),
//! that refuse what no honest replica writes. With a token that may not
//! change the schema (so the triggers stay), a buggy or hostile client can
//! then do no more than honest clocked writes: edit and delete rows with
//! clocks the server's time allows. What they refuse, per synced table:
//!
//! - a row that breaks the layout: an id that is not a canonical UUIDv7, a
//!   clock that is not a clock, a value of the wrong type or over 5 MB, a
//!   flag other than 0 and 1, a negative timestamp;
//! - a clock further ahead of the server's own time than the drift bound
//!   (`max_clock_drift_ms`): `ffffffffffffffff-…` would freeze a column for
//!   good. Only clocks that change are checked, so a row already holding a
//!   far-future clock still takes honest edits of its other columns;
//! - a row going back: a clock, `_seq` or `is_deleted` lower than before
//!   (the merge only ever raises them), or a new id;
//! - physically deleting a row (a delete is a tombstone);
//!
//! and on `_erth_meta`: any change but the counter rising (`seq`), new keys,
//! and deletes. The server's time is `unixepoch('subsec')` (SQLite 3.42 and
//! later, libSQL, tursodb). Trigger names carry a version, so a later
//! release can install stricter ones beside them.

use super::{q, SqlType, TableDef, MAX_VALUE_BYTES};

/// Prefix of the guard's trigger names (version 1).
pub const GUARD_PREFIX: &str = "_erth_guard_v1_";

/// `CREATE TRIGGER IF NOT EXISTS` statements of `_erth_meta`'s guard.
pub fn meta_guard_sql(meta: &str) -> Vec<String> {
    let t = q(meta);
    let name = |what: &str| q(&format!("{GUARD_PREFIX}meta_{what}"));
    vec![
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} BEFORE INSERT ON {t} WHEN NEW.\"k\" NOT IN ('seq', 'schema_version', 'db_id') BEGIN SELECT RAISE(ABORT, 'erth guard: _erth_meta takes no new keys'); END",
            name("insert")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} BEFORE UPDATE ON {t} WHEN NEW.\"k\" IS NOT OLD.\"k\" OR (OLD.\"k\" = 'seq' AND NOT (NEW.\"v\" >= OLD.\"v\")) OR (OLD.\"k\" != 'seq' AND NEW.\"v\" IS NOT OLD.\"v\") BEGIN SELECT RAISE(ABORT, 'erth guard: only the counter of _erth_meta changes, and only up'); END",
            name("update")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} BEFORE DELETE ON {t} BEGIN SELECT RAISE(ABORT, 'erth guard: _erth_meta keeps its rows'); END",
            name("delete")
        ),
    ]
}

/// The text of the largest clock the server takes now: its time plus
/// `max_drift_ms`, counter and node at their maximum.
fn clock_bound(max_drift_ms: u64) -> String {
    format!(
        "printf('%016x-ffffffffffffffff', (CAST(unixepoch('subsec') * 1000 AS INTEGER) + {max_drift_ms}) * 65536 + 65535)"
    )
}

/// SQL true for a canonical lowercase text of 16 hex digits, `-`, 16 hex digits.
fn is_clock(expr: &str) -> String {
    let hex16 = "[0-9a-f]".repeat(16);
    format!("(typeof({expr}) = 'text' AND {expr} GLOB '{hex16}-{hex16}')")
}

/// SQL true for a canonical lowercase hyphenated UUIDv7 (RFC variant).
fn is_uuid7(expr: &str) -> String {
    let hex = |n: usize| "[0-9a-f]".repeat(n);
    format!(
        "(typeof({expr}) = 'text' AND {expr} GLOB '{}-{}-7{}-[89ab]{}-{}')",
        hex(8),
        hex(4),
        hex(3),
        hex(3),
        hex(12)
    )
}

impl TableDef {
    /// `CREATE TRIGGER IF NOT EXISTS` statements of this table's guard on
    /// the server (see the module docs), with the drift bound `max_drift_ms`.
    pub fn guard_sql(&self, max_drift_ms: u64) -> Vec<String> {
        let t = q(&self.name);
        let name = |what: &str| q(&format!("{GUARD_PREFIX}{}_{what}", self.name));
        let bound = clock_bound(max_drift_ms);
        let clocks: Vec<String> = self
            .mergeable()
            .map(|m| format!("NEW.{}", q(&format!("_clk_{m}"))))
            .collect();
        let layout = self.layout_checks();
        let mut insert = layout.clone();
        insert.extend(clocks.iter().map(|c| {
            format!("WHEN {c} > {bound} THEN RAISE(ABORT, 'erth guard: a clock is further ahead of the server''s time than the drift bound')")
        }));
        let mut update = layout;
        update.push(
            "WHEN NEW.\"id\" IS NOT OLD.\"id\" THEN RAISE(ABORT, 'erth guard: a row keeps its id')"
                .into(),
        );
        update.push("WHEN NEW.\"is_deleted\" < OLD.\"is_deleted\" THEN RAISE(ABORT, 'erth guard: a deleted row never comes back')".into());
        update.push("WHEN NEW.\"_seq\" IS NULL OR NEW.\"_seq\" < OLD.\"_seq\" THEN RAISE(ABORT, 'erth guard: _seq never goes back')".into());
        for c in &clocks {
            let old = c.replacen("NEW.", "OLD.", 1);
            update.push(format!(
                "WHEN {c} < {old} THEN RAISE(ABORT, 'erth guard: a clock never goes back')"
            ));
            update.push(format!(
                "WHEN {c} > {old} AND {c} > {bound} THEN RAISE(ABORT, 'erth guard: a clock is further ahead of the server''s time than the drift bound')"
            ));
        }
        vec![
            format!(
                "CREATE TRIGGER IF NOT EXISTS {} BEFORE INSERT ON {t} BEGIN SELECT CASE {} END; END",
                name("insert"),
                insert.join(" ")
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS {} BEFORE UPDATE ON {t} BEGIN SELECT CASE {} END; END",
                name("update"),
                update.join(" ")
            ),
            format!(
                "CREATE TRIGGER IF NOT EXISTS {} BEFORE DELETE ON {t} BEGIN SELECT RAISE(ABORT, 'erth guard: rows are never deleted (a delete is a tombstone)'); END",
                name("delete")
            ),
        ]
    }

    /// `WHEN <NEW breaks the layout> THEN RAISE(...)` arms.
    fn layout_checks(&self) -> Vec<String> {
        let raise = |why: &str| format!("RAISE(ABORT, 'erth guard: {why}')");
        let mut arms = vec![format!(
            "WHEN NOT {} THEN {}",
            is_uuid7("NEW.\"id\""),
            raise("the id is not a UUIDv7")
        )];
        for m in self.mergeable() {
            let c = format!("NEW.{}", q(&format!("_clk_{m}")));
            arms.push(format!(
                "WHEN NOT {} THEN {}",
                is_clock(&c),
                raise("a clock is not a clock")
            ));
        }
        for col in &self.columns {
            let c = format!("NEW.{}", q(&col.name));
            let plain = match col.sql_type {
                SqlType::Text => "'text'",
                SqlType::Integer => "'integer'",
                SqlType::Real => "'real', 'integer'",
                SqlType::Blob => "'blob'",
            };
            // A sealed value is text, whatever the column's type (a
            // tombstone's cleared value keeps the type).
            let types = if col.encrypted {
                format!("'text', {plain}")
            } else {
                plain.to_owned()
            };
            arms.push(format!(
                "WHEN typeof({c}) NOT IN ({types}, 'null') THEN {}",
                raise(&format!(
                    "column {} takes {} values",
                    col.name,
                    col.sql_type.sql()
                ))
            ));
            if col.encrypted {
                arms.push(format!(
                    "WHEN octet_length({c}) > {} THEN {}",
                    MAX_VALUE_BYTES * 4 / 3 + 64,
                    raise(&format!("a sealed value of {} is over the limit", col.name))
                ));
            } else if matches!(col.sql_type, SqlType::Text | SqlType::Blob) {
                arms.push(format!(
                    "WHEN octet_length({c}) > {MAX_VALUE_BYTES} THEN {}",
                    raise(&format!(
                        "a value of {} is over {MAX_VALUE_BYTES} bytes",
                        col.name
                    ))
                ));
            }
        }
        arms.push(format!(
            "WHEN NEW.\"is_deleted\" NOT IN (0, 1) OR typeof(NEW.\"created_at\") != 'integer' OR typeof(NEW.\"updated_at\") != 'integer' OR NEW.\"created_at\" < 0 OR NEW.\"updated_at\" < 0 THEN {}",
            raise("is_deleted, created_at or updated_at out of range")
        ));
        arms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::todos_table;
    use rusqlite::Connection;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const CLK: &str = "0000000000010000-0000000000000001";
    const ID: &str = "01900000-0000-7000-8000-000000000001";

    fn guarded() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        let t = todos_table();
        conn.execute_batch(&t.create_table_sql()).unwrap();
        for sql in t.guard_sql(3_600_000) {
            conn.execute_batch(&sql).unwrap();
        }
        conn.execute_batch(
            "CREATE TABLE _erth_meta (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL); \
             INSERT INTO _erth_meta VALUES ('seq', 5), ('db_id', 7);",
        )
        .unwrap();
        for sql in meta_guard_sql("_erth_meta") {
            conn.execute_batch(&sql).unwrap();
        }
        conn
    }

    fn insert(conn: &Connection, id: &str, title: &str, clk: &str) -> rusqlite::Result<usize> {
        conn.execute(
            "INSERT INTO todos (id, title, is_completed, is_deleted, created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted, _seq, _dirty) \
             VALUES (?1, ?2, 0, 0, 1, 1, ?3, ?3, ?3, 1, 0)",
            rusqlite::params![id, title, clk],
        )
    }

    #[test]
    fn honest_rows_pass_and_what_no_replica_writes_is_refused() {
        let conn = guarded();
        insert(&conn, ID, "ok", CLK).unwrap();
        // An honest merge: a newer clock, a higher _seq.
        let newer = "0000000000020000-0000000000000002";
        conn.execute(
            "UPDATE todos SET title = 'edit', _clk_title = ?1, _seq = 2 WHERE id = ?2",
            [newer, ID],
        )
        .unwrap();
        let refused = |sql: &str, why: &str| {
            let e = conn.execute_batch(sql).unwrap_err().to_string();
            assert!(e.contains(why), "{sql}: {e}");
        };
        refused(
            &format!("UPDATE todos SET _clk_title = 'ffffffffffffffff-0000000000000001', _seq = 3 WHERE id = '{ID}'"),
            "further ahead",
        );
        refused(
            &format!("UPDATE todos SET _clk_title = '{CLK}', _seq = 3 WHERE id = '{ID}'"),
            "never goes back",
        );
        refused(
            &format!("UPDATE todos SET _seq = 1 WHERE id = '{ID}'"),
            "_seq never goes back",
        );
        refused(
            &format!("DELETE FROM todos WHERE id = '{ID}'"),
            "never deleted",
        );
        refused(
            &format!("UPDATE todos SET is_completed = 'yes', _seq = 4 WHERE id = '{ID}'"),
            "takes INTEGER",
        );
        assert!(insert(&conn, "not-an-id", "x", CLK)
            .unwrap_err()
            .to_string()
            .contains("UUIDv7"));
        assert!(insert(
            &conn,
            "01900000-0000-7000-8000-000000000002",
            "x",
            "garbage"
        )
        .unwrap_err()
        .to_string()
        .contains("not a clock"));
        // A deleted row never comes back.
        conn.execute_batch(&format!(
            "UPDATE todos SET is_deleted = 1, title = '', _seq = 5 WHERE id = '{ID}'"
        ))
        .unwrap();
        refused(
            &format!("UPDATE todos SET is_deleted = 0, _seq = 6 WHERE id = '{ID}'"),
            "never comes back",
        );
        // _erth_meta: the counter rises (or stays), nothing else changes.
        conn.execute_batch("UPDATE _erth_meta SET v = v + 3 WHERE k = 'seq'")
            .unwrap();
        conn.execute_batch("UPDATE _erth_meta SET v = v WHERE k = 'seq'")
            .unwrap();
        refused("UPDATE _erth_meta SET v = 0 WHERE k = 'seq'", "only up");
        refused("UPDATE _erth_meta SET v = 1 WHERE k = 'db_id'", "only up");
        refused("DELETE FROM _erth_meta", "keeps its rows");
        refused("INSERT INTO _erth_meta VALUES ('other', 1)", "no new keys");
    }

    #[test]
    fn a_row_already_far_ahead_still_takes_edits_of_its_other_columns() {
        let conn = Connection::open_in_memory().unwrap();
        let t = todos_table();
        conn.execute_batch(&t.create_table_sql()).unwrap();
        // Written before the guard: the title's clock is far ahead.
        let far = "ffff000000000000-0000000000000001";
        conn.execute(
            "INSERT INTO todos (id, title, is_completed, is_deleted, created_at, updated_at, _clk_title, _clk_is_completed, _clk_is_deleted, _seq, _dirty) \
             VALUES (?1, 'old', 0, 0, 1, 1, ?2, ?3, ?3, 1, 0)",
            rusqlite::params![ID, far, CLK],
        )
        .unwrap();
        for sql in t.guard_sql(3_600_000) {
            conn.execute_batch(&sql).unwrap();
        }
        // Another column takes a new clock while the far one stays.
        conn.execute(
            "UPDATE todos SET is_completed = 1, _clk_is_completed = '0000000000020000-0000000000000002', _seq = 2 WHERE id = ?1",
            [ID],
        )
        .unwrap();
        // The far column itself can only move further ahead: refused.
        let e = conn
            .execute(
                "UPDATE todos SET title = 'new', _clk_title = 'ffff000000000001-0000000000000002', _seq = 3 WHERE id = ?1",
                [ID],
            )
            .unwrap_err();
        assert!(e.to_string().contains("further ahead"), "{e}");
    }
}
