//! [`WriteTx`]: an interactive write transaction
//! ([`erth_core::WriteTransaction`]) as a JS object, opened by
//! [`crate::Replica::write_transaction`]. The worker keeps it between the
//! page's calls (`tx.execute`, `tx.getAll`, ...) and ends it with
//! [`WriteTx::commit`] or [`WriteTx::rollback`]; freeing it (the tab that
//! opened it went away, the database closes) rolls it back.

use crate::error::to_js;
use crate::values::{js, params_from_js};
use erth_core::write_transaction::ended;
use std::cell::RefCell;
use wasm_bindgen::prelude::*;

/// An open write transaction: it holds the replica (other calls, live
/// queries and sync wait for it, up to `lockTimeoutMs`) until it ends.
#[wasm_bindgen]
pub struct WriteTx(RefCell<Option<erth_core::WriteTransaction>>);

impl WriteTx {
    pub(crate) fn new(tx: erth_core::WriteTransaction) -> WriteTx {
        WriteTx(RefCell::new(Some(tx)))
    }

    fn take(&self) -> Result<erth_core::WriteTransaction, JsValue> {
        self.0.borrow_mut().take().ok_or_else(|| to_js(&ended()))
    }
}

#[wasm_bindgen]
impl WriteTx {
    /// Runs one statement (a read or a write) inside the transaction:
    /// `{ rowsAffected, rows }`; a read sees the transaction's own writes.
    /// A failed statement changed nothing and leaves the transaction open.
    #[wasm_bindgen(unchecked_return_type = "ExecuteResult")]
    pub fn execute(
        &self,
        sql: String,
        #[wasm_bindgen(unchecked_param_type = "SqlParam[] | undefined")] params: JsValue,
    ) -> Result<JsValue, JsValue> {
        let params = params_from_js(&params)?;
        let mut open = self.0.borrow_mut();
        let tx = open.as_mut().ok_or_else(|| to_js(&ended()))?;
        js(&tx.execute(&sql, &params).map_err(|e| to_js(&e))?)
    }

    /// Commits: every change becomes visible at once and syncs; live
    /// queries re-run once.
    pub async fn commit(&self) -> Result<(), JsValue> {
        self.take()?.commit().await.map_err(|e| to_js(&e))
    }

    /// Rolls back: nothing the transaction wrote remains. Does nothing once
    /// it ended.
    pub fn rollback(&self) -> Result<(), JsValue> {
        match self.0.borrow_mut().take() {
            Some(tx) => tx.rollback().map_err(|e| to_js(&e)),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for WriteTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WriteTx").field(&self.0.borrow()).finish()
    }
}
