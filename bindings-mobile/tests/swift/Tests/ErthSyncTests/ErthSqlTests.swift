// XCTest tests of the SQL surface of the Swift bindings: an app schema,
// execute / query / transaction, SqlValue of every type through a real Hrana
// server (ERTH_TEST_HRANA_URL, token in ERTH_TEST_HRANA_TOKEN), live queries
// as a callback handle and as an AsyncStream. Run by `cargo xtask test swift`.
// The server may be shared with other runs: every row carries a tag unique
// to the test, and only tagged rows are compared.
import ErthSync
import Foundation
import XCTest

/// Every SQLite type, nullable, plus a tag per test.
let kindsSchema = """
{"tables": {"kinds": {"columns": {
    "tag": {"type": "text", "notNull": true, "default": ""},
    "label": {"type": "text"},
    "i": {"type": "integer"}, "r": {"type": "real"},
    "t": {"type": "text"}, "b": {"type": "blob"}}}}}
"""

/// Collects a live query's labels; safe to call from the Rust thread that commits.
final class LabelRecorder: LiveQueryListener, @unchecked Sendable {
    private let lock = NSLock()
    private var delivered: [[String]] = []

    func onRows(rows: Rows) throws {
        lock.lock()
        delivered.append(labels(rows))
        lock.unlock()
    }

    /// Everything delivered since the last call.
    func take() -> [[String]] {
        lock.lock()
        defer { lock.unlock() }
        let out = delivered
        delivered.removeAll()
        return out
    }
}

func labels(_ rows: Rows) -> [String] {
    rows.rows.map { row in
        if case .text(let label) = row.first { return label }
        return "<not text: \(String(describing: row.first))>"
    }
}

final class ErthSqlTests: XCTestCase {
    var dir: URL!
    var url: String!
    var token: String?
    let tag = UUID().uuidString

    override func setUpWithError() throws {
        (url, token) = try testServer()
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("erth-swift-sql-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir {
            try FileManager.default.removeItem(at: dir)
        }
    }

    func open(_ name: String, url: String?? = .none) async throws -> ErthDb {
        let server: String? = url ?? self.url
        return try await ErthDb.open(config: ErthConfig(
            path: dir.appendingPathComponent(name).path, url: server, authToken: token,
            schema: kindsSchema
        ))
    }

    func tagged(_ db: ErthDb, _ columns: String = "label, i, r, t, b") async throws -> [[SqlValue]] {
        try await db.query(
            sql: "SELECT \(columns) FROM kinds WHERE tag = ? ORDER BY label", params: [.text(tag)]
        ).rows
    }

    @discardableResult
    func insert(_ db: ErthDb, _ label: String, _ i: SqlValue = .null) async throws -> String {
        let out = try await db.execute(
            sql: "INSERT INTO kinds (tag, label, i) VALUES (?, ?, ?)", params: [.text(tag), .text(label), i]
        )
        XCTAssertEqual(out.rowsAffected, 1)
        let rows = try await db.query(
            sql: "SELECT id FROM kinds WHERE tag = ? AND label = ?", params: [.text(tag), .text(label)]
        )
        guard case .text(let id) = rows.rows.first?.first else {
            XCTFail("no id for \(label): \(rows)")
            return ""
        }
        return id
    }

    func testEveryTypeSurvivesOfflineWritesOnTwoReplicasAndConverges() async throws {
        let a = try await open("a.db")
        let b = try await open("b.db")
        let blob = Data((0..<1_000_000).map { UInt8($0 % 251) })
        let unicode = "'; DROP TABLE kinds; -- \"q\" \u{0} nul, \u{1F980} non-BMP"
        let insert = "INSERT INTO kinds (tag, label, i, r, t, b) VALUES (?, ?, ?, ?, ?, ?)"
        let results = try await a.transaction(statements: [
            Statement(sql: insert, args: [.text(tag), .text("a 2^53+1"), .integer((1 << 53) + 1), .real(0.5), .text(""), .null]),
            Statement(sql: insert, args: [.text(tag), .text("a max"), .integer(Int64.max), .real(-1.0e-300), .text(unicode), .blob(blob)]),
            Statement(sql: insert, args: [.text(tag), .text("a min"), .integer(Int64.min), .null, .null, .blob(Data())]),
        ])
        XCTAssertEqual(results.map { $0.rowsAffected }, [1, 1, 1])
        _ = try await b.execute(sql: insert, params: [.text(tag), .text("b nulls"), .null, .null, .null, .null])
        _ = try await b.execute(sql: insert, params: [.text(tag), .text("b empty"), .integer(0), .real(0), .text(""), .blob(Data())])
        let updated = try await b.execute(
            sql: "UPDATE kinds SET t = ? WHERE tag = ? AND label = ?", params: [.text("x"), .text(tag), .text("b nulls")]
        )
        XCTAssertEqual(updated.rowsAffected, 1)

        let expected: [[SqlValue]] = [
            [.text("a 2^53+1"), .integer((1 << 53) + 1), .real(0.5), .text(""), .null],
            [.text("a max"), .integer(Int64.max), .real(-1.0e-300), .text(unicode), .blob(blob)],
            [.text("a min"), .integer(Int64.min), .null, .null, .blob(Data())],
            [.text("b empty"), .integer(0), .real(0), .text(""), .blob(Data())],
            [.text("b nulls"), .null, .null, .text("x"), .null],
        ]
        // Offline: each replica has its own rows only, exactly as written.
        let offlineA = try await tagged(a)
        let offlineB = try await tagged(b)
        XCTAssertEqual(offlineA, Array(expected[0..<3]))
        XCTAssertEqual(offlineB, Array(expected[3...]))

        _ = try await a.sync()
        _ = try await b.sync()
        _ = try await a.sync()
        let syncedA = try await tagged(a)
        let syncedB = try await tagged(b)
        XCTAssertEqual(syncedA, expected)
        XCTAssertEqual(syncedB, expected)
        let statusA = try await a.status()
        let statusB = try await b.status()
        XCTAssertEqual(statusA.pendingChanges, 0)
        XCTAssertEqual(statusB.pendingChanges, 0)
    }

    func testADeleteStaysDeleted() async throws {
        let a = try await open("a.db")
        let b = try await open("b.db")
        let id = try await insert(a, "doomed", .integer(1))
        try await insert(a, "kept", .integer(1))
        _ = try await a.sync()
        _ = try await b.sync()
        let before = try await tagged(b, "label")
        XCTAssertEqual(before, [[.text("doomed")], [.text("kept")]])

        // Offline: B deletes the row while A edits it.
        let deleted = try await b.execute(sql: "DELETE FROM kinds WHERE id = ?", params: [.text(id)])
        XCTAssertEqual(deleted.rowsAffected, 1)
        let edited = try await a.execute(sql: "UPDATE kinds SET i = 2 WHERE id = ?", params: [.text(id)])
        XCTAssertEqual(edited.rowsAffected, 1)
        _ = try await a.sync()
        _ = try await b.sync()
        _ = try await a.sync()
        // A later write cannot bring it back, nor can a third replica see it.
        let late = try await a.execute(sql: "UPDATE kinds SET i = 3 WHERE id = ?", params: [.text(id)])
        XCTAssertEqual(late.rowsAffected, 0)
        _ = try await a.sync()
        _ = try await b.sync()
        let c = try await open("c.db")
        _ = try await c.sync()
        for db in [a, b, c] {
            let rows = try await tagged(db, "label")
            XCTAssertEqual(rows, [[.text("kept")]])
        }
    }

    func testWatchAndAsyncStreamSeeLocalAndPulledChangesAndStopWhenCancelled() async throws {
        let a = try await open("a.db")
        let b = try await open("b.db")
        let sql = "SELECT label FROM kinds WHERE tag = ? ORDER BY label"
        let params: [SqlValue] = [.text(tag)]

        let recorder = LabelRecorder()
        let live = try b.watch(sql: sql, params: params, listener: recorder)
        XCTAssertEqual(recorder.take(), [[]], "the first rows arrive before watch returns")
        XCTAssertEqual(live.tables(), ["kinds"])

        let stream = try b.watchStream(sql: sql, params: params)
        var rows = stream.makeAsyncIterator()
        let first = await rows.next().map(labels)
        XCTAssertEqual(first, [])

        try await insert(b, "local")
        XCTAssertEqual(recorder.take(), [["local"]], "delivered before execute returned")
        let local = await rows.next().map(labels)
        XCTAssertEqual(local, ["local"])

        try await insert(a, "remote")
        _ = try await a.sync()
        _ = try await b.sync()
        XCTAssertEqual(recorder.take(), [["local", "remote"]])
        let pulled = await rows.next().map(labels)
        XCTAssertEqual(pulled, ["local", "remote"])

        // An unrelated write does not re-deliver unchanged rows.
        _ = try await b.execute(
            sql: "INSERT INTO kinds (tag, label) VALUES (?, ?)", params: [.text("other \(tag)"), .text("x")]
        )
        XCTAssertEqual(recorder.take(), [])

        // A consuming task that is cancelled ends its loop (the stream's
        // termination handler stops the live query).
        let consumer = Task { () -> Int in
            var seen = 0
            for await _ in try b.watchStream(sql: sql, params: params) {
                seen += 1
            }
            return seen
        }
        consumer.cancel()
        let consumed = try await consumer.value
        XCTAssertLessThanOrEqual(consumed, 1)

        try live.stop()
        XCTAssertFalse(live.isActive())
        try await insert(b, "local after stop")
        try await insert(a, "remote after stop")
        _ = try await a.sync()
        _ = try await b.sync()
        XCTAssertEqual(recorder.take(), [], "no delivery after stop")
        let all = try await tagged(b, "label")
        XCTAssertEqual(all.count, 4)
    }

    func testSqlMistakesAreTypedAndChangeNothing() async throws {
        let db = try await open("a.db", url: .some(nil))
        try await insert(db, "one")
        do {
            _ = try await db.transaction(statements: [
                Statement(sql: "INSERT INTO kinds (tag, label) VALUES (?, ?)", args: [.text(tag), .text("two")]),
                Statement(sql: "INSERT INTO no_such_table VALUES (1)", args: []),
            ])
            XCTFail("the transaction must fail")
        } catch ErthError.Sql(let message) {
            XCTAssertFalse(message.isEmpty)
        }
        for bad in ["DROP TABLE kinds", "BEGIN", "SELEC 1"] {
            do {
                _ = try await db.execute(sql: bad, params: [])
                XCTFail("\(bad) should fail")
            } catch ErthError.Sql {}
        }
        do {
            _ = try await db.query(sql: "DELETE FROM kinds", params: [])
            XCTFail("query() must refuse a write")
        } catch ErthError.Sql {}
        let rows = try await tagged(db, "label")
        XCTAssertEqual(rows, [[.text("one")]])
    }

    func testAWrongUrlGivesTheTypedNetworkErrorAndKeepsLocalWrites() async throws {
        let db = try await open("a.db", url: "http://127.0.0.1:1")
        try await insert(db, "offline", .integer(7))
        do {
            _ = try await db.sync()
            XCTFail("sync to a closed port must fail")
        } catch ErthError.Network(let message) {
            XCTAssertFalse(message.isEmpty)
        }
        let rows = try await tagged(db, "label, i")
        XCTAssertEqual(rows, [[.text("offline"), .integer(7)]])
        let status = try await db.status()
        XCTAssertEqual(status.pendingChanges, 1)
    }

    func testConcurrentSqlFromManyTasksIsSafe() async throws {
        let a = try await open("a.db")
        let workers = 8
        let each = 10
        let tag = self.tag
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<workers {
                group.addTask {
                    for i in 0..<each {
                        _ = try await a.execute(
                            sql: "INSERT INTO kinds (tag, label, i) VALUES (?, ?, ?)",
                            params: [.text(tag), .text("w\(w)-\(i)"), .integer(Int64(i))]
                        )
                    }
                    _ = try await a.transaction(statements: [Statement(
                        sql: "UPDATE kinds SET i = i + 100 WHERE tag = ? AND label = ?",
                        args: [.text(tag), .text("w\(w)-0")]
                    )])
                    _ = try await a.query(sql: "SELECT count(*) FROM kinds WHERE tag = ?", params: [.text(tag)])
                    _ = try await a.sync()
                }
            }
            try await group.waitForAll()
        }
        let count = "SELECT count(*), sum(i) FROM kinds WHERE tag = ?"
        let mine = try await a.query(sql: count, params: [.text(tag)]).rows
        let expectedSum = Int64(workers * ((0..<each).reduce(0, +) + 100))
        XCTAssertEqual(mine, [[.integer(Int64(workers * each)), .integer(expectedSum)]])
        _ = try await a.sync()

        let b = try await open("b.db")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask { _ = try await b.sync() }
            }
            try await group.waitForAll()
        }
        let theirs = try await b.query(sql: count, params: [.text(tag)]).rows
        XCTAssertEqual(theirs, mine)
    }
}
