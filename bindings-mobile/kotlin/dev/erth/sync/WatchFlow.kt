// Hand-written Kotlin shipped with the generated bindings (package
// dev.erth.sync): a Flow over the live query of ErthDb.watch. Packaged by
// scripts/build-android.sh and compiled with the generated code by
// `cargo xtask test kotlin`.
package dev.erth.sync

import dev.erth.sync.core.Rows
import dev.erth.sync.core.SqlValue
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.conflate

/**
 * The rows of [sql] (positional [params]) as a cold, conflated [Flow]: each
 * collector starts its own live query ([ErthDb.watch]) and gets the current
 * rows first, then the new rows after every committed change (local writes,
 * pulled rows) to a table the query reads, when they differ. Cancelling the
 * collecting coroutine stops the live query. A slow collector gets the newest
 * rows, not a backlog. Collection fails with [ErthException.Sql] for bad SQL
 * or a statement that writes.
 */
fun ErthDb.watchFlow(sql: String, params: List<SqlValue> = emptyList()): Flow<Rows> = callbackFlow {
    val live = watch(sql, params, object : LiveQueryListener {
        override fun onRows(rows: Rows) {
            trySend(rows)
        }
    })
    awaitClose {
        live.stop()
        live.close()
    }
}.conflate()
