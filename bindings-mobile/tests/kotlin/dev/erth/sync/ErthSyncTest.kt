// JUnit 4 tests of the generated Kotlin bindings (package dev.erth.sync),
// run on the JVM against the Linux build of liberth_mobile.so and a real
// Hrana server whose URL is in ERTH_TEST_HRANA_URL (token, if it needs one,
// in ERTH_TEST_HRANA_TOKEN): a local `tursodb --sync-server`, or any server.
// Run them with `cargo xtask test kotlin`, which builds the library,
// generates the bindings, starts the server and sets the variables.
package dev.erth.sync

import dev.erth.sync.core.*
import java.nio.file.Files
import java.nio.file.Path
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test

class ErthSyncTest {
    private val url: String = System.getenv("ERTH_TEST_HRANA_URL")
        ?: error("ERTH_TEST_HRANA_URL is not set: run these tests with `cargo xtask test kotlin`")
    private val token: String? = System.getenv("ERTH_TEST_HRANA_TOKEN")?.takeIf { it.isNotEmpty() }

    private lateinit var dir: Path
    private val opened = mutableListOf<AutoCloseable>()

    @Before
    fun setUp() {
        dir = Files.createTempDirectory("erth-kotlin-test")
    }

    @After
    fun tearDown() {
        opened.asReversed().forEach { it.close() }
        dir.toFile().deleteRecursively()
    }

    private suspend fun open(
        name: String,
        url: String? = this.url,
        token: String? = this.token,
        schema: String? = null,
        autoSync: AutoSyncOptions? = null,
    ): ErthDb {
        val config = ErthConfig(path = dir.resolve(name).toString(), url = url, authToken = token, schema = schema, autoSync = autoSync)
        val db = ErthDb.open(config)
        opened.add(db)
        return db
    }

    /** What two replicas must agree on: id, title, completion. */
    private fun view(todos: List<Todo>) = todos.map { Triple(it.id, it.title, it.isCompleted) }.sortedBy { it.first }

    private inline fun <reified E : ErthException> assertThrowsErth(block: () -> Unit): E {
        try {
            block()
        } catch (e: ErthException) {
            if (e is E) return e
            throw AssertionError("expected ${E::class.simpleName}, got ${e::class.simpleName}: ${e.message}", e)
        }
        throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
    }

    @Test
    fun offlineEditsOnTwoReplicasConvergeAfterSync() = runBlocking {
        val a = open("a.db")
        val b = open("b.db")
        // The server outlives one test: titles carry a tag unique to this run.
        val tag = java.util.UUID.randomUUID().toString().take(8)

        val a1 = a.addTodo("$tag a1")
        val a2 = a.addTodo("$tag a2")
        val a3 = a.addTodo("$tag a3")
        assertEquals("$tag a1 renamed", a.renameTodo(a1.id, "$tag a1 renamed").title)
        assertTrue(a.setTodoCompleted(a2.id, true).isCompleted)
        assertTrue(a.deleteTodo(a3.id))

        val b1 = b.addTodo("$tag b1")
        val b2 = b.addTodo("$tag b2")
        val b3 = b.addTodo("$tag b3")
        b.renameTodo(b1.id, "$tag b1 renamed")
        b.setTodoCompleted(b2.id, true)
        assertTrue(b.deleteTodo(b3.id))
        assertFalse("deleting twice reports false", b.deleteTodo(b3.id))

        // Offline: nothing crossed over, everything is pending.
        assertEquals(setOf("$tag a1 renamed", "$tag a2"), a.listActiveTodos().map { it.title }.toSet())
        assertEquals(3UL, a.status().pendingChanges)
        assertEquals(3UL, b.status().pendingChanges)

        val pushA = a.sync()
        assertEquals(3UL, pushA.pushed)
        val syncB = b.sync()
        assertEquals(3UL, syncB.pushed)
        assertTrue("B pulls A's three rows", syncB.pulled >= 3UL)
        val syncA = a.sync()
        assertTrue("A pulls B's three rows", syncA.pulled >= 3UL)

        val listA = a.listActiveTodos()
        val listB = b.listActiveTodos()
        assertEquals(view(listA), view(listB))
        val byTitle = listA.filter { it.title.startsWith(tag) }.associateBy { it.title }
        assertEquals(4, byTitle.size)
        assertTrue(byTitle.keys.containsAll(listOf("$tag a1 renamed", "$tag a2", "$tag b1 renamed", "$tag b2")))
        assertFalse(byTitle.keys.contains("$tag a3"))
        assertFalse(byTitle.keys.contains("$tag b3"))
        assertTrue(byTitle.getValue("$tag a2").isCompleted)
        assertTrue(byTitle.getValue("$tag b2").isCompleted)
        assertFalse(byTitle.getValue("$tag a1 renamed").isCompleted)

        // A concurrent offline edit of the same todo: last writer wins, on both.
        a.renameTodo(b1.id, "$tag from A")
        delay(5) // B's edit is later on the wall clock too, so it must win
        b.renameTodo(b1.id, "$tag from B")
        a.sync(); b.sync(); a.sync()
        assertEquals("$tag from B", a.getTodo(b1.id).title)
        assertEquals(view(a.listActiveTodos()), view(b.listActiveTodos()))

        for (db in listOf(a, b)) {
            val status = db.status()
            assertEquals(0UL, status.pendingChanges)
            assertNotNull(status.lastSyncAtMs)
            assertNull(status.lastError)
            assertEquals(url, status.remoteUrl)
        }
    }

    @Test
    fun subscriptionSeesLocalAndPulledChangesAndStopsAfterUnsubscribe() = runBlocking {
        val a = open("a.db")
        val b = open("b.db")
        val events = LinkedBlockingQueue<ChangeEvent>()
        val sub = b.subscribe(object : ChangeListener {
            override fun onChange(event: ChangeEvent) {
                events.add(event)
            }
        })
        assertTrue(sub.isActive())

        val local = b.addTodo("local")
        val first = events.poll(5, TimeUnit.SECONDS) ?: throw AssertionError("no event for a local write")
        assertEquals(ChangeEvent("todos", listOf(local.id), ChangeOrigin.LOCAL), first)

        b.sync()
        events.clear() // the push itself may or may not report rows; only pulls matter next
        val remote = a.addTodo("remote")
        a.sync()
        b.sync()
        val pulled = generateSequence { events.poll(5, TimeUnit.SECONDS) }
            .firstOrNull { it.origin == ChangeOrigin.REMOTE }
            ?: throw AssertionError("no REMOTE event after B pulled A's todo")
        assertEquals("todos", pulled.table)
        assertTrue("pulled event names ${remote.id}: $pulled", pulled.ids.contains(remote.id))

        sub.unsubscribe()
        assertFalse(sub.isActive())
        events.clear()
        b.addTodo("after unsubscribe")
        a.addTodo("remote after unsubscribe")
        a.sync()
        b.sync()
        assertNull("no event after unsubscribe", events.poll(300, TimeUnit.MILLISECONDS))

        // Kotlin's close() (AutoCloseable) drops the handle and unsubscribes too.
        val closed = LinkedBlockingQueue<ChangeEvent>()
        b.subscribe(object : ChangeListener {
            override fun onChange(event: ChangeEvent) {
                closed.add(event)
            }
        }).use { b.addTodo("seen") }
        assertEquals(1, closed.size)
        b.addTodo("not seen")
        assertEquals(1, closed.size)
    }

    @Test
    fun aThrowingListenerBreaksNeitherTheWriteNorOtherListeners() = runBlocking {
        val db = open("a.db")
        val seen = LinkedBlockingQueue<ChangeEvent>()
        db.subscribe(object : ChangeListener {
            override fun onChange(event: ChangeEvent): Unit = throw IllegalStateException("listener bug")
        }).use {
            db.subscribe(object : ChangeListener {
                override fun onChange(event: ChangeEvent) {
                    seen.add(event)
                }
            }).use {
                val todo = db.addTodo("still saved")
                assertEquals(listOf(todo.id), seen.poll(5, TimeUnit.SECONDS)?.ids)
                assertEquals("still saved", db.getTodo(todo.id).title)
            }
        }
    }

    @Test
    fun anUnreachableServerGivesTheTypedNetworkError() = runBlocking {
        val db = open("a.db", url = "http://127.0.0.1:1")
        val todo = db.addTodo("works offline")
        val err = assertThrowsErth<ErthException.Network> { db.sync() }
        assertTrue(err.message.isNotBlank())
        val status = db.status()
        assertNotNull("status keeps the error", status.lastError)
        assertEquals(1UL, status.pendingChanges)
        assertEquals(todo, db.getTodo(todo.id))
    }

    @Test
    fun aSubscriptionPullsOnlyItsRowsWhichLeaveWhenTheyNoLongerMatch() = runBlocking<Unit> {
        val writer = open("w.db")
        val phone = open("p.db")
        val tag = java.util.UUID.randomUUID().toString().take(8)
        val keep = writer.addTodo("$tag keep")
        writer.addTodo("$tag other")
        writer.sync()

        phone.addSubscription("mine", "todos", "title LIKE ?", listOf(SqlValue.Text("$tag keep%")), null)
        phone.waitForSubscription("mine")
        assertEquals(listOf("$tag keep"), phone.listActiveTodos().map { it.title })
        val sub = phone.subscriptions().single()
        assertEquals("mine", sub.name)
        assertTrue(sub.ready)
        assertNull(sub.expiresAtMs)

        // The row leaves the filter on the server: evicted here, not deleted there.
        writer.renameTodo(keep.id, "$tag moved")
        writer.sync()
        phone.sync()
        assertTrue(phone.listActiveTodos().isEmpty())
        assertEquals(0UL, phone.status().pendingChanges)
        writer.sync()
        assertEquals("$tag moved", writer.getTodo(keep.id).title)

        assertTrue(phone.removeSubscription("mine"))
        assertFalse(phone.removeSubscription("mine"))
        assertThrowsErth<ErthException.InvalidInput> {
            phone.addSubscription("bad", "todos", "1); DROP TABLE todos; --", listOf(), null)
        }
        assertThrowsErth<ErthException.InvalidInput> {
            phone.addSubscription("bad", "todos", "title = ?", listOf(), null)
        }
        assertThrowsErth<ErthException.NotFound> { phone.waitForSubscription("nope") }
    }

    @Test
    fun aPurgeRemovesOldTombstonesAndAnOfflineEditOfAPurgedRowIsDropped() = runBlocking<Unit> {
        val writer = open("w.db")
        val phone = open("p.db")
        val tag = java.util.UUID.randomUUID().toString().take(8)
        val gone = writer.addTodo("$tag gone")
        writer.addTodo("$tag kept")
        writer.sync()
        phone.sync()
        // The phone edits a row offline; another device deletes it, and the
        // server is purged of its tombstones.
        phone.renameTodo(gone.id, "$tag edited offline")
        assertTrue(writer.deleteTodo(gone.id))
        writer.sync()
        val report = writer.purge(0UL)
        val todos = report.tables.single { it.table == "todos" }
        assertTrue("purged ${todos.rows}", todos.rows >= 1UL)
        assertTrue(todos.mark > 0L)
        assertTrue(report.horizonMs > 0UL)
        // The phone's edit of the purged row is dropped, never pushed back.
        phone.sync()
        assertEquals(listOf("$tag kept"), phone.listActiveTodos().map { it.title }.filter { it.startsWith(tag) })
        assertEquals(0UL, phone.status().pendingChanges)
        writer.sync()
        assertEquals(listOf("$tag kept"), writer.listActiveTodos().map { it.title }.filter { it.startsWith(tag) })
        assertThrowsErth<ErthException.NoRemote> { open("l.db", url = null).purge(null) }
    }

    @Test
    fun encryptedColumnsSyncBetweenKeyHoldersAndAMissingOrWrongKeyIsTyped() = runBlocking<Unit> {
        val table = "sealed_" + java.util.UUID.randomUUID().toString().replace("-", "").take(12)
        val schema = """{"tables": {"$table": {"columns": {"body": {"type": "text", "encrypted": true}}}}}"""
        val key = ByteArray(32) { it.toByte() }
        fun config(name: String, keys: List<ByteArray>) =
            ErthConfig(path = dir.resolve(name).toString(), url = url, authToken = token, schema = schema, columnKeys = keys)
        val a = ErthDb.open(config("ka.db", listOf(key))).also { opened.add(it) }
        val b = ErthDb.open(config("kb.db", listOf(key))).also { opened.add(it) }
        a.execute("INSERT INTO $table (body) VALUES ('the plan')", listOf())
        a.sync()
        b.sync()
        assertEquals(listOf(listOf<SqlValue>(SqlValue.Text("the plan"))), b.query("SELECT body FROM $table", listOf()).rows)
        assertThrowsErth<ErthException.InvalidInput> { ErthDb.open(config("kc.db", listOf())) }
        val wrong = ErthDb.open(config("kw.db", listOf(ByteArray(32)))).also { opened.add(it) }
        assertThrowsErth<ErthException.WrongKey> { wrong.sync() }
        assertFalse(config("kd.db", listOf(key)).toString().contains("0, 1, 2"))
        // A recovery phrase gives the same key on another device (the
        // first key stays: the table holds a value sealed with it).
        val phrase = newRecoveryPhrase()
        assertEquals(24, phrase.split(" ").size)
        val fromPhrase = columnKeyFromRecoveryPhrase(phrase)
        assertEquals(32, fromPhrase.size)
        val p = ErthDb.open(config("kp.db", listOf(fromPhrase, key))).also { opened.add(it) }
        p.execute("INSERT INTO $table (body) VALUES ('from a phrase')", listOf())
        p.sync()
        val typed = columnKeyFromRecoveryPhrase("  " + phrase.uppercase() + "\n")
        val q = ErthDb.open(config("kq.db", listOf(typed, key))).also { opened.add(it) }
        q.sync()
        assertEquals(
            setOf(listOf<SqlValue>(SqlValue.Text("the plan")), listOf<SqlValue>(SqlValue.Text("from a phrase"))),
            q.query("SELECT body FROM $table", listOf()).rows.toSet(),
        )
        assertThrowsErth<ErthException.InvalidInput> { columnKeyFromRecoveryPhrase("$phrase abandon") }
    }

    @Test
    fun anEncryptedFileOpensOnlyWithItsKeyAndConvertsToPlain() = runBlocking<Unit> {
        val path = dir.resolve("at-rest.db").toString()
        val marker = "kotlin-at-rest-marker"
        val key = fileKeyFromRecoveryPhrase(newRecoveryPhrase())
        assertEquals(32, key.size)
        fun onDisk() = listOf(path, "$path-wal").any { p ->
            val f = java.io.File(p)
            f.exists() && String(f.readBytes(), Charsets.ISO_8859_1).contains(marker)
        }
        val db = ErthDb.open(ErthConfig(path = path, fileKey = key))
        db.addTodo(marker)
        assertFalse("the open file and its WAL are encrypted", onDisk())
        db.close()
        val before = java.io.File(path).readBytes()
        assertThrowsErth<ErthException.WrongKey> { ErthDb.open(ErthConfig(path = path)) }
        assertThrowsErth<ErthException.WrongKey> { ErthDb.open(ErthConfig(path = path, fileKey = ByteArray(32))) }
        assertTrue("a wrong key changed the file", before.contentEquals(java.io.File(path).readBytes()))
        assertThrowsErth<ErthException.WrongKey> { changeFileKey(path, ByteArray(32), null) }
        changeFileKey(path, key, null)
        assertTrue("decrypted: the grep finds the value", onDisk())
        val plain = ErthDb.open(ErthConfig(path = path)).also { opened.add(it) }
        assertEquals(listOf(marker), plain.listActiveTodos().map { it.title })
        assertThrowsErth<ErthException.DatabaseLocked> { changeFileKey(path, null, key) }
    }

    @Test
    fun typedErrorsForHostMistakes() = runBlocking {
        val db = open("a.db", url = null)
        assertThrowsErth<ErthException.NoRemote> { db.sync() }
        assertThrowsErth<ErthException.NotFound> { db.renameTodo("0190a0a0-0000-7000-8000-000000000000", "x") }
        assertThrowsErth<ErthException.InvalidInput> { db.setRemote("ftp://example.com", null) }
        assertThrowsErth<ErthException.InvalidInput> {
            open("b.db", url = "http://db.example.com") // clear text to a public host
        }
        assertThrowsErth<ErthException.DatabaseLocked> { open("a.db") }

        // Local-only changes are pushed once a server is set.
        val early = db.addTodo("made before the server was known")
        db.setRemote(url, token)
        assertEquals(1UL, db.sync().pushed)
        val other = open("c.db")
        other.sync()
        assertEquals(early.title, other.getTodo(early.id).title)

        // Closing releases the file.
        db.close()
        opened.remove(db)
        val reopened = open("a.db")
        assertEquals(early.id, reopened.getTodo(early.id).id)
    }

    @Test
    fun concurrentCallsFromManyCoroutinesAreSafe() = runBlocking {
        val db = open("a.db")
        val perWorker = 10
        val workers = 8
        val results = (0 until workers).map { w ->
            async(Dispatchers.Default) {
                val ids = (0 until perWorker).map { i -> db.addTodo("w$w-$i").id }
                val report = db.sync()
                db.renameTodo(ids.first(), "w$w-renamed")
                db.listActiveTodos()
                db.status()
                Pair(ids, report)
            }
        }.awaitAll()
        val ids = results.flatMap { it.first }
        assertEquals(workers * perWorker, ids.toSet().size)
        db.sync()
        assertEquals(0UL, db.status().pendingChanges)

        val other = open("b.db")
        val pulls = (0 until 4).map { async(Dispatchers.Default) { other.sync() } }.awaitAll()
        assertTrue(pulls.all { it.pushed == 0UL })
        val mine = db.listActiveTodos().filter { it.id in ids }
        val theirs = other.listActiveTodos().filter { it.id in ids }
        assertEquals(workers * perWorker, theirs.size)
        assertEquals(view(mine), view(theirs))
        assertEquals(workers, theirs.count { it.title.endsWith("-renamed") })
    }

    @Test
    fun autoSyncCarriesAWriteToASecondReplicaWithoutSync() = runBlocking {
        val a = open("a.db", autoSync = AutoSyncOptions(debounceMs = 50UL, intervalMs = 0UL))
        val b = open("b.db", autoSync = AutoSyncOptions(debounceMs = 50UL, intervalMs = 200UL))
        assertTrue(a.status().autoSync)
        val todo = a.addTodo("auto-synced ${java.util.UUID.randomUUID()}")
        val deadline = System.currentTimeMillis() + 15_000
        // B pulls A's write; A's push is acknowledged (it may be a moment after B sees the row).
        while (b.listActiveTodos().none { it.id == todo.id } || a.status().pendingChanges != 0UL) {
            assertTrue("B never pulled A's write", System.currentTimeMillis() < deadline)
            delay(50)
        }
        // Offline: sync() fails at once with Network, and the status says so.
        a.setOnline(false)
        assertThrowsErth<ErthException.Network> { a.sync() }
        assertFalse(a.status().online)
        a.setOnline(true)
    }

    @Test
    fun aRefusedRowCarriesTheServersCodeAndABrokenRowIsQuarantined() = runBlocking {
        // Two app versions: A's `v` may not be NULL and its `w` holds blobs;
        // B's `v` may be NULL and its `w` holds text.
        val table = "clash_" + java.util.UUID.randomUUID().toString().replace("-", "").take(12)
        val a = open("a.db", schema = """{"tables": {"$table": {"columns": {"v": {"type": "text", "notNull": true, "default": ""}, "w": {"type": "blob"}}}}}""")
        a.execute("INSERT INTO $table (v, w) VALUES ('from a', ?)", listOf(SqlValue.Blob(byteArrayOf(0, 1))))
        a.sync()
        val b = open("b.db", schema = """{"tables": {"$table": {"columns": {"v": {"type": "text"}, "w": {"type": "text"}}}}}""")
        b.execute("INSERT INTO $table (v, w) VALUES (NULL, 'from b')", listOf())
        // The sync goes through: the server refuses B's row (its code kept),
        // and B quarantines A's row (a blob where B reads text).
        b.sync()
        val refused = b.rejectedRows()
        assertEquals(1, refused.size)
        assertTrue("the server's code", refused[0].code.isNotEmpty())
        assertTrue(refused[0].message, refused[0].message.contains("NOT NULL"))
        val quarantined = b.quarantinedRows()
        assertEquals(1, quarantined.size)
        assertTrue(quarantined[0].reason, quarantined[0].reason.contains("w"))
        val status = b.status()
        assertEquals(1UL, status.rejected)
        assertEquals(1UL, status.quarantined)
        assertNull(status.lastErrorKind)
        b.waitForFirstSync()
    }

    @Test
    fun theTokenNeverShowsInToString() {
        val config = ErthConfig(
            path = "/data/todos.db",
            url = "libsql://db.example.io?authToken=url-s3cret",
            authToken = "field-s3cret",
        )
        val text = config.toString()
        assertFalse(text, text.contains("s3cret"))
        assertTrue(text, text.contains("<redacted>"))
        assertTrue(text, text.contains("https://db.example.io"))
        assertEquals("field-s3cret", config.authToken)
    }
}
