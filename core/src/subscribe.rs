//! The public calls of partial sync on [`Database`]: add, remove and list
//! subscriptions, and wait for one's first sync. What a subscription is,
//! and how the file keeps it, is [`crate::subscription`]; what a sync does
//! with them is `sync::subscribed`.

use crate::db::Database;
use crate::error::{Error, Result};
use crate::schema::local::LOCAL_PREFIX;
use crate::schema::q;
use crate::state;
use crate::subscription::{self as sub, Phase, Record, SyncSubscription};
use crate::value::SqlValue;

/// The longest a parameter of a filter may be (bytes), as a row's value.
const MAX_PARAM_BYTES: usize = 5 * 1024 * 1024;
/// The first pause of [`Database::wait_for_subscription`] while offline
/// (ms); it doubles up to [`WAIT_MAX_MS`].
const WAIT_FIRST_MS: u64 = 250;
const WAIT_MAX_MS: u64 = 5_000;

impl Database {
    /// Subscribes this device to the rows of `table` that `filter` selects
    /// (partial sync). `filter` is one SQL expression over the table's
    /// columns, with positional `?` parameters bound to `params`; it may
    /// read other synced tables (`list_id IN (SELECT id FROM lists WHERE
    /// owner = ?)`). It runs **on the server**, inside the pull's own
    /// statements, where a synced table is the engine's table: it holds
    /// tombstones (rows with `is_deleted = 1`, their values cleared).
    ///
    /// From its first subscription on, `table` is partial: it pulls the rows
    /// of its subscriptions only (all of them joined by `OR`), and nothing
    /// once it has none. The next sync backfills the new subscription's
    /// rows (paged and resumable like any pull, without pulling rows its
    /// ready subscriptions already brought); rows that no longer match any
    /// subscription are evicted from the device without a tombstone (never
    /// pushed as deletions) and come back when they match again. Rows with
    /// local changes not yet pushed stay until pushed. A filter is **not a
    /// security boundary**: a token that may read the table may read all of
    /// it.
    ///
    /// Adding a subscription under an existing `name` with the same table,
    /// filter and parameters renews its time to live; with another, it
    /// replaces it. `ttl_ms`: the subscription ends that many ms from now
    /// (its rows are evicted at the next sync after), or never (`None`).
    /// Auto-sync, if running, syncs soon.
    ///
    /// Errors: [`Error::InvalidSubscription`] for an empty or overlong name,
    /// a filter that is not one expression, names the engine's objects
    /// (`_erth…`, `sqlite_…`), does not prepare against the table on this
    /// replica, reads a table the server does not have (a local one) or
    /// an encrypted column (the server holds only its ciphertext), or whose
    /// parameters differ in count from `params` (see
    /// [`sub::check_filter`]); [`Error::InvalidInput`] for an undeclared
    /// table or an unusable parameter; [`Error::Storage`].
    pub async fn add_subscription(
        &self,
        name: &str,
        table: &str,
        filter: &str,
        params: &[SqlValue],
        ttl_ms: Option<u64>,
    ) -> Result<()> {
        let refuse = |reason: String| Error::InvalidSubscription {
            name: crate::error::clip(name, 200),
            reason,
        };
        if name.is_empty() || name.len() > sub::MAX_NAME_BYTES || name.chars().any(char::is_control)
        {
            return Err(refuse(format!(
                "a subscription's name is 1 to {} bytes, without control characters",
                sub::MAX_NAME_BYTES
            )));
        }
        self.table(table)?;
        let count = sub::check_filter(filter).map_err(refuse)?;
        if count != params.len() {
            return Err(refuse(format!(
                "the filter has {count} parameters and {} values were given",
                params.len()
            )));
        }
        check_params(params)?;
        let reads = self.filter_reads(table, filter).map_err(refuse)?;
        let turn = self.store.turn().await?;
        let [subs, values] = sub::select_all();
        let existing = sub::records(&turn.query(&subs).await?, &turn.query(&values).await?)
            .into_iter()
            .find(|r| r.name == name);
        let kv = state::read_state_in(&*turn).await?;
        let expires_ms = ttl_ms.map(|t| self.now_ms().saturating_add(t));
        let mut stmts = Vec::new();
        if let Some(old) = &existing {
            if old.table == table && old.filter == filter && old.params == params {
                let mut renewed = old.clone();
                renewed.expires_ms = expires_ms;
                turn.write(&sub::insert(&renewed)).await?;
                return Ok(());
            }
            stmts.push(state::set(&sub::sweep_key(&old.table), String::new()));
        }
        let leave = sub::leave_key(table);
        let mut phase = Phase::Pending;
        if !kv.contains_key(&leave) {
            // The table becomes partial. Its rows up to the cursor are all
            // on the device: the new subscription has its rows, and the
            // others leave by a sweep.
            let cursor: i64 = kv
                .get(&state::cursor_key(table))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            stmts.push(state::set(&leave, cursor.to_string()));
            if cursor > 0 {
                phase = Phase::Ready;
                stmts.push(state::set(&sub::sweep_key(table), String::new()));
            }
        }
        stmts.extend(sub::insert(&Record {
            name: name.to_owned(),
            table: table.to_owned(),
            filter: filter.to_owned(),
            params: params.to_vec(),
            reads,
            expires_ms,
            phase,
            after: 0,
            upto: 0,
            rows: 0,
        }));
        turn.write(&stmts).await?;
        drop(turn);
        self.sync_soon();
        Ok(())
    }

    /// Ends the subscription `name`: its rows that match no other
    /// subscription are evicted at the next sync (rows with local changes
    /// not yet pushed stay until pushed). Returns whether it existed.
    ///
    /// Errors: [`Error::Storage`].
    pub async fn remove_subscription(&self, name: &str) -> Result<bool> {
        let turn = self.store.turn().await?;
        let [subs, values] = sub::select_all();
        let Some(old) = sub::records(&turn.query(&subs).await?, &turn.query(&values).await?)
            .into_iter()
            .find(|r| r.name == name)
        else {
            return Ok(false);
        };
        let mut stmts = sub::delete(name);
        stmts.push(state::set(&sub::sweep_key(&old.table), String::new()));
        turn.write(&stmts).await?;
        drop(turn);
        self.sync_soon();
        Ok(true)
    }

    /// Every subscription of this device, by name.
    ///
    /// Errors: [`Error::Storage`].
    pub async fn subscriptions(&self) -> Result<Vec<SyncSubscription>> {
        let turn = self.store.turn().await?;
        let [subs, values] = sub::select_all();
        Ok(
            sub::records(&turn.query(&subs).await?, &turn.query(&values).await?)
                .iter()
                .map(Record::public)
                .collect(),
        )
    }

    /// Waits until the subscription `name`'s rows are on the device (its
    /// first backfill completed and was applied), syncing as needed: at once
    /// if it is ready; else it runs [`Database::sync`] (joining one that
    /// runs) until it is. While the network is off or unreachable it keeps
    /// trying, pausing 250 ms doubling to 5 s (and so never fails for being
    /// offline: bound it with the app's timeout). A subscription added
    /// before, during or after a sync, or offline, is waited for alike.
    ///
    /// Errors: [`Error::UnknownSubscription`] when there is no such
    /// subscription (or it was removed while waiting); the sync's errors
    /// other than the network's ([`Error::NoRemote`], [`Error::Auth`],
    /// [`Error::Server`], ...).
    pub async fn wait_for_subscription(&self, name: &str) -> Result<()> {
        let mut pause = WAIT_FIRST_MS;
        loop {
            match self.subscriptions().await?.iter().find(|s| s.name == name) {
                None => {
                    return Err(Error::UnknownSubscription {
                        name: crate::error::clip(name, 200),
                    })
                }
                Some(s) if s.ready => return Ok(()),
                Some(_) => {}
            }
            match self.sync().await {
                Ok(_) => pause = WAIT_FIRST_MS,
                Err(e) if e.kind() == crate::error::ErrorKind::Network => {
                    tracing::debug!(error = %e, "waiting for a subscription: offline; trying again");
                    self.transport.sleep(pause).await;
                    pause = (pause * 2).min(WAIT_MAX_MS);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The other synced tables `filter` reads, checked by preparing it
    /// against `table`'s view on this replica.
    fn filter_reads(&self, table: &str, filter: &str) -> Result<Vec<String>, String> {
        let sql = format!("SELECT 1 FROM {} WHERE ({filter})", q(table));
        let read = self
            .store
            .unshared()
            .columns_read(&sql)
            .map_err(|e| format!("the filter does not prepare here: {}", e.message))?;
        let mut parents = Vec::new();
        for (t, column) in read {
            // A view reports the columns the filter names; its engine table
            // reports every column the view reads, named or not.
            let named = !t.starts_with(LOCAL_PREFIX);
            let name = match t.strip_prefix(LOCAL_PREFIX) {
                Some(n) => n.to_owned(),
                None if t.starts_with("_erth") => continue,
                None => t,
            };
            let Some(def) = self.tables().iter().find(|d| d.name == name) else {
                return Err(format!(
                    "the filter reads {name:?}, which is not a synced table (the server does not have it)"
                ));
            };
            if named && def.columns.iter().any(|c| c.encrypted && c.name == column) {
                return Err(format!(
                    "the filter reads {name}.{column}, an encrypted column: the server holds only its ciphertext, so it cannot select rows by it"
                ));
            }
            if name != table && !parents.contains(&name) {
                parents.push(name);
            }
        }
        parents.sort();
        Ok(parents)
    }
}

/// Checks a filter's parameters as a row's values are checked: finite
/// reals, at most 5 MB each.
fn check_params(params: &[SqlValue]) -> Result<()> {
    for (i, v) in params.iter().enumerate() {
        let bad = match v {
            SqlValue::Real(r) if !r.is_finite() => Some("is not a finite number".to_owned()),
            SqlValue::Text(t) if t.len() > MAX_PARAM_BYTES => Some("is over 5 MB".to_owned()),
            SqlValue::Blob(b) if b.len() > MAX_PARAM_BYTES => Some("is over 5 MB".to_owned()),
            _ => None,
        };
        if let Some(why) = bad {
            return Err(Error::InvalidInput(format!(
                "the filter's parameter {} {why}",
                i + 1
            )));
        }
    }
    Ok(())
}
