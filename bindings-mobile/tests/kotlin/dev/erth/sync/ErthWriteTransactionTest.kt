// JUnit 4 tests of interactive write transactions in the Kotlin bindings:
// ErthDb.writeTransaction { tx -> ... } (the block form in
// bindings-mobile/kotlin/) over the engine's ErthWriteTransaction, on a
// local replica (no server needed). Run by `cargo xtask test kotlin`.
package dev.erth.sync

import dev.erth.sync.core.*
import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.awaitCancellation
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.yield
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertSame
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test

class ErthWriteTransactionTest {
    private lateinit var dir: Path
    private val opened = mutableListOf<AutoCloseable>()

    @Before
    fun setUp() {
        dir = Files.createTempDirectory("erth-kotlin-tx")
    }

    @After
    fun tearDown() {
        opened.asReversed().forEach { it.close() }
        dir.toFile().deleteRecursively()
    }

    private suspend fun open(lockTimeoutMs: ULong? = null): ErthDb {
        val db = ErthDb.open(ErthConfig(path = dir.resolve("tx.db").toString(), schema = SCHEMA, lockTimeoutMs = lockTimeoutMs))
        opened.add(db)
        db.execute("INSERT INTO counters (name, n) VALUES ('c', 0)", emptyList())
        return db
    }

    private fun single(rows: Rows): Long = (rows.rows.single().single() as SqlValue.Integer).v1

    private suspend fun counter(db: ErthDb) = single(db.query("SELECT n FROM counters WHERE name = 'c'", emptyList()))

    private suspend fun counter(tx: ErthWriteTransaction) = single(tx.query("SELECT n FROM counters WHERE name = 'c'", emptyList()))

    private suspend fun setCounter(tx: ErthWriteTransaction, n: Long) {
        val out = tx.execute("UPDATE counters SET n = ? WHERE name = 'c'", listOf(SqlValue.Integer(n)))
        assertEquals(1UL, out.rowsAffected)
    }

    private suspend fun notes(db: ErthDb) =
        db.query("SELECT body FROM notes ORDER BY body", emptyList()).rows.map { (it.single() as SqlValue.Text).v1 }

    private class Boom : RuntimeException("boom inside the transaction")

    @Test
    fun concurrentReadModifyWritesAndPlainWritesNeverInterleave() = runBlocking {
        val db = open()
        withContext(Dispatchers.Default) {
            // A transaction reads, lets a plain write start, then writes what
            // it read plus one: the plain write must wait for the commit.
            val plain = async(start = CoroutineStart.LAZY) {
                db.execute("UPDATE counters SET n = n + 100 WHERE name = 'c'", emptyList())
            }
            val returned = db.writeTransaction { tx ->
                val n = counter(tx)
                plain.start()
                delay(300)
                assertFalse("the plain write waits for the transaction", plain.isCompleted)
                setCounter(tx, n + 1)
                "done"
            }
            assertEquals("done", returned)
            assertEquals(1UL, plain.await().rowsAffected)
            assertEquals(101L, counter(db))

            // Several transactions incrementing at once, with plain writers
            // alongside: every increment counts.
            val transactions = (1..8).map {
                async {
                    db.writeTransaction { tx ->
                        val n = counter(tx)
                        yield()
                        delay(5)
                        setCounter(tx, n + 1)
                    }
                }
            }
            val plains = (1..4).map {
                async { db.execute("UPDATE counters SET n = n + 1000 WHERE name = 'c'", emptyList()) }
            }
            (transactions + plains).awaitAll()
            assertEquals(101L + 8 + 4_000, counter(db))
        }
    }

    @Test
    fun readsInsideSeeTheTransactionsOwnWritesAndOutsideReadsWaitForTheCommit() = runBlocking {
        val db = open()
        withContext(Dispatchers.Default) {
            val outside = async(start = CoroutineStart.LAZY) { notes(db) }
            db.writeTransaction { tx ->
                tx.execute("INSERT INTO notes (body) VALUES (?)", listOf(SqlValue.Text("own")))
                val seen = tx.query("SELECT body FROM notes", emptyList()).rows.map { (it.single() as SqlValue.Text).v1 }
                assertEquals(listOf("own"), seen)
                assertTrue(tx.isOpen())
                outside.start()
                delay(200)
                assertFalse("an outside read waits for the transaction", outside.isCompleted)
            }
            assertEquals("an outside read never sees uncommitted rows", listOf("own"), outside.await())
        }
    }

    @Test
    fun anExceptionInsideRollsEverythingBackAndIsRethrown() = runBlocking {
        val db = open()
        val boom = Boom()
        try {
            db.writeTransaction { tx ->
                tx.execute("INSERT INTO notes (body) VALUES (?)", listOf(SqlValue.Text("half")))
                setCounter(tx, 42)
                throw boom
            }
            throw AssertionError("the block's exception must be rethrown")
        } catch (e: Boom) {
            assertSame(boom, e)
        }
        assertEquals(emptyList<String>(), notes(db))
        assertEquals(0L, counter(db))
        // A failed statement inside is typed and, uncaught, rolls back too.
        try {
            db.writeTransaction { tx ->
                tx.execute("INSERT INTO notes (body) VALUES (?)", listOf(SqlValue.Text("first")))
                tx.execute("INSERT INTO no_such_table VALUES (1)", emptyList())
            }
            throw AssertionError("expected ErthException.Sql")
        } catch (e: ErthException.Sql) {
            assertTrue(e.message, e.message.contains("no_such_table"))
        }
        assertEquals(emptyList<String>(), notes(db))
        // The lock is free again: a plain write goes through at once.
        withTimeout(2_000) { db.execute("INSERT INTO notes (body) VALUES ('after')", emptyList()) }
        assertEquals(listOf("after"), notes(db))
    }

    @Test
    fun aCancelledCoroutineRollsBackAndReleasesTheLock() = runBlocking {
        val db = open(lockTimeoutMs = 2_000UL)
        val wrote = CompletableDeferred<Unit>()
        val job = launch(Dispatchers.Default) {
            db.writeTransaction { tx ->
                tx.execute("INSERT INTO notes (body) VALUES ('cancelled')", emptyList())
                wrote.complete(Unit)
                awaitCancellation()
            }
        }
        wrote.await()
        job.cancelAndJoin()
        assertTrue(job.isCancelled)
        val started = System.nanoTime()
        assertEquals(emptyList<String>(), notes(db))
        assertTrue("the lock was released at once", System.nanoTime() - started < 1_000_000_000L)
        assertEquals(7L, db.writeTransaction { tx -> setCounter(tx, 7); counter(tx) })
        assertEquals(7L, counter(db))
    }

    @Test
    fun aSecondTransactionWaitingPastTheLockTimeoutFailsWithDatabaseLocked() = runBlocking {
        val db = open(lockTimeoutMs = 300UL)
        withContext(Dispatchers.Default) {
            val holding = CompletableDeferred<Unit>()
            val release = CompletableDeferred<Unit>()
            val first = async {
                db.writeTransaction { tx ->
                    setCounter(tx, 1)
                    holding.complete(Unit)
                    release.await()
                }
            }
            holding.await()
            val started = System.nanoTime()
            try {
                db.writeTransaction { tx -> setCounter(tx, 2) }
                throw AssertionError("expected ErthException.DatabaseLocked")
            } catch (e: ErthException.DatabaseLocked) {
                val waitedMs = (System.nanoTime() - started) / 1_000_000
                assertTrue("waited $waitedMs ms", waitedMs in 250..5_000)
            }
            // A plain write waits the same way.
            try {
                db.execute("UPDATE counters SET n = 3 WHERE name = 'c'", emptyList())
                throw AssertionError("expected ErthException.DatabaseLocked")
            } catch (e: ErthException.DatabaseLocked) {
            }
            release.complete(Unit)
            first.await()
            assertEquals(1L, counter(db))
            db.writeTransaction { tx -> setCounter(tx, counter(tx) + 1) }
            assertEquals(2L, counter(db))
        }
    }

    @Test
    fun theHandleForwardsCommitAndRollbackDirectly() = runBlocking {
        val db = open()
        db.writeTransaction().use { tx ->
            tx.execute("INSERT INTO notes (body) VALUES ('kept')", emptyList())
            tx.commit()
            assertFalse(tx.isOpen())
            try {
                tx.execute("INSERT INTO notes (body) VALUES ('late')", emptyList())
                throw AssertionError("expected ErthException.Sql")
            } catch (e: ErthException.Sql) {
            }
        }
        db.writeTransaction().use { tx ->
            tx.execute("INSERT INTO notes (body) VALUES ('dropped')", emptyList())
            tx.rollback()
            tx.rollback() // does nothing once ended
        }
        // Closed without commit: rolled back.
        db.writeTransaction().use { tx -> tx.execute("INSERT INTO notes (body) VALUES ('closed')", emptyList()) }
        assertEquals(listOf("kept"), notes(db))
    }

    companion object {
        const val SCHEMA = """{"tables": {
            "counters": {"columns": {"name": {"type": "text"}, "n": {"type": "integer"}}},
            "notes": {"columns": {"body": {"type": "text"}}}}}"""
    }
}
