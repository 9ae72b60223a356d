// JUnit 4 tests of the Kotlin face's sync limits against a server that
// accepts connections and never answers (a listening socket nobody reads:
// the kernel completes the handshake, the request waits forever). Run with
// `cargo xtask test kotlin`.
package dev.erth.sync

import dev.erth.sync.core.*
import java.net.InetAddress
import java.net.ServerSocket
import java.nio.file.Files
import java.nio.file.Path
import kotlinx.coroutines.runBlocking
import org.junit.After
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Before
import org.junit.Test

class ErthTimeoutTest {
    private lateinit var dir: Path
    private lateinit var silent: ServerSocket
    private val opened = mutableListOf<AutoCloseable>()

    @Before
    fun setUp() {
        dir = Files.createTempDirectory("erth-kotlin-timeout")
        silent = ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"))
    }

    @After
    fun tearDown() {
        opened.asReversed().forEach { it.close() }
        silent.close()
        dir.toFile().deleteRecursively()
    }

    private suspend fun openSilent(name: String, requestTimeoutMs: ULong, syncTimeoutMs: ULong): ErthDb {
        val config = ErthConfig(
            path = dir.resolve(name).toString(),
            url = "http://127.0.0.1:${silent.localPort}",
            requestTimeoutMs = requestTimeoutMs,
            syncTimeoutMs = syncTimeoutMs,
        )
        return ErthDb.open(config).also { opened.add(it) }
    }

    /** The sync failed with Network saying `why`; the edit is kept, nothing is left syncing. */
    private suspend fun assertEndedWith(db: ErthDb, why: Regex) {
        val e = try {
            db.sync()
            null
        } catch (e: ErthException.Network) {
            e
        }
        assertNotNull("a silent server must fail the sync", e)
        assertTrue("message: ${e!!.message}", why.containsMatchIn(e.message ?: ""))
        val status = db.status()
        assertFalse(status.syncing)
        assertEquals(ErrorKind.NETWORK, status.lastErrorKind)
        assertEquals(1UL, status.pendingChanges)
        assertEquals(1, db.listActiveTodos().size)
    }

    @Test
    fun aSilentServerCostsOneRequestTimeout() = runBlocking {
        val db = openSilent("request.db", requestTimeoutMs = 400UL, syncTimeoutMs = 0UL)
        db.addTodo("kept")
        assertEndedWith(db, Regex("timed out"))
    }

    @Test
    fun aWholeSyncStopsAtItsOwnLimitWhateverTheRequestTimeout() = runBlocking {
        val db = openSilent("deadline.db", requestTimeoutMs = 120_000UL, syncTimeoutMs = 500UL)
        db.addTodo("kept")
        assertEndedWith(db, Regex("longer than its limit \\(500 ms\\)"))
    }
}
