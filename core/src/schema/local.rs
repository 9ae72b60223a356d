//! What only replicas have (PowerSync's shape, see `ARCHITECTURE.md`):
//!
//! - the engine's table under a local name, `_erth_rows_<table>`, with the
//!   full row layout (clocks, tombstones, `_seq`, `_dirty`) and the
//!   [`HIDDEN_COLUMN`] mark of rows the replica's first pull of the table
//!   wrote and has not applied yet;
//! - a view under the table's own name showing live rows only: `id`, the
//!   user columns, `created_at`, `updated_at` ([`TableDef::visible_sql`]
//!   keeps a first pull's rows out of it until that pull is applied);
//! - `INSTEAD OF` triggers on the view that turn the app's `INSERT`,
//!   `UPDATE` and `DELETE` into clocked local changes: every changed column
//!   takes the transaction's clock (`erth_clock()`, or past a far-future
//!   clock `erth_clock_after(old)`), `DELETE` writes a tombstone, an `INSERT`
//!   without `id` gets a UUIDv7 (`erth_new_id`), and every changed row is
//!   marked pending (`_dirty + 1`). A tombstone's user columns are cleared
//!   in the same statement (see [`crate::merge`], rule 5). The functions are registered by the
//!   store ([`crate::store::sqlite`]) and bound to the transaction's clock
//!   by the engine ([`crate::sql`]).
//!
//! Values are checked after SQLite's type affinity has applied, as
//! [`super::ColumnDef::check`] checks rows from the server: a text in an
//! integer column, a value over [`super::MAX_VALUE_BYTES`] or an infinite
//! real aborts the statement with a message naming the column.
//!
//! `INSERT OR REPLACE`, `INSERT OR IGNORE` with an id that exists, and
//! upserts (SQLite refuses `ON CONFLICT` on a view) are refused: a row's id
//! is taken for good, even once deleted; change rows with `UPDATE`.
//!
//! A view has no column defaults, so the insert trigger applies the declared
//! default for a column given as NULL or not given (SQLite cannot tell the
//! two apart in a trigger): a nullable column with a default takes the default.

use super::{literal, q, SqlType, TableDef, MAX_VALUE_BYTES};

/// Prefix of the engine's local tables.
pub const LOCAL_PREFIX: &str = "_erth_rows_";

/// Prefix of the engine's local indexes and triggers.
const OBJECT_PREFIX: &str = "_erth_";

/// The engine table's column (1) marking a row that the replica's first
/// pull of the table wrote straight into the engine table. Such rows stay
/// out of the app's sight ([`TableDef::visible_sql`]) until that pull has
/// caught up with the server and is applied, which then only records
/// [`TableDef::released_key`] (a first pull of 1,000,000 rows applied in
/// one transaction held a browser tab's reads for 4.5 s; see the sync
/// engine's `stage`). The mark is meaningless afterwards and stays.
pub const HIDDEN_COLUMN: &str = "_erth_hidden";

/// The replica's state table (keys and values of its bookkeeping), which
/// every view reads ([`TableDef::visible_sql`]); created before the views.
pub const STATE_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS \"_erth_state\" (\"k\" TEXT PRIMARY KEY NOT NULL, \"v\" TEXT NOT NULL)";

/// [`HIDDEN_COLUMN`]'s definition, as created and as added to an older file.
pub fn hidden_column_ddl() -> String {
    format!("{} INTEGER NOT NULL DEFAULT 0", q(HIDDEN_COLUMN))
}

impl TableDef {
    /// The engine's table of this synced table on a replica.
    pub fn local_name(&self) -> String {
        format!("{LOCAL_PREFIX}{}", self.name)
    }

    /// The table where a pull keeps this table's rows until it has caught
    /// up with the server (see the sync engine's `stage`): the engine
    /// table's row layout, not visible to the app.
    pub fn stage_name(&self) -> String {
        format!("{OBJECT_PREFIX}stage_{}", self.name)
    }

    /// `CREATE TABLE IF NOT EXISTS` for the replica's engine table: the row
    /// layout and [`HIDDEN_COLUMN`].
    pub fn create_local_table_sql(&self) -> String {
        let sql = self.create_table_sql_as(&self.local_name());
        let layout = sql.strip_suffix(')').unwrap_or(&sql);
        format!("{layout}, {})", hidden_column_ddl())
    }

    /// The key in the replica's state (`_erth_state`) recording that the
    /// first pull of this table was applied: its rows marked
    /// [`HIDDEN_COLUMN`] are then visible.
    pub fn released_key(&self) -> String {
        format!("released:{}", self.name)
    }

    /// An SQL condition on the engine table's columns: the row is one the
    /// app sees (not one of an unapplied first pull's, [`HIDDEN_COLUMN`]).
    /// The `EXISTS` is constant within a statement: SQLite runs it once.
    pub fn visible_sql(&self) -> String {
        format!(
            "({} = 0 OR EXISTS (SELECT 1 FROM \"_erth_state\" WHERE \"k\" = {}))",
            q(HIDDEN_COLUMN),
            literal(&super::SqlValue::Text(self.released_key()))
        )
    }

    /// Indexes of the replica's engine table: `_seq`, pending rows in id
    /// order (the push keyset: finding 10 pending rows among 1,000,000 is an
    /// index range, not a table scan), live rows by age, and the app's.
    ///
    /// The live rows' index is partial (`WHERE "is_deleted" = 0`, the
    /// views' own condition) rather than led by `is_deleted`: without
    /// statistics SQLite takes an equality on an index's first column for
    /// selective, and read every query through the view (a 100-row range
    /// by id over 300,000 rows: 31 ms through that index, 0.16 ms on the
    /// primary key; measured 2026-12-07). [`TableDef::old_index_sql`] drops
    /// the index it replaces.
    pub fn local_index_sql(&self) -> Vec<String> {
        let t = q(&self.local_name());
        let ix = |what: &str| q(&format!("{OBJECT_PREFIX}ix_{}_{what}", self.name));
        let mut v = vec![
            format!("CREATE INDEX IF NOT EXISTS {} ON {t} (\"_seq\")", ix("seq")),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} (\"id\") WHERE \"_dirty\" > 0",
                ix("pending")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} (\"created_at\", \"id\") WHERE \"is_deleted\" = 0",
                ix("alive")
            ),
        ];
        for cols in &self.indexes {
            v.push(format!(
                "CREATE INDEX IF NOT EXISTS {} ON {t} ({})",
                q(&self.app_index_name(cols)),
                cols.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ")
            ));
        }
        v
    }

    /// Drops the engine indexes earlier formats had and this one replaced
    /// (format 2's live rows' index, led by `is_deleted`).
    pub fn old_index_sql(&self) -> Vec<String> {
        vec![format!(
            "DROP INDEX IF EXISTS {}",
            q(&format!("{OBJECT_PREFIX}ix_{}_live", self.name))
        )]
    }

    /// The local name of an app index (column names cannot hold `,` or `(`,
    /// so different column lists never share a name).
    pub fn app_index_name(&self, cols: &[String]) -> String {
        format!("{OBJECT_PREFIX}ix_{}({})", self.name, cols.join(","))
    }

    /// Prefix of this table's app index names (to find stale ones).
    pub fn app_index_prefix(&self) -> String {
        format!("{OBJECT_PREFIX}ix_{}(", self.name)
    }

    /// The view the app reads and writes, and its three `INSTEAD OF`
    /// triggers, as `(object name, CREATE statement)` pairs. The engine
    /// compares each statement with the one in `sqlite_schema` and recreates
    /// the objects only when one differs.
    pub fn view_sql(&self) -> Vec<(String, String)> {
        let view = q(&self.name);
        let t = q(&self.local_name());
        let user: Vec<String> = self.columns.iter().map(|c| q(&c.name)).collect();
        let mut shown = vec![q("id")];
        shown.extend(user.iter().cloned());
        shown.extend([q("created_at"), q("updated_at")]);
        let create_view = format!(
            "CREATE VIEW {view} AS SELECT {} FROM {t} WHERE \"is_deleted\" = 0 AND {}",
            shown.join(", "),
            self.visible_sql()
        );
        let trig = |what: &str| format!("{OBJECT_PREFIX}{what}_{}", self.name);
        let engine_only = format!(
            "SELECT RAISE(ABORT, 'created_at and updated_at of {} are set by Erth Sync') WHERE NEW.\"created_at\" IS NOT NULL OR NEW.\"updated_at\" IS NOT NULL;",
            self.name
        );

        // INSERT: every mergeable column takes the transaction's clock.
        let mut cols = vec![q("id")];
        let mut vals = vec!["erth_new_id(NEW.\"id\")".to_owned()];
        for c in &self.columns {
            cols.push(q(&c.name));
            vals.push(match &c.default {
                Some(d) => format!("coalesce(NEW.{}, {})", q(&c.name), literal(d)),
                None => format!("NEW.{}", q(&c.name)),
            });
        }
        cols.extend(["is_deleted", "created_at", "updated_at"].map(q));
        vals.extend(["0", "erth_now_ms()", "erth_now_ms()"].map(String::from));
        for m in self.mergeable() {
            cols.push(q(&format!("_clk_{m}")));
            vals.push("erth_clock()".into());
        }
        cols.extend(["_seq", "_dirty"].map(q));
        vals.extend(["NULL", "1"].map(String::from));
        // An existing id (live or a tombstone) is refused before the inner
        // INSERT: an outer `INSERT OR REPLACE` would otherwise impose REPLACE
        // on it (SQLite's rule for trigger bodies) and physically replace the
        // engine row, clocks and tombstone included.
        let exists = format!(
            "SELECT RAISE(ABORT, 'a row of {} with this id exists (deleted rows keep their id): use UPDATE') WHERE EXISTS (SELECT 1 FROM {t} WHERE \"id\" = NEW.\"id\");",
            self.name
        );
        let insert = format!(
            "CREATE TRIGGER {} INSTEAD OF INSERT ON {view} BEGIN {engine_only} {exists} INSERT INTO {t} ({}) VALUES ({}); {} END",
            q(&trig("insert")),
            cols.join(", "),
            vals.join(", "),
            self.value_checks("\"rowid\" = last_insert_rowid()")
        );

        // UPDATE: only columns whose value changed take a new clock; a row
        // where nothing changed is not written (and not marked pending).
        let fixed = format!(
            "SELECT RAISE(ABORT, 'id, created_at and updated_at of {} are set by Erth Sync') WHERE NEW.\"id\" IS NOT OLD.\"id\" OR NEW.\"created_at\" IS NOT OLD.\"created_at\" OR NEW.\"updated_at\" IS NOT OLD.\"updated_at\";",
            self.name
        );
        let update_body = if self.columns.is_empty() {
            String::new()
        } else {
            let mut sets = Vec::new();
            let mut changed = Vec::new();
            for c in &self.columns {
                let (col, clk) = (q(&c.name), q(&format!("_clk_{}", c.name)));
                let differs = format!("NEW.{col} IS NOT OLD.{col}");
                sets.push(format!("{col} = NEW.{col}"));
                sets.push(format!(
                    "{clk} = CASE WHEN {differs} THEN erth_clock_after({clk}) ELSE {clk} END"
                ));
                changed.push(differs);
            }
            sets.push("\"updated_at\" = MAX(\"updated_at\", erth_now_ms())".into());
            sets.push("\"_dirty\" = \"_dirty\" + 1".into());
            format!(
                "UPDATE {t} SET {} WHERE \"id\" = OLD.\"id\" AND ({}); {}",
                sets.join(", "),
                changed.join(" OR "),
                self.value_checks("\"id\" = OLD.\"id\"")
            )
        };
        let update = format!(
            "CREATE TRIGGER {} INSTEAD OF UPDATE ON {view} BEGIN {fixed} {update_body} END",
            q(&trig("update"))
        );

        // DELETE: a tombstone, clocked like any write, that keeps no user data.
        let clear: String = self
            .clear_user_data_sql()
            .iter()
            .map(|c| format!("{c}, "))
            .collect();
        let delete = format!(
            "CREATE TRIGGER {} INSTEAD OF DELETE ON {view} BEGIN UPDATE {t} SET {clear}\"is_deleted\" = 1, \"_clk_is_deleted\" = CASE WHEN \"_clk_is_deleted\" >= 'ffffffffffffffff' THEN \"_clk_is_deleted\" ELSE erth_clock_after(\"_clk_is_deleted\") END, \"updated_at\" = MAX(\"updated_at\", erth_now_ms()), \"_dirty\" = \"_dirty\" + 1 WHERE \"id\" = OLD.\"id\" AND \"is_deleted\" = 0; END",
            q(&trig("delete"))
        );
        vec![
            (self.name.clone(), create_view),
            (trig("insert"), insert),
            (trig("update"), update),
            (trig("delete"), delete),
        ]
    }

    /// A `SELECT` that aborts when the row matching `which` holds a value
    /// its column does not accept (after affinity), empty without columns.
    fn value_checks(&self, which: &str) -> String {
        let mut whens = Vec::new();
        for c in &self.columns {
            let col = q(&c.name);
            let (types, what) = match c.sql_type {
                SqlType::Text => ("'text'", "text"),
                SqlType::Integer => ("'integer'", "integer"),
                SqlType::Real => ("'real', 'integer'", "real"),
                SqlType::Blob => ("'blob'", "blob"),
            };
            whens.push(format!(
                "WHEN typeof({col}) NOT IN ({types}, 'null') THEN RAISE(ABORT, 'column {} of {} takes {what} values')",
                c.name, self.name
            ));
            match c.sql_type {
                SqlType::Text | SqlType::Blob => whens.push(format!(
                    "WHEN octet_length({col}) > {MAX_VALUE_BYTES} THEN RAISE(ABORT, 'column {} of {}: a value is over the {MAX_VALUE_BYTES}-byte limit')",
                    c.name, self.name
                )),
                SqlType::Real => whens.push(format!(
                    "WHEN abs({col}) > 1.7976931348623157e308 THEN RAISE(ABORT, 'column {} of {} takes finite numbers')",
                    c.name, self.name
                )),
                SqlType::Integer => {}
            }
        }
        if whens.is_empty() {
            return String::new();
        }
        format!(
            "SELECT CASE {} END FROM {} WHERE {which};",
            whens.join(" "),
            q(&self.local_name())
        )
    }
}

/// Whether `name` is one of the engine's own objects on a replica.
pub fn is_engine_object(name: &str) -> bool {
    name.get(..OBJECT_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(OBJECT_PREFIX))
}
