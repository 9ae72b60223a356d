// XCTest tests of interactive write transactions in the Swift bindings:
// ErthDb.writeTransaction { tx in ... } (the closure form in
// bindings-mobile/swift/) over the engine's ErthWriteTransaction, on a local
// replica (no server needed). Run by `cargo xtask test swift`.
import ErthSync
import Foundation
import XCTest

let transactionSchema = """
{"tables": {
    "counters": {"columns": {"name": {"type": "text"}, "n": {"type": "integer"}}},
    "notes": {"columns": {"body": {"type": "text"}}}}}
"""

/// A flag set by one task and polled by another.
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() {
        lock.lock()
        value = true
        lock.unlock()
    }

    var isSet: Bool {
        lock.lock()
        defer { lock.unlock() }
        return value
    }

    func wait() async throws {
        while !isSet {
            try await Task.sleep(nanoseconds: 5_000_000)
        }
    }
}

struct Boom: Error, Equatable {
    let id = UUID()
}

func counter(_ db: ErthDb) async throws -> Int64 {
    try single(await db.query(sql: "SELECT n FROM counters WHERE name = 'c'", params: []))
}

func counter(_ tx: ErthWriteTransaction) async throws -> Int64 {
    try single(await tx.query(sql: "SELECT n FROM counters WHERE name = 'c'", params: []))
}

func setCounter(_ tx: ErthWriteTransaction, _ n: Int64) async throws {
    let out = try await tx.execute(sql: "UPDATE counters SET n = ? WHERE name = 'c'", params: [.integer(n)])
    XCTAssertEqual(out.rowsAffected, 1)
}

func single(_ rows: Rows) throws -> Int64 {
    guard rows.rows.count == 1, case .integer(let n) = rows.rows[0].first else {
        throw Boom()
    }
    return n
}

func notes(_ db: ErthDb) async throws -> [String] {
    labels(try await db.query(sql: "SELECT body FROM notes ORDER BY body", params: []))
}

func isLocked(_ error: Error) -> Bool {
    if case ErthError.DatabaseLocked = error { return true }
    return false
}

final class ErthWriteTransactionTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("erth-swift-tx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir {
            try FileManager.default.removeItem(at: dir)
        }
    }

    func open(lockTimeoutMs: UInt64? = nil) async throws -> ErthDb {
        let db = try await ErthDb.open(config: ErthConfig(
            path: dir.appendingPathComponent("tx.db").path, schema: transactionSchema,
            lockTimeoutMs: lockTimeoutMs
        ))
        _ = try await db.execute(sql: "INSERT INTO counters (name, n) VALUES ('c', 0)", params: [])
        return db
    }

    func testConcurrentReadModifyWritesAndPlainWritesNeverInterleave() async throws {
        let db = try await open()
        // A transaction reads, lets a plain write start, then writes what it
        // read plus one: the plain write must wait for the commit.
        let plainDone = Flag()
        var plain: Task<ExecuteResult, Error>?
        let returned = try await db.writeTransaction { tx -> String in
            let n = try await counter(tx)
            plain = Task {
                let out = try await db.execute(sql: "UPDATE counters SET n = n + 100 WHERE name = 'c'", params: [])
                plainDone.set()
                return out
            }
            try await Task.sleep(nanoseconds: 300_000_000)
            XCTAssertFalse(plainDone.isSet, "the plain write waits for the transaction")
            try await setCounter(tx, n + 1)
            return "done"
        }
        XCTAssertEqual(returned, "done")
        let out = try await plain!.value
        XCTAssertEqual(out.rowsAffected, 1)
        let afterOne = try await counter(db)
        XCTAssertEqual(afterOne, 101)

        // Several transactions incrementing at once, with plain writers
        // alongside: every increment counts.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    try await db.writeTransaction { tx in
                        let n = try await counter(tx)
                        await Task.yield()
                        try await Task.sleep(nanoseconds: 5_000_000)
                        try await setCounter(tx, n + 1)
                    }
                }
            }
            for _ in 0..<4 {
                group.addTask {
                    _ = try await db.execute(sql: "UPDATE counters SET n = n + 1000 WHERE name = 'c'", params: [])
                }
            }
            try await group.waitForAll()
        }
        let final = try await counter(db)
        XCTAssertEqual(final, 101 + 8 + 4_000)
    }

    func testReadsInsideSeeTheTransactionsOwnWritesAndOutsideReadsWaitForTheCommit() async throws {
        let db = try await open()
        let outsideDone = Flag()
        var outside: Task<[String], Error>?
        try await db.writeTransaction { tx in
            _ = try await tx.execute(sql: "INSERT INTO notes (body) VALUES (?)", params: [.text("own")])
            let seen = labels(try await tx.query(sql: "SELECT body FROM notes", params: []))
            XCTAssertEqual(seen, ["own"])
            XCTAssertTrue(tx.isOpen())
            outside = Task {
                let rows = try await notes(db)
                outsideDone.set()
                return rows
            }
            try await Task.sleep(nanoseconds: 200_000_000)
            XCTAssertFalse(outsideDone.isSet, "an outside read waits for the transaction")
        }
        let seenOutside = try await outside!.value
        XCTAssertEqual(seenOutside, ["own"], "an outside read never sees uncommitted rows")
    }

    func testAnErrorInsideRollsEverythingBackAndIsRethrown() async throws {
        let db = try await open()
        let boom = Boom()
        do {
            try await db.writeTransaction { tx in
                _ = try await tx.execute(sql: "INSERT INTO notes (body) VALUES (?)", params: [.text("half")])
                try await setCounter(tx, 42)
                throw boom
            }
            XCTFail("the body's error must be rethrown")
        } catch let error as Boom {
            XCTAssertEqual(error, boom)
        }
        var left = try await notes(db)
        XCTAssertEqual(left, [])
        let n = try await counter(db)
        XCTAssertEqual(n, 0)
        // A failed statement inside is typed and, uncaught, rolls back too.
        do {
            try await db.writeTransaction { tx in
                _ = try await tx.execute(sql: "INSERT INTO notes (body) VALUES (?)", params: [.text("first")])
                _ = try await tx.execute(sql: "INSERT INTO no_such_table VALUES (1)", params: [])
            }
            XCTFail("expected ErthError.Sql")
        } catch ErthError.Sql(let message) {
            XCTAssertTrue(message.contains("no_such_table"), message)
        }
        left = try await notes(db)
        XCTAssertEqual(left, [])
        // The lock is free again: a plain write goes through at once.
        let started = Date()
        _ = try await db.execute(sql: "INSERT INTO notes (body) VALUES ('after')", params: [])
        XCTAssertLessThan(Date().timeIntervalSince(started), 2)
        left = try await notes(db)
        XCTAssertEqual(left, ["after"])
    }

    func testACancelledTaskRollsBackAndReleasesTheLock() async throws {
        let db = try await open(lockTimeoutMs: 2_000)
        let wrote = Flag()
        let task = Task {
            try await db.writeTransaction { tx in
                _ = try await tx.execute(sql: "INSERT INTO notes (body) VALUES ('cancelled')", params: [])
                wrote.set()
                try await Task.sleep(nanoseconds: 60_000_000_000)
            }
        }
        try await wrote.wait()
        task.cancel()
        let result = await task.result
        guard case .failure(let error) = result, error is CancellationError else {
            return XCTFail("expected CancellationError, got \(result)")
        }
        let started = Date()
        let left = try await notes(db)
        XCTAssertEqual(left, [])
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "the lock was released at once")
        let seven = try await db.writeTransaction { tx -> Int64 in
            try await setCounter(tx, 7)
            return try await counter(tx)
        }
        XCTAssertEqual(seven, 7)
    }

    func testASecondTransactionWaitingPastTheLockTimeoutFailsWithDatabaseLocked() async throws {
        let db = try await open(lockTimeoutMs: 300)
        let holding = Flag()
        let release = Flag()
        let first = Task {
            try await db.writeTransaction { tx in
                try await setCounter(tx, 1)
                holding.set()
                try await release.wait()
            }
        }
        try await holding.wait()
        let started = Date()
        do {
            try await db.writeTransaction { tx in try await setCounter(tx, 2) }
            XCTFail("expected ErthError.DatabaseLocked")
        } catch {
            XCTAssertTrue(isLocked(error), "got \(error)")
            let waited = Date().timeIntervalSince(started)
            XCTAssertTrue(waited >= 0.25 && waited < 5, "waited \(waited) s")
        }
        // A plain write waits the same way.
        do {
            _ = try await db.execute(sql: "UPDATE counters SET n = 3 WHERE name = 'c'", params: [])
            XCTFail("expected ErthError.DatabaseLocked")
        } catch {
            XCTAssertTrue(isLocked(error), "got \(error)")
        }
        release.set()
        try await first.value
        var n = try await counter(db)
        XCTAssertEqual(n, 1)
        try await db.writeTransaction { tx in try await setCounter(tx, try await counter(tx) + 1) }
        n = try await counter(db)
        XCTAssertEqual(n, 2)
    }

    func testTheHandleForwardsCommitAndRollbackDirectly() async throws {
        let db = try await open()
        let kept = try await db.writeTransaction()
        _ = try await kept.execute(sql: "INSERT INTO notes (body) VALUES ('kept')", params: [])
        try await kept.commit()
        XCTAssertFalse(kept.isOpen())
        do {
            _ = try await kept.execute(sql: "INSERT INTO notes (body) VALUES ('late')", params: [])
            XCTFail("expected ErthError.Sql")
        } catch ErthError.Sql {
        }
        let dropped = try await db.writeTransaction()
        _ = try await dropped.execute(sql: "INSERT INTO notes (body) VALUES ('dropped')", params: [])
        try await dropped.rollback()
        try await dropped.rollback() // does nothing once ended
        // The last reference dropped without commit: rolled back.
        var released: ErthWriteTransaction? = try await db.writeTransaction()
        _ = try await released?.execute(sql: "INSERT INTO notes (body) VALUES ('released')", params: [])
        XCTAssertTrue(released?.isOpen() ?? false)
        released = nil
        let left = try await notes(db)
        XCTAssertEqual(left, ["kept"])
    }
}
