//! [`ErthDb`]: one local replica, optionally synced. Every method that
//! touches the database or the network is async (Kotlin `suspend`, Swift
//! `async`, Python coroutines) and runs on tokio; calls from many
//! coroutines / tasks / threads at once are safe (the core serializes writes
//! and coalesces overlapping syncs). Each method forwards to the
//! [`erth_core::Database`] method of the same name.

use crate::error::{guard, guard_sync, ErthError};
use crate::events::{
    core_listener, rows_listener, ChangeListener, LiveQuery, LiveQueryListener, Subscription,
};
use crate::transaction::ErthWriteTransaction;
use crate::types::{
    ErthConfig, ExecuteResult, PurgeReport, QuarantinedRow, RejectedRow, Rows, SqlValue, Statement,
    SyncReport, SyncStatus, SyncSubscription, Todo,
};
use std::sync::Arc;

/// A local-first database: the app's tables (declared by the schema passed at
/// open, or the built-in `todos`), read and written with plain SQL or the todo
/// methods. Reads and writes hit the local file; only `sync()` talks to the
/// server.
#[derive(Debug, uniffi::Object)]
pub struct ErthDb {
    /// Dropped first: its thread has ended before the database closes.
    _auto_sync: erth_core::AutoSync,
    db: Arc<erth_core::Database>,
}

#[uniffi::export(async_runtime = "tokio")]
impl ErthDb {
    /// Opens (or creates) the database at `config.path`, creating or
    /// migrating the tables of `config.schema`, and starts auto-sync if
    /// `config.auto_sync` asks for it (it stops when the handle is closed).
    /// Fails with `DatabaseLocked` while another handle has the file open,
    /// `SchemaChange` for a schema that is not additive over the file's,
    /// `InvalidInput` for a malformed schema or URL.
    #[uniffi::constructor]
    pub async fn open(config: ErthConfig) -> Result<Arc<ErthDb>, ErthError> {
        let core = config.to_core()?;
        let db = Arc::new(guard(erth_core::Database::open_native(config.path, core)).await?);
        let auto_sync = guard_sync(|| Ok(erth_core::AutoSync::start(&db, None)?))?;
        Ok(Arc::new(ErthDb {
            _auto_sync: auto_sync,
            db,
        }))
    }

    /// Adds a todo and returns it (needs the built-in `todos` table).
    pub async fn add_todo(&self, title: String) -> Result<Todo, ErthError> {
        guard(self.db.add_todo(&title)).await
    }

    /// Live todos, newest first.
    pub async fn list_active_todos(&self) -> Result<Vec<Todo>, ErthError> {
        guard(self.db.list_active_todos()).await
    }

    /// The todo with that id; `NotFound` when unknown or deleted.
    pub async fn get_todo(&self, id: String) -> Result<Todo, ErthError> {
        guard(self.db.get_todo(&id)).await
    }

    /// Renames a todo and returns it; `NotFound` when unknown or deleted.
    pub async fn rename_todo(&self, id: String, title: String) -> Result<Todo, ErthError> {
        guard(self.db.rename_todo(&id, &title)).await
    }

    /// Marks a todo completed (or not) and returns it.
    pub async fn set_todo_completed(&self, id: String, completed: bool) -> Result<Todo, ErthError> {
        guard(self.db.set_todo_completed(&id, completed)).await
    }

    /// Deletes a todo; `false` when it was unknown or already deleted.
    pub async fn delete_todo(&self, id: String) -> Result<bool, ErthError> {
        guard(self.db.delete_todo(&id)).await
    }

    /// Runs one statement of the app's SQL with positional parameters (`?`,
    /// `?NNN`) as its own local transaction. Writes to a synced table (by its
    /// declared name) become local changes that the next `sync()` pushes; a
    /// `DELETE` there is a tombstone that syncs. `Sql` with SQLite's or the
    /// engine's message when the statement fails or is refused (DDL on a
    /// synced table, `BEGIN`, `ATTACH`, ...): nothing is changed.
    pub async fn execute(
        &self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> Result<ExecuteResult, ErthError> {
        guard(self.db.execute(&sql, &params)).await
    }

    /// Runs one read-only statement and returns its rows (`Sql` for a
    /// statement that writes: use `execute`).
    pub async fn query(&self, sql: String, params: Vec<SqlValue>) -> Result<Rows, ErthError> {
        guard(self.db.query(&sql, &params)).await
    }

    /// Runs `statements` as one local transaction: all commit or none (the
    /// first error rolls back and is returned). Returns each one's result.
    pub async fn transaction(
        &self,
        statements: Vec<Statement>,
    ) -> Result<Vec<ExecuteResult>, ErthError> {
        guard(self.db.transaction(&statements)).await
    }

    /// Opens an interactive write transaction: its reads see its own
    /// writes, and nothing else writes (nor reads its uncommitted rows)
    /// until it ends with `commit()` or `rollback()`; the host's
    /// `writeTransaction { }` / `write_transaction()` forms end it for you.
    /// Waits for another open transaction up to `lock_timeout_ms`, then
    /// `DatabaseLocked`.
    pub async fn write_transaction(&self) -> Result<Arc<ErthWriteTransaction>, ErthError> {
        let tx = guard(self.db.write_transaction()).await?;
        Ok(ErthWriteTransaction::new(tx))
    }

    /// Starts a live query: `listener` gets the rows of `sql` now (before
    /// this returns, unless a write transaction is open: then when it
    /// ends), then again after every committed change (local or
    /// pulled) to a table it reads, when the rows differ. Runs until the
    /// returned handle is stopped or dropped. `Sql` for bad SQL or a
    /// statement that writes.
    pub fn watch(
        &self,
        sql: String,
        params: Vec<SqlValue>,
        listener: Box<dyn LiveQueryListener>,
    ) -> Result<Arc<LiveQuery>, ErthError> {
        guard_sync(|| {
            let live = self.db.watch(&sql, &params, rows_listener(listener))?;
            Ok(Arc::new(LiveQuery::new(live)))
        })
    }

    /// Pushes local changes, then pulls remote ones. Overlapping calls
    /// share one sync. `NoRemote` without a server URL.
    pub async fn sync(&self) -> Result<SyncReport, ErthError> {
        guard(self.db.sync()).await
    }

    /// Returns once this replica has completed a sync (at once if one ever
    /// did, by any process sharing the file), so a fresh device shows its
    /// data rather than empty lists. It never times out by itself: offline
    /// it waits for a sync to complete (auto-sync, or `sync()`), so bound
    /// it with the app's own timeout (cancelling the call is safe).
    pub async fn wait_for_first_sync(&self) -> Result<(), ErthError> {
        guard(self.db.wait_for_first_sync()).await
    }

    /// Subscribes this device to the rows of `table` that `filter` (one SQL
    /// expression with `?` parameters bound to `params`, which may read
    /// other synced tables) selects: from then on the table pulls only its
    /// subscriptions' rows, and rows that leave them are evicted (never
    /// pushed as deletions). The same name again renews it (same filter
    /// and parameters) or replaces it. `ttl_ms`: it ends that many ms from
    /// now. A filter chooses what the device downloads; it is not a
    /// security boundary. `InvalidInput` for a refused filter or name.
    pub async fn add_subscription(
        &self,
        name: String,
        table: String,
        filter: String,
        params: Vec<SqlValue>,
        ttl_ms: Option<u64>,
    ) -> Result<(), ErthError> {
        guard(
            self.db
                .add_subscription(&name, &table, &filter, &params, ttl_ms),
        )
        .await
    }

    /// Ends a subscription (its rows leave at the next sync unless another
    /// subscription holds them); whether it existed.
    pub async fn remove_subscription(&self, name: String) -> Result<bool, ErthError> {
        guard(self.db.remove_subscription(&name)).await
    }

    /// This device's subscriptions, by name, each with whether its rows
    /// are on the device and how many its backfill pulled.
    pub async fn subscriptions(&self) -> Result<Vec<SyncSubscription>, ErthError> {
        guard(self.db.subscriptions()).await
    }

    /// Removes from the server the tombstones whose delete is more than
    /// `older_than_ms` ms old (`None`: 30 days; 0: all), in batches of
    /// 1,000 rows that syncs running meanwhile do not notice. A device
    /// offline for longer compares its ids with the server's at its next
    /// sync and drops the purged rows (its unpushed edits of them too:
    /// deletes win); none brings one back. Returns the rows removed per
    /// table. `NoRemote`, `Network`, `Auth`, `Server` (e.g. on a server
    /// with the write guard, a token that may not change the schema).
    pub async fn purge(&self, older_than_ms: Option<u64>) -> Result<PurgeReport, ErthError> {
        let ms = older_than_ms.unwrap_or(erth_core::purge::DEFAULT_PURGE_AGE_MS);
        guard(self.db.purge(ms)).await
    }

    /// Returns once the subscription's rows are on the device, syncing as
    /// needed; offline it keeps trying (bound it with the app's timeout).
    /// `NotFound` if there is no such subscription.
    pub async fn wait_for_subscription(&self, name: String) -> Result<(), ErthError> {
        guard(self.db.wait_for_subscription(&name)).await
    }

    /// Rows pulled from the server that this replica would not apply (they
    /// break the row layout: a wrong type, a bad id or clock), with why;
    /// the others synced. A row leaves the list when it arrives valid.
    pub async fn quarantined_rows(&self) -> Result<Vec<QuarantinedRow>, ErthError> {
        guard(self.db.quarantined_rows()).await
    }

    /// Empties the list of quarantined rows (they stay unapplied); how many.
    pub async fn forget_quarantined(&self) -> Result<u64, ErthError> {
        guard(self.db.forget_quarantined()).await
    }

    /// Pending changes, last sync, last error (its kind and the server's
    /// code), whether a sync runs, online, auto-sync, server URL, server
    /// columns this schema does not declare.
    pub async fn status(&self) -> Result<SyncStatus, ErthError> {
        guard(self.db.status()).await
    }

    /// The rows the server refused (set aside, still pending), with its
    /// code and message. A refused row is pushed again once it changes, or
    /// after `retry_rejected`.
    pub async fn rejected_rows(&self) -> Result<Vec<RejectedRow>, ErthError> {
        guard(self.db.rejected_rows()).await
    }

    /// Makes every refused row pending for the next sync again; how many.
    pub async fn retry_rejected(&self) -> Result<u64, ErthError> {
        guard(self.db.retry_rejected()).await
    }

    /// Drops the local changes of refused row `id` of `table` and takes the
    /// server's version (`NotFound` unless it is refused).
    pub async fn discard_rejected(&self, table: String, id: String) -> Result<(), ErthError> {
        guard(self.db.discard_rejected(&table, &id)).await
    }

    /// Replaces the token used by the next requests (`None` removes it).
    pub fn set_auth_token(&self, token: Option<String>) -> Result<(), ErthError> {
        guard_sync(|| {
            self.db.set_auth_token(token.as_deref());
            Ok(())
        })
    }

    /// Sets the server (or with `url = None` makes the database local-only).
    /// Changes made while local-only are pushed by the next sync. The
    /// encryption key is sent to `url` only if it has the origin (scheme,
    /// host, port) the key was given for; another server needs
    /// `set_remote_with_key`.
    pub fn set_remote(
        &self,
        url: Option<String>,
        auth_token: Option<String>,
    ) -> Result<(), ErthError> {
        guard_sync(|| {
            self.db
                .set_remote(url.as_deref(), auth_token.as_deref())
                .map_err(ErthError::from)
        })
    }

    /// `set_remote` with the encryption key of that server (`None`: none),
    /// sent to that origin only. `InvalidInput` for a key with a plain
    /// `http://` URL to another machine (the key never travels in clear
    /// text); nothing changes then.
    pub fn set_remote_with_key(
        &self,
        url: Option<String>,
        auth_token: Option<String>,
        encryption_key: Option<String>,
    ) -> Result<(), ErthError> {
        guard_sync(|| {
            self.db
                .set_remote_with_key(
                    url.as_deref(),
                    auth_token.as_deref(),
                    encryption_key.as_deref(),
                )
                .map_err(ErthError::from)
        })
    }

    /// Switches this database's network use off (`false`) or on: while
    /// off, `sync()` fails with `Network` at once and auto-sync waits;
    /// switched on, auto-sync syncs at once. Call it when the platform
    /// reports the network gone and back.
    pub fn set_online(&self, online: bool) -> Result<(), ErthError> {
        guard_sync(|| {
            self.db.set_online(online);
            Ok(())
        })
    }

    /// Calls `listener` after every committed change (local writes and
    /// pulled rows) until the returned subscription is unsubscribed or
    /// dropped.
    pub fn subscribe(
        &self,
        listener: Box<dyn ChangeListener>,
    ) -> Result<Arc<Subscription>, ErthError> {
        guard_sync(|| {
            let sub = self.db.subscribe(core_listener(listener));
            Ok(Arc::new(Subscription::new(sub)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AutoSyncOptions, ChangeEvent, ChangeOrigin};
    use std::sync::Mutex;

    /// Collects what a live query delivers.
    #[derive(Default)]
    struct RowsRecorder(Mutex<Vec<Rows>>);

    struct SharedRows(Arc<RowsRecorder>);

    impl LiveQueryListener for SharedRows {
        fn on_rows(&self, rows: Rows) -> Result<(), ErthError> {
            self.0 .0.lock().expect("recorder lock").push(rows);
            Ok(())
        }
    }

    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<ChangeEvent>>,
        fail: bool,
    }

    struct Shared(Arc<Recorder>);

    impl ChangeListener for Shared {
        fn on_change(&self, event: ChangeEvent) -> Result<(), ErthError> {
            self.0.events.lock().expect("recorder lock").push(event);
            if self.0.fail {
                Err(ErthError::Internal {
                    message: "listener exploded".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    fn config(dir: &tempfile::TempDir) -> ErthConfig {
        ErthConfig {
            path: dir.path().join("a.db").display().to_string(),
            url: None,
            auth_token: None,
            allow_insecure_http: false,
            schema: None,
            encryption_key: None,
            auto_sync: None,
            request_timeout_ms: None,
            sync_timeout_ms: None,
            lock_timeout_ms: None,
            column_keys: Vec::new(),
            file_key: None,
        }
    }

    const NOTES: &str = r#"{"tables": {"notes": {"columns": {
        "body": {"type": "text"}, "n": {"type": "integer"}, "data": {"type": "blob"}}}}}"#;

    #[tokio::test]
    async fn plain_sql_on_a_declared_table_and_a_live_query() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ErthDb::open(ErthConfig {
            schema: Some(NOTES.into()),
            ..config(&dir)
        })
        .await
        .expect("open");
        let seen = Arc::new(RowsRecorder::default());
        let live = db
            .watch(
                "SELECT body, n, data FROM notes WHERE n >= ? ORDER BY n".into(),
                vec![SqlValue::Integer(i64::MIN)],
                Box::new(SharedRows(seen.clone())),
            )
            .expect("watch");
        assert_eq!(live.tables(), vec!["notes".to_string()]);
        let big = (1i64 << 53) + 1;
        let out = db
            .transaction(vec![
                Statement::new(
                    "INSERT INTO notes (body, n, data) VALUES (?, ?, ?)",
                    vec!["".into(), i64::MIN.into(), vec![0u8, 255].into()],
                ),
                Statement::new(
                    "INSERT INTO notes (body, n) VALUES (?, ?)",
                    vec![SqlValue::Null, big.into()],
                ),
            ])
            .await
            .expect("transaction");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].rows_affected, 1);
        let rows = db
            .query(
                "SELECT body, n, data FROM notes ORDER BY n".into(),
                Vec::new(),
            )
            .await
            .expect("query");
        assert_eq!(rows.columns, vec!["body", "n", "data"]);
        assert_eq!(
            rows.rows,
            vec![
                vec!["".into(), i64::MIN.into(), vec![0u8, 255].into()],
                vec![SqlValue::Null, big.into(), SqlValue::Null],
            ]
        );
        let delivered = seen.0.lock().expect("lock").clone();
        assert_eq!(delivered.len(), 2, "first result, then one per commit");
        assert!(delivered[0].rows.is_empty());
        assert_eq!(delivered[1], rows);

        live.stop().expect("stop");
        assert!(!live.is_active());
        db.execute("DELETE FROM notes".into(), Vec::new())
            .await
            .expect("delete");
        assert_eq!(seen.0.lock().expect("lock").len(), 2, "no call after stop");
        assert!(matches!(
            db.query("DELETE FROM notes".into(), Vec::new()).await,
            Err(ErthError::Sql { .. })
        ));
        assert!(matches!(
            db.watch(
                "SELEC".into(),
                Vec::new(),
                Box::new(SharedRows(seen.clone()))
            ),
            Err(ErthError::Sql { .. })
        ));
    }

    #[tokio::test]
    async fn local_todo_lifecycle_and_typed_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ErthDb::open(config(&dir)).await.expect("open");
        let a = db.add_todo("milk".into()).await.expect("add");
        let b = db.add_todo("eggs".into()).await.expect("add");
        let renamed = db
            .rename_todo(a.id.clone(), "oat milk".into())
            .await
            .expect("rename");
        assert_eq!(renamed.title, "oat milk");
        assert!(
            db.set_todo_completed(b.id.clone(), true)
                .await
                .expect("complete")
                .is_completed
        );
        assert!(db.delete_todo(a.id.clone()).await.expect("delete"));
        assert!(!db.delete_todo(a.id.clone()).await.expect("delete again"));
        let list = db.list_active_todos().await.expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, b.id);
        assert!(matches!(
            db.get_todo(a.id.clone()).await,
            Err(ErthError::NotFound { .. })
        ));
        assert!(matches!(
            db.rename_todo(a.id, "x".into()).await,
            Err(ErthError::NotFound { .. })
        ));
        assert!(matches!(db.sync().await, Err(ErthError::NoRemote { .. })));
        let status = db.status().await.expect("status");
        assert_eq!(status.pending_changes, 2);
        assert_eq!(status.remote_url, None);
        assert!(matches!(
            db.set_remote(Some("ftp://nope".into()), None),
            Err(ErthError::InvalidInput { .. })
        ));
        // A key never goes over plain HTTP to another machine.
        assert!(matches!(
            db.set_remote_with_key(
                Some("http://db.example?x=1".into()),
                None,
                Some("k3y-s3cret".into())
            ),
            Err(ErthError::InvalidInput { .. })
        ));
        db.set_remote_with_key(
            Some("libsql://db.example?authToken=t0k3n".into()),
            None,
            Some("k3y-s3cret".into()),
        )
        .expect("set remote with key");
        let status = db.status().await.expect("status");
        assert_eq!(status.remote_url.as_deref(), Some("https://db.example"));
    }

    #[tokio::test]
    async fn auto_sync_and_the_network_switch_show_in_status() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ErthDb::open(ErthConfig {
            auto_sync: Some(AutoSyncOptions::default()),
            ..config(&dir)
        })
        .await
        .expect("open");
        let status = db.status().await.expect("status");
        assert!(status.auto_sync && status.online);
        db.set_online(false).expect("offline");
        assert!(!db.status().await.expect("status").online);
        assert!(matches!(db.sync().await, Err(ErthError::Network { .. })));
        db.set_online(true).expect("online");
        assert!(matches!(db.sync().await, Err(ErthError::NoRemote { .. })));
        // Closing the handle stops auto-sync and frees the file at once.
        drop(db);
        ErthDb::open(config(&dir))
            .await
            .expect("reopen after close");
    }

    /// A server that accepts connections and never answers costs one
    /// request timeout, the one the config sets.
    #[tokio::test]
    async fn a_server_that_never_answers_costs_the_configured_request_timeout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", silent.local_addr().expect("addr"));
        let db = ErthDb::open(ErthConfig {
            url: Some(url),
            request_timeout_ms: Some(300),
            ..config(&dir)
        })
        .await
        .expect("open");
        db.add_todo("kept locally".into()).await.expect("add");
        let started = std::time::Instant::now();
        let e = db.sync().await.expect_err("no answer");
        let took = started.elapsed();
        assert!(matches!(e, ErthError::Network { .. }), "{e:?}");
        assert!(
            took >= std::time::Duration::from_millis(250)
                && took < std::time::Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(db.status().await.expect("status").pending_changes, 1);
        drop(silent);
    }

    #[tokio::test]
    async fn a_second_handle_on_the_same_file_is_locked_out() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ErthDb::open(config(&dir)).await.expect("open");
        let second = ErthDb::open(config(&dir)).await;
        // It says the file is open in this process, and to share the handle.
        match &second {
            Err(ErthError::DatabaseLocked { message }) => {
                assert!(
                    message.contains("already open in this process"),
                    "{message}"
                );
                assert!(message.contains("share that handle"), "{message}");
                assert!(!message.contains("another process"), "{message}");
            }
            other => panic!("expected DatabaseLocked, got {other:?}"),
        }
        drop(first);
        ErthDb::open(config(&dir))
            .await
            .expect("reopen after close");
    }

    #[tokio::test]
    async fn failing_listeners_do_not_break_writes_or_other_listeners() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ErthDb::open(config(&dir)).await.expect("open");
        let failing = Arc::new(Recorder {
            fail: true,
            ..Recorder::default()
        });
        let good = Arc::new(Recorder::default());
        let _f = db
            .subscribe(Box::new(Shared(failing.clone())))
            .expect("subscribe");
        let sub = db
            .subscribe(Box::new(Shared(good.clone())))
            .expect("subscribe");
        let todo = db
            .add_todo("one".into())
            .await
            .expect("add despite listener");
        assert_eq!(failing.events.lock().expect("lock").len(), 1);
        let seen = good.events.lock().expect("lock").clone();
        assert_eq!(
            seen,
            vec![ChangeEvent {
                table: "todos".into(),
                ids: vec![todo.id],
                origin: ChangeOrigin::Local,
            }]
        );
        assert!(sub.is_active());
        sub.unsubscribe().expect("unsubscribe");
        sub.unsubscribe().expect("unsubscribe is idempotent");
        assert!(!sub.is_active());
        db.add_todo("two".into()).await.expect("add");
        assert_eq!(good.events.lock().expect("lock").len(), 1);
        assert_eq!(failing.events.lock().expect("lock").len(), 2);
    }
}
