//! The conflict rules, twice: as SQL generated from a [`TableDef`] (what
//! replicas and the server run) and as a pure-Rust oracle (what property
//! tests check the SQL against).
//!
//! Rules, per row id:
//! 1. each user column: last writer wins by clock (`(hlc, node)`, compared as
//!    text); the column's clock becomes the greater one;
//! 2. `is_deleted` merges as max (deletes win; a row never comes back), its
//!    clock as max;
//! 3. `created_at` merges as min, `updated_at` as max;
//! 4. a merge that changes nothing writes nothing (the `WHERE` of the upsert),
//!    so it costs no `_seq`, no `_dirty` and no change event;
//! 5. a tombstone holds no user data: once the merged `is_deleted` is 1,
//!    every user column holds [`ColumnDef::cleared`] (NULL, or the type's
//!    zero where NOT NULL), while its clock still merges as max. Incoming
//!    tombstones are cleared before they are bound, and a stored tombstone
//!    that still holds data (written by an earlier release, or by a replica
//!    that does not declare a column) is cleared by the next merge that
//!    reaches it, which counts as a change.
//!
//! Every component is a join-semilattice and rule 5 is a function of the
//! merged `is_deleted` (which never goes back), so merging is commutative,
//! associative and idempotent. (Two different values with the *same* clock
//! would break that; clocks are unique per write by construction.)
//!
//! [`ColumnDef::cleared`]: crate::schema::ColumnDef::cleared

use crate::row::SyncRow;
use crate::schema::{q, TableDef};
use crate::value::{SqlValue, Statement};

/// Where the generated upsert runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// On the server, during push: every changed row takes a fresh `_seq`
    /// (`_erth_meta.seq` + a per-row offset bound as an argument).
    Server,
    /// On a replica, during pull: rows keep the server's `_seq`; the ids
    /// of the rows that changed come back.
    Replica,
    /// Into a replica's stage table, during pull (the rows wait there until
    /// the pull has caught up, `crate::sync`): rows keep the server's
    /// `_seq`; nothing comes back.
    Staged,
    /// Into a replica's engine table during its first pull of the table:
    /// as `Staged`, and a row it inserts is marked
    /// [`crate::schema::local::HIDDEN_COLUMN`] (out of the app's sight until
    /// the pull is applied; a row that exists keeps its mark).
    Hidden,
}

/// Name of the server's bookkeeping table.
pub const META_TABLE: &str = "_erth_meta";

/// One `INSERT ... ON CONFLICT DO UPDATE ... WHERE ...` for `rows` into the
/// table named like `def` (the server's tables); a replica's also says
/// `RETURNING "id"` (the rows it changed).
/// `seqs` are, per row, the offset added to the server counter (`Server`)
/// or the server's `_seq` (`Replica`).
pub fn upsert(def: &TableDef, rows: &[SyncRow], seqs: &[i64], target: Target) -> Statement {
    upsert_into(&def.name, def, rows, seqs, target)
}

/// [`upsert`] into `table` (a replica's engine table, [`TableDef::local_name`]).
pub fn upsert_into(
    table: &str,
    def: &TableDef,
    rows: &[SyncRow],
    seqs: &[i64],
    target: Target,
) -> Statement {
    debug_assert_eq!(rows.len(), seqs.len());
    let cols = def.row_columns();
    let placeholders = vec!["?"; cols.len() + 1].join(", ");
    // The rows to merge: bound values, each with its `_seq` (Replica) or its
    // offset from the server counter (Server). The server reads its counter
    // once per statement, joined to the rows, instead of once per row: a
    // per-row scalar subquery cost tursodb 132 ms of a 364 ms push of 10,000
    // rows (BENCHMARKS.md, 2026-11-30). `WHERE` keeps SQLite's parser from
    // reading `ON CONFLICT` as a join constraint (sqlite.org/lang_upsert.html,
    // "Parsing Ambiguity").
    let source = match target {
        Target::Server => {
            let tuples = vec![format!("({placeholders})"); rows.len()].join(", ");
            let picked: Vec<String> = (1..=cols.len())
                .map(|i| format!("\"_erth_rows\".\"column{i}\""))
                .collect();
            format!(
                "SELECT {}, \"_erth_base\".\"v\" + \"_erth_rows\".\"column{}\", 0 FROM (VALUES {tuples}) AS \"_erth_rows\", {} AS \"_erth_base\" WHERE \"_erth_base\".\"k\" = 'seq'",
                picked.join(", "),
                cols.len() + 1,
                q(META_TABLE)
            )
        }
        Target::Replica | Target::Staged => format!(
            "VALUES {}",
            vec![format!("({}, 0)", placeholders); rows.len()].join(", ")
        ),
        Target::Hidden => format!(
            "VALUES {}",
            vec![format!("({}, 0, 1)", placeholders); rows.len()].join(", ")
        ),
    };
    // A replica reports the ids it changed (change events). The server
    // returns nothing: the push learns its `_seq` range from the counter
    // (`crate::sync`), and tursodb spent about 200 ms of a 10,000-row push
    // producing `RETURNING` rows (measured 2026-11-30: 470 ms with them,
    // 265 ms without, same rows and batching).
    let hidden = if target == Target::Hidden {
        format!(", {}", q(crate::schema::local::HIDDEN_COLUMN))
    } else {
        String::new()
    };
    let sql = upsert_sql(table, def, &source, &hidden, target == Target::Replica);
    let mut args = Vec::with_capacity(rows.len() * (cols.len() + 1));
    for (row, seq) in rows.iter().zip(seqs) {
        if row.is_deleted {
            args.extend(row.clone().cleared(def).to_cells());
        } else {
            args.extend(row.to_cells());
        }
        args.push(SqlValue::Integer(*seq));
    }
    Statement::new(sql, args)
}

/// An upsert of every row of `source`, a table of the same row layout
/// (the rows a pull staged, `crate::sync`), into `table`, with their own
/// `_seq`; `RETURNING "id"` (the rows it changed) when `returning`.
pub fn upsert_from_table(table: &str, def: &TableDef, source: &str, returning: bool) -> Statement {
    let source = format!(
        "SELECT {}, \"_seq\", 0 FROM {} WHERE true",
        def.row_column_list(),
        q(source)
    );
    Statement::plain(upsert_sql(table, def, &source, "", returning))
}

/// `INSERT INTO table (...) <source> ON CONFLICT ("id") DO UPDATE SET <the
/// merge rules> WHERE <something would change>`, where `source` yields the
/// row columns, `_seq`, `_dirty` and the columns in `more` (`, "name"...`,
/// set on insert only).
fn upsert_sql(table: &str, def: &TableDef, source: &str, more: &str, returning: bool) -> String {
    let t = q(table);
    let ex = |c: &str| format!("excluded.{}", q(c));
    let old = |c: &str| format!("{t}.{}", q(c));

    let mut set = Vec::new();
    let mut newer = Vec::new();
    let deleted = format!("({} = 1 OR {} = 1)", ex("is_deleted"), old("is_deleted"));
    for c in &def.columns {
        let clk = format!("_clk_{}", c.name);
        set.push(format!(
            "{} = CASE WHEN {deleted} THEN {} WHEN {} > {} THEN {} ELSE {} END",
            q(&c.name),
            crate::schema::literal(&c.cleared()),
            ex(&clk),
            old(&clk),
            ex(&c.name),
            old(&c.name)
        ));
    }
    set.push(format!(
        "{0} = MAX({1}, {2})",
        q("is_deleted"),
        ex("is_deleted"),
        old("is_deleted")
    ));
    for m in def.mergeable() {
        let clk = format!("_clk_{m}");
        set.push(format!("{} = MAX({}, {})", q(&clk), ex(&clk), old(&clk)));
        newer.push(format!("{} > {}", ex(&clk), old(&clk)));
    }
    set.push(format!(
        "{} = MIN({}, {})",
        q("created_at"),
        ex("created_at"),
        old("created_at")
    ));
    set.push(format!(
        "{} = MAX({}, {})",
        q("updated_at"),
        ex("updated_at"),
        old("updated_at")
    ));
    set.push(format!("{} = {}", q("_seq"), ex("_seq")));
    newer.push(format!("{} > {}", ex("is_deleted"), old("is_deleted")));
    newer.push(format!("{} < {}", ex("created_at"), old("created_at")));
    newer.push(format!("{} > {}", ex("updated_at"), old("updated_at")));
    if let Some(holds) = def.holds_user_data_sql(&t) {
        newer.push(format!("({deleted} AND ({holds}))"));
    }

    let returning = if returning { " RETURNING \"id\"" } else { "" };
    format!(
        "INSERT INTO {t} ({}, \"_seq\", \"_dirty\"{more}) {source} ON CONFLICT (\"id\") DO UPDATE SET {} WHERE {}{returning}",
        def.row_column_list(),
        set.join(", "),
        newer.join(" OR "),
    )
}

/// The oracle: the row of table `def` after merging `incoming` into
/// `existing`, or `None` when the merge changes nothing (rule 4).
pub fn merge(def: &TableDef, existing: Option<&SyncRow>, incoming: &SyncRow) -> Option<SyncRow> {
    let Some(old) = existing else {
        return Some(if incoming.is_deleted {
            incoming.clone().cleared(def)
        } else {
            incoming.clone()
        });
    };
    let n = old.values.len();
    let mut out = old.clone();
    for i in 0..n {
        if incoming.clocks[i] > old.clocks[i] {
            out.values[i] = incoming.values[i].clone();
            out.clocks[i] = incoming.clocks[i];
        }
    }
    out.clocks[n] = out.clocks[n].max(incoming.clocks[n]);
    out.is_deleted |= incoming.is_deleted;
    out.created_at = out.created_at.min(incoming.created_at);
    out.updated_at = out.updated_at.max(incoming.updated_at);
    if out.is_deleted {
        out = out.cleared(def);
    }
    (out != *old).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::{NodeId, Timestamp};
    use crate::schema::todos_table;
    // On wasm these vectors run in Node through wasm-bindgen-test.
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn row(id: &str, title: &str, done: i64, deleted: bool, clocks: [u64; 3]) -> SyncRow {
        SyncRow {
            id: id.into(),
            values: vec![title.into(), SqlValue::Integer(done)],
            is_deleted: deleted,
            created_at: 10,
            updated_at: *clocks.iter().max().unwrap() as i64,
            clocks: clocks
                .map(|c| Timestamp {
                    hlc: c,
                    node: NodeId(1),
                })
                .to_vec(),
        }
    }

    #[test]
    fn concurrent_edits_of_different_columns_both_survive() {
        let base = row("a", "t", 0, false, [1, 1, 1]);
        let renamed = row("a", "renamed", 0, false, [5, 1, 1]);
        let done = row("a", "t", 1, false, [1, 6, 1]);
        let def = todos_table();
        let m = merge(
            &def,
            Some(&merge(&def, Some(&base), &renamed).unwrap()),
            &done,
        )
        .unwrap();
        assert_eq!(
            m.values,
            vec![SqlValue::from("renamed"), SqlValue::Integer(1)]
        );
    }

    #[test]
    fn delete_wins_over_newer_edit() {
        let def = todos_table();
        let deleted = row("a", "t", 0, true, [1, 1, 2]);
        let edited = row("a", "new", 1, false, [9, 9, 1]);
        let m = merge(&def, Some(&deleted), &edited).unwrap();
        assert!(m.is_deleted);
        let m2 = merge(&def, Some(&edited), &deleted).unwrap();
        assert!(m2.is_deleted);
        assert_eq!(m, m2);
        // The tombstone keeps the newest clocks but none of the content.
        assert_eq!(m.values, vec![SqlValue::from(""), SqlValue::Integer(0)]);
        assert_eq!(
            m.clocks,
            edited.clocks[..2]
                .iter()
                .chain(&deleted.clocks[2..])
                .copied()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_tombstone_that_still_holds_data_is_cleared_by_any_merge() {
        let def = todos_table();
        // Written by an earlier release: deleted, title kept.
        let stale = row("a", "secret", 1, true, [3, 3, 3]);
        let older = row("a", "x", 0, false, [1, 1, 1]);
        let m = merge(&def, Some(&stale), &older).expect("clearing is a change");
        assert_eq!(m.values, vec![SqlValue::from(""), SqlValue::Integer(0)]);
        assert_eq!(m.clocks, stale.clocks);
        assert!(merge(&def, Some(&m), &older).is_none());
        assert!(merge(&def, Some(&m), &stale).is_none());
    }

    /// A clock equal to the stored one does not win: the oracle keeps the
    /// stored value as the SQL does (`excluded._clk_c > t._clk_c`), and
    /// the merge changes nothing. (Clocks are unique per write, so equal
    /// clocks with different values only come from a broken replica; every
    /// replica must still decide the same way.)
    #[test]
    fn an_equal_clock_keeps_the_stored_value() {
        let def = todos_table();
        let stored = row("a", "stored", 0, false, [5, 5, 1]);
        let same_clocks = row("a", "other", 1, false, [5, 5, 1]);
        assert_eq!(merge(&def, Some(&stored), &same_clocks), None);
        // One column newer: only that one moves.
        let newer_done = row("a", "other", 1, false, [5, 6, 1]);
        let m = merge(&def, Some(&stored), &newer_done).unwrap();
        assert_eq!(
            m.values,
            vec![SqlValue::from("stored"), SqlValue::Integer(1)]
        );
    }

    #[test]
    fn no_op_merge_reports_nothing() {
        let def = todos_table();
        let a = row("a", "t", 0, false, [3, 3, 3]);
        assert!(merge(&def, Some(&a), &a).is_none());
        let older = row("a", "old", 1, false, [1, 2, 1]);
        assert!(merge(&def, Some(&a), &older).is_none());
    }

    #[test]
    fn generated_sql_has_one_tuple_per_row_and_binds_everything() {
        let def = todos_table();
        let id = crate::ids::new_id();
        let rows = vec![row(&id, "x", 0, false, [1, 1, 1]); 3];
        for target in [Target::Server, Target::Replica] {
            let st = upsert(&def, &rows, &[1, 2, 3], target);
            assert_eq!(st.sql.matches('?').count(), st.args.len());
            assert_eq!(st.args.len(), 3 * 10);
            assert!(st.sql.contains("ON CONFLICT (\"id\") DO UPDATE SET"));
        }
        assert!(upsert(&def, &rows, &[1, 2, 3], Target::Server)
            .sql
            .contains("_erth_meta"));
    }
}
