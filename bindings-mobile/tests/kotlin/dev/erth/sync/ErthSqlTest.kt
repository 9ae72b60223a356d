// JUnit 4 tests of the SQL surface of the Kotlin bindings: an app schema,
// execute / query / transaction, SqlValue of every type through a real
// Hrana server (ERTH_TEST_HRANA_URL, token in ERTH_TEST_HRANA_TOKEN), live
// queries as a callback handle and as a Flow. Run by `cargo xtask test kotlin`.
// The server may be shared with other runs: every row carries a tag unique
// to the test, and only tagged rows are compared.
package dev.erth.sync

import dev.erth.sync.core.*
import java.nio.file.Files
import java.nio.file.Path
import java.util.UUID
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test

class ErthSqlTest {
    private val url: String = System.getenv("ERTH_TEST_HRANA_URL")
        ?: error("ERTH_TEST_HRANA_URL is not set: run these tests with `cargo xtask test kotlin`")
    private val token: String? = System.getenv("ERTH_TEST_HRANA_TOKEN")?.takeIf { it.isNotEmpty() }
    private val tag = UUID.randomUUID().toString()

    private lateinit var dir: Path
    private val opened = mutableListOf<AutoCloseable>()

    @Before
    fun setUp() {
        dir = Files.createTempDirectory("erth-kotlin-sql")
    }

    @After
    fun tearDown() {
        opened.asReversed().forEach { it.close() }
        dir.toFile().deleteRecursively()
    }

    private suspend fun open(name: String, url: String? = this.url): ErthDb {
        val db = ErthDb.open(ErthConfig(path = dir.resolve(name).toString(), url = url, authToken = token, schema = SCHEMA))
        opened.add(db)
        return db
    }

    private fun text(s: String) = SqlValue.Text(s)
    private fun int(i: Long) = SqlValue.Integer(i)

    /** A value with blobs as lists, so that equality compares bytes (ByteArray compares by reference). */
    private fun plain(v: SqlValue): Any? = when (v) {
        is SqlValue.Null -> null
        is SqlValue.Integer -> v.v1
        is SqlValue.Real -> v.v1
        is SqlValue.Text -> v.v1
        is SqlValue.Blob -> v.v1.toList()
    }

    private fun plain(rows: Rows) = rows.rows.map { row -> row.map { plain(it) } }

    private suspend fun tagged(db: ErthDb, columns: String = "label, i, r, t, b") =
        plain(db.query("SELECT $columns FROM kinds WHERE tag = ? ORDER BY label", listOf(text(tag))))

    private suspend fun insert(db: ErthDb, label: String, i: SqlValue = SqlValue.Null): String {
        val out = db.execute(
            "INSERT INTO kinds (tag, label, i) VALUES (?, ?, ?)",
            listOf(text(tag), text(label), i),
        )
        assertEquals(1UL, out.rowsAffected)
        return (db.query(
            "SELECT id FROM kinds WHERE tag = ? AND label = ?", listOf(text(tag), text(label)),
        ).rows.single().single() as SqlValue.Text).v1
    }

    @Test
    fun everyTypeSurvivesOfflineWritesOnTwoReplicasAndConverges() = runBlocking {
        val a = open("a.db")
        val b = open("b.db")
        val blob = ByteArray(1_000_000) { (it % 251).toByte() }
        val unicode = "'; DROP TABLE kinds; -- \"q\" \u0000 nul, \uD83E\uDD80 non-BMP"
        val insert = "INSERT INTO kinds (tag, label, i, r, t, b) VALUES (?, ?, ?, ?, ?, ?)"
        val results = a.transaction(listOf(
            Statement(insert, listOf(text(tag), text("a 2^53+1"), int((1L shl 53) + 1), SqlValue.Real(0.5), text(""), SqlValue.Null)),
            Statement(insert, listOf(text(tag), text("a max"), int(Long.MAX_VALUE), SqlValue.Real(-1.0e-300), text(unicode), SqlValue.Blob(blob))),
            Statement(insert, listOf(text(tag), text("a min"), int(Long.MIN_VALUE), SqlValue.Null, SqlValue.Null, SqlValue.Blob(ByteArray(0)))),
        ))
        assertEquals(listOf(1UL, 1UL, 1UL), results.map { it.rowsAffected })
        b.execute(insert, listOf(text(tag), text("b nulls"), SqlValue.Null, SqlValue.Null, SqlValue.Null, SqlValue.Null))
        b.execute(insert, listOf(text(tag), text("b empty"), int(0), SqlValue.Real(0.0), text(""), SqlValue.Blob(ByteArray(0))))
        assertEquals(1UL, b.execute("UPDATE kinds SET t = ? WHERE tag = ? AND label = ?", listOf(text("x"), text(tag), text("b nulls"))).rowsAffected)

        val expected = listOf(
            listOf("a 2^53+1", (1L shl 53) + 1, 0.5, "", null),
            listOf("a max", Long.MAX_VALUE, -1.0e-300, unicode, blob.toList()),
            listOf("a min", Long.MIN_VALUE, null, null, emptyList<Byte>()),
            listOf("b empty", 0L, 0.0, "", emptyList<Byte>()),
            listOf("b nulls", null, null, "x", null),
        )
        // Offline: each replica has its own rows only, exactly as written.
        assertEquals(expected.take(3), tagged(a))
        assertEquals(expected.drop(3), tagged(b))
        assertTrue(a.status().pendingChanges >= 3UL)

        a.sync(); b.sync(); a.sync()
        assertEquals(expected, tagged(a))
        assertEquals(expected, tagged(b))
        val typeofs = b.query("SELECT label, typeof(t), typeof(b) FROM kinds WHERE tag = ? ORDER BY label", listOf(text(tag)))
        assertEquals(listOf("text", "null"), plain(typeofs)[0].drop(1)) // '' is not NULL
        assertEquals(listOf("null", "blob"), plain(typeofs)[2].drop(1)) // an empty blob is not NULL
        assertEquals(0UL, a.status().pendingChanges)
        assertEquals(0UL, b.status().pendingChanges)
    }

    @Test
    fun aDeleteStaysDeleted() = runBlocking {
        val a = open("a.db")
        val b = open("b.db")
        val id = insert(a, "doomed", int(1))
        insert(a, "kept", int(1))
        a.sync(); b.sync()
        assertEquals(listOf("doomed", "kept"), tagged(b, "label").map { it.single() })

        // Offline: B deletes the row while A edits it.
        assertEquals(1UL, b.execute("DELETE FROM kinds WHERE id = ?", listOf(text(id))).rowsAffected)
        assertEquals(1UL, a.execute("UPDATE kinds SET i = 2 WHERE id = ?", listOf(text(id))).rowsAffected)
        a.sync(); b.sync(); a.sync()
        for (db in listOf(a, b)) {
            assertEquals(listOf("kept"), tagged(db, "label").map { it.single() })
        }
        // A later write cannot bring it back, nor can a third replica see it.
        assertEquals(0UL, a.execute("UPDATE kinds SET i = 3 WHERE id = ?", listOf(text(id))).rowsAffected)
        a.sync(); b.sync()
        val c = open("c.db")
        c.sync()
        for (db in listOf(a, b, c)) {
            assertEquals(listOf("kept"), tagged(db, "label").map { it.single() })
        }
    }

    @Test
    fun watchAndFlowSeeLocalAndPulledChangesAndStopWhenCancelled() = runBlocking {
        val a = open("a.db")
        val b = open("b.db")
        val sql = "SELECT label FROM kinds WHERE tag = ? ORDER BY label"
        val params = listOf(text(tag))
        val labels = { rows: Rows -> rows.rows.map { (it.single() as SqlValue.Text).v1 } }

        val seen = LinkedBlockingQueue<List<String>>()
        val live = b.watch(sql, params, object : LiveQueryListener {
            override fun onRows(rows: Rows) {
                seen.add(labels(rows))
            }
        })
        assertEquals("the first rows arrive before watch returns", listOf<String>(), seen.poll())
        assertEquals(listOf("kinds"), live.tables())

        val flowed = LinkedBlockingQueue<List<String>>()
        val collector = launch(Dispatchers.Default) {
            b.watchFlow(sql, params).collect { flowed.add(labels(it)) }
        }
        assertEquals(listOf<String>(), flowed.poll(10, TimeUnit.SECONDS))

        insert(b, "local")
        assertEquals(listOf("local"), seen.poll()) // delivered before execute returned
        assertEquals(listOf("local"), flowed.poll(10, TimeUnit.SECONDS))

        insert(a, "remote")
        a.sync()
        b.sync()
        assertEquals(listOf("local", "remote"), seen.poll())
        assertEquals(listOf("local", "remote"), flowed.poll(10, TimeUnit.SECONDS))

        // An unrelated write does not re-deliver unchanged rows.
        b.execute("INSERT INTO kinds (tag, label) VALUES (?, ?)", listOf(text("other $tag"), text("x")))
        assertTrue(seen.isEmpty())

        // Cancelling the collector ends the flow (its awaitClose stops the live query).
        withTimeout(10_000) { collector.cancelAndJoin() }
        assertTrue(collector.isCancelled)
        live.stop()
        assertFalse(live.isActive())
        insert(b, "local after stop")
        insert(a, "remote after stop")
        a.sync()
        b.sync()
        assertTrue("no delivery after stop: $seen", seen.isEmpty())
        assertEquals(4, tagged(b, "label").size)
    }

    @Test
    fun sqlMistakesAreTypedAndChangeNothing() = runBlocking {
        val db = open("a.db", url = null)
        insert(db, "one")
        val err = try {
            db.transaction(listOf(
                Statement("INSERT INTO kinds (tag, label) VALUES (?, ?)", listOf(text(tag), text("two"))),
                Statement("INSERT INTO no_such_table VALUES (1)", listOf()),
            ))
            null
        } catch (e: ErthException.Sql) {
            e
        }
        assertTrue("a failing statement rolls the transaction back with Sql", err != null)
        assertEquals(listOf(listOf("one")), tagged(db, "label"))
        for (bad in listOf("DROP TABLE kinds", "BEGIN", "SELEC 1")) {
            try {
                db.execute(bad, listOf())
                throw AssertionError("$bad should fail")
            } catch (e: ErthException.Sql) {
                assertTrue(e.message.isNotBlank())
            }
        }
        try {
            db.query("DELETE FROM kinds", listOf())
            throw AssertionError("query() must refuse a write")
        } catch (e: ErthException.Sql) {
        }
        assertEquals(listOf(listOf("one")), tagged(db, "label"))
        try {
            ErthDb.open(ErthConfig(path = dir.resolve("bad.db").toString(), schema = "{\"tables\": {\"t\": {\"columns\": {\"id\": {\"type\": \"text\"}}}}}"))
            throw AssertionError("a schema declaring the engine's id column must be refused")
        } catch (e: ErthException.InvalidInput) {
        }
    }

    @Test
    fun aWrongUrlGivesTheTypedNetworkErrorAndKeepsLocalWrites() = runBlocking {
        val db = open("a.db", url = "http://127.0.0.1:1")
        insert(db, "offline", int(7))
        try {
            db.sync()
            throw AssertionError("sync to a closed port must fail")
        } catch (e: ErthException.Network) {
            assertTrue(e.message.isNotBlank())
        }
        assertEquals(listOf(listOf("offline", 7L)), tagged(db, "label, i"))
        assertEquals(1UL, db.status().pendingChanges)
    }

    @Test
    fun concurrentSqlFromManyCoroutinesIsSafe() = runBlocking {
        val a = open("a.db")
        val workers = 8
        val each = 10
        (0 until workers).map { w ->
            async(Dispatchers.Default) {
                for (i in 0 until each) {
                    insert(a, "w$w-$i", int(i.toLong()))
                }
                a.transaction(listOf(
                    Statement("UPDATE kinds SET i = i + 100 WHERE tag = ? AND label = ?", listOf(text(tag), text("w$w-0"))),
                ))
                a.query("SELECT count(*) FROM kinds WHERE tag = ?", listOf(text(tag)))
                a.sync()
            }
        }.awaitAll()
        val count = "SELECT count(*), sum(i) FROM kinds WHERE tag = ?"
        val expectedSum = workers * ((0 until each).sum() + 100).toLong()
        assertEquals(listOf(listOf((workers * each).toLong(), expectedSum)), plain(a.query(count, listOf(text(tag)))))
        a.sync()
        assertEquals(0UL, a.status().pendingChanges)

        val b = open("b.db")
        (0 until 4).map { async(Dispatchers.Default) { b.sync() } }.awaitAll()
        assertEquals(plain(a.query(count, listOf(text(tag)))), plain(b.query(count, listOf(text(tag)))))
    }

    companion object {
        /** Every SQLite type, nullable, plus a tag per test. */
        const val SCHEMA = """{"tables": {"kinds": {"columns": {
            "tag": {"type": "text", "notNull": true, "default": ""},
            "label": {"type": "text"},
            "i": {"type": "integer"}, "r": {"type": "real"},
            "t": {"type": "text"}, "b": {"type": "blob"}}}}}"""
    }
}
