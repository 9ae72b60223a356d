// Hand-written Kotlin shipped with the generated bindings (package
// dev.erth.sync): the block form of ErthDb.writeTransaction. It only
// forwards, and commits or rolls back; the transaction itself is the
// engine's. Packaged by scripts/build-android.sh and compiled with the
// generated code by `cargo xtask test kotlin`.
package dev.erth.sync

import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.withContext

/**
 * Runs [block] in an interactive write transaction and returns its result:
 * reads through the [ErthWriteTransaction] see the transaction's own writes,
 * and nothing else writes to this replica between them ("add the item only
 * if its list still exists", "take the next number").
 *
 * Commits when [block] returns; rolls back when it throws (cancellation
 * included), then rethrows, so that nothing it wrote remains. Once [block]
 * has returned, the commit runs to its end even if the coroutine is
 * cancelled meanwhile. Live queries and listeners hear of the changes once,
 * after the commit.
 *
 * The transaction holds the replica until it ends: other calls on this
 * [ErthDb] (and other transactions) wait for it, up to
 * [ErthConfig.lockTimeoutMs], then fail with [ErthException.DatabaseLocked];
 * so does opening this one while another stays open. Inside [block], use
 * the transaction, not the database (a call on the database would wait for
 * the transaction itself), and keep it short. The handle is closed when
 * this returns: don't keep it.
 *
 * Errors: [ErthException.DatabaseLocked] (waited too long to begin),
 * whatever [block] throws, [ErthException.Sql] when the commit fails
 * (nothing remains).
 */
suspend fun <T> ErthDb.writeTransaction(block: suspend (ErthWriteTransaction) -> T): T =
    writeTransaction().use { tx ->
        val result = try {
            block(tx)
        } catch (e: Throwable) {
            try {
                withContext(NonCancellable) { tx.rollback() }
            } catch (rollbackFailure: Throwable) {
                e.addSuppressed(rollbackFailure)
            }
            throw e
        }
        withContext(NonCancellable) { tx.commit() }
        result
    }
