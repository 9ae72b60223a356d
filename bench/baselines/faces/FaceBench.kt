// One-row inserts and point reads through erth-sync's Kotlin face, on the
// file erth-bench's own Rust measurement used (its `faces` section).
//
//     java ... FaceBenchKt --db FILE --n N
//
// `ErthDb.addTodo` and `ErthDb.getTodo` (suspend functions) called one
// after the other in one `runBlocking`, each timed alone with
// `System.nanoTime`, after 200 calls of each that are not kept (the JIT
// compiles the paths meanwhile). Prints one JSON object: samples in ms.
import dev.erth.sync.ErthConfig
import dev.erth.sync.ErthDb
import kotlinx.coroutines.runBlocking
import kotlin.system.exitProcess

private const val WARM = 200

fun main(args: Array<String>) {
    val db = args[args.indexOf("--db") + 1]
    val n = args[args.indexOf("--n") + 1].toInt()
    val insert = ArrayList<Double>()
    val read = ArrayList<Double>()
    runBlocking {
        val erth = ErthDb.open(ErthConfig(path = db))
        try {
            val ids = ArrayList<String>()
            for (i in 0 until WARM + n) {
                val t = System.nanoTime()
                val todo = erth.addTodo("kotlin $i")
                if (i >= WARM) insert.add((System.nanoTime() - t) / 1e6)
                ids.add(todo.id)
            }
            for (i in 0 until WARM + n) {
                val t = System.nanoTime()
                val todo = erth.getTodo(ids[i])
                if (i >= WARM) read.add((System.nanoTime() - t) / 1e6)
                if (todo.id != ids[i]) {
                    System.err.println("read ${todo.id}, not ${ids[i]}")
                    exitProcess(1)
                }
            }
        } finally {
            erth.close()
        }
    }
    val version = "Kotlin ${KotlinVersion.CURRENT} on Java ${System.getProperty("java.version")}"
    println("{\"insert\": $insert, \"read\": $read, \"version\": \"$version\"}")
}
