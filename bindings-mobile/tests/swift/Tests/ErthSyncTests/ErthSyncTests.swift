// XCTest tests of the generated Swift bindings (module ErthSync), run on
// Linux against liberth_mobile.so and a real Hrana server whose URL is in
// ERTH_TEST_HRANA_URL (token, if it needs one, in ERTH_TEST_HRANA_TOKEN): a
// local `tursodb --sync-server`, or any server. Run them with
// `cargo xtask test swift`.
import ErthSync
import Foundation
import XCTest

/// Collects events; safe to call from the Rust thread that commits.
final class Recorder: ChangeListener, @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ChangeEvent] = []
    private let fails: Bool

    init(fails: Bool = false) {
        self.fails = fails
    }

    func onChange(event: ChangeEvent) throws {
        lock.lock()
        events.append(event)
        lock.unlock()
        if fails {
            throw RecorderFailure.onPurpose
        }
    }

    var all: [ChangeEvent] {
        lock.lock()
        defer { lock.unlock() }
        return events
    }

    func clear() {
        lock.lock()
        events.removeAll()
        lock.unlock()
    }
}

enum RecorderFailure: Error {
    case onPurpose
}

/// The test server's URL and token, from ERTH_TEST_HRANA_URL / ERTH_TEST_HRANA_TOKEN.
func testServer() throws -> (String, String?) {
    let env = ProcessInfo.processInfo.environment
    guard let url = env["ERTH_TEST_HRANA_URL"], !url.isEmpty else {
        XCTFail("ERTH_TEST_HRANA_URL is not set: run these tests with `cargo xtask test swift`")
        throw RecorderFailure.onPurpose
    }
    return (url, env["ERTH_TEST_HRANA_TOKEN"].flatMap { $0.isEmpty ? nil : $0 })
}

/// What two replicas must agree on: id, title, completion.
struct View: Equatable, CustomStringConvertible {
    let id: String
    let title: String
    let done: Bool
    var description: String { "\(title)\(done ? " (done)" : "")" }
}

func view(_ todos: [Todo]) -> [View] {
    todos.map { View(id: $0.id, title: $0.title, done: $0.isCompleted) }.sorted { $0.id < $1.id }
}

final class ErthSyncTests: XCTestCase {
    var dir: URL!
    var url: String!
    var token: String?

    override func setUpWithError() throws {
        (url, token) = try testServer()
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("erth-swift-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir {
            try FileManager.default.removeItem(at: dir)
        }
    }

    func open(
        _ name: String, url: String?? = .none, schema: String? = nil, autoSync: AutoSyncOptions? = nil
    ) async throws -> ErthDb {
        let server: String? = url ?? self.url
        return try await ErthDb.open(config: ErthConfig(
            path: dir.appendingPathComponent(name).path, url: server, authToken: token,
            schema: schema, autoSync: autoSync
        ))
    }

    /// Runs `body`, which must throw the ErthError case `matches` accepts.
    func assertErth(
        _ what: String,
        _ matches: (ErthError) -> Bool,
        _ body: () async throws -> Void,
        file: StaticString = #filePath,
        line: UInt = #line
    ) async {
        do {
            try await body()
            XCTFail("\(what): nothing was thrown", file: file, line: line)
        } catch let error as ErthError {
            XCTAssertTrue(matches(error), "\(what): got \(error)", file: file, line: line)
        } catch {
            XCTFail("\(what): not an ErthError: \(error)", file: file, line: line)
        }
    }

    func testOfflineEditsOnTwoReplicasConvergeAfterSync() async throws {
        let a = try await open("a.db")
        let b = try await open("b.db")
        // The server outlives one test: titles carry a tag unique to this run.
        let tag = UUID().uuidString.prefix(8)

        let a1 = try await a.addTodo(title: "\(tag) a1")
        let a2 = try await a.addTodo(title: "\(tag) a2")
        let a3 = try await a.addTodo(title: "\(tag) a3")
        let renamed = try await a.renameTodo(id: a1.id, title: "\(tag) a1 renamed")
        XCTAssertEqual(renamed.title, "\(tag) a1 renamed")
        let done = try await a.setTodoCompleted(id: a2.id, completed: true)
        XCTAssertTrue(done.isCompleted)
        let deleted = try await a.deleteTodo(id: a3.id)
        XCTAssertTrue(deleted)

        let b1 = try await b.addTodo(title: "\(tag) b1")
        let b2 = try await b.addTodo(title: "\(tag) b2")
        let b3 = try await b.addTodo(title: "\(tag) b3")
        _ = try await b.renameTodo(id: b1.id, title: "\(tag) b1 renamed")
        _ = try await b.setTodoCompleted(id: b2.id, completed: true)
        let bDeleted = try await b.deleteTodo(id: b3.id)
        XCTAssertTrue(bDeleted)
        let again = try await b.deleteTodo(id: b3.id)
        XCTAssertFalse(again, "deleting twice reports false")

        let offline = try await a.listActiveTodos()
        XCTAssertEqual(Set(offline.map(\.title)), ["\(tag) a1 renamed", "\(tag) a2"])
        let pendingA = try await a.status().pendingChanges
        let pendingB = try await b.status().pendingChanges
        XCTAssertEqual(pendingA, 3)
        XCTAssertEqual(pendingB, 3)

        let pushA = try await a.sync()
        XCTAssertEqual(pushA.pushed, 3)
        let syncB = try await b.sync()
        XCTAssertEqual(syncB.pushed, 3)
        XCTAssertGreaterThanOrEqual(syncB.pulled, 3)
        let syncA = try await a.sync()
        XCTAssertGreaterThanOrEqual(syncA.pulled, 3)

        let listA = try await a.listActiveTodos()
        let listB = try await b.listActiveTodos()
        XCTAssertEqual(view(listA), view(listB))
        let ours = listA.filter { $0.title.hasPrefix(tag) }
        XCTAssertEqual(ours.count, 4, "\(view(ours))")
        let byTitle = Dictionary(ours.map { ($0.title, $0) }, uniquingKeysWith: { first, _ in first })
        for title in ["a1 renamed", "a2", "b1 renamed", "b2"].map({ "\(tag) \($0)" }) {
            XCTAssertNotNil(byTitle[title], "\(title) missing from \(view(listA))")
        }
        XCTAssertNil(byTitle["\(tag) a3"])
        XCTAssertNil(byTitle["\(tag) b3"])
        XCTAssertEqual(byTitle["\(tag) a2"]?.isCompleted, true)
        XCTAssertEqual(byTitle["\(tag) b2"]?.isCompleted, true)
        XCTAssertEqual(byTitle["\(tag) a1 renamed"]?.isCompleted, false)

        // A concurrent offline edit of the same todo: last writer wins, on both.
        _ = try await a.renameTodo(id: b1.id, title: "\(tag) from A")
        try await Task.sleep(nanoseconds: 5_000_000) // B's edit is later on the wall clock too
        _ = try await b.renameTodo(id: b1.id, title: "\(tag) from B")
        _ = try await a.sync()
        _ = try await b.sync()
        _ = try await a.sync()
        let winner = try await a.getTodo(id: b1.id)
        XCTAssertEqual(winner.title, "\(tag) from B")
        let finalA = try await a.listActiveTodos()
        let finalB = try await b.listActiveTodos()
        XCTAssertEqual(view(finalA), view(finalB))

        for db in [a, b] {
            let status = try await db.status()
            XCTAssertEqual(status.pendingChanges, 0)
            XCTAssertNotNil(status.lastSyncAtMs)
            XCTAssertNil(status.lastError)
            XCTAssertEqual(status.remoteUrl, url)
        }
    }

    func testSubscriptionSeesLocalAndPulledChangesAndStopsAfterUnsubscribe() async throws {
        let a = try await open("a.db")
        let b = try await open("b.db")
        let recorder = Recorder()
        let sub = try b.subscribe(listener: recorder)
        XCTAssertTrue(sub.isActive())

        // Listeners run before the write returns.
        let local = try await b.addTodo(title: "local")
        XCTAssertEqual(recorder.all, [ChangeEvent(table: "todos", ids: [local.id], origin: .local)])

        _ = try await b.sync()
        recorder.clear()
        let remote = try await a.addTodo(title: "remote")
        _ = try await a.sync()
        _ = try await b.sync()
        let pulled = recorder.all.filter { $0.origin == .remote }
        XCTAssertFalse(pulled.isEmpty, "no remote event after B pulled A's todo")
        XCTAssertTrue(pulled.contains { $0.table == "todos" && $0.ids.contains(remote.id) }, "\(pulled)")

        try sub.unsubscribe()
        XCTAssertFalse(sub.isActive())
        recorder.clear()
        _ = try await b.addTodo(title: "after unsubscribe")
        _ = try await a.addTodo(title: "remote after unsubscribe")
        _ = try await a.sync()
        _ = try await b.sync()
        XCTAssertEqual(recorder.all, [], "no event after unsubscribe")

        // Releasing the last reference to a subscription unsubscribes too.
        let dropped = Recorder()
        var handle: Subscription? = try b.subscribe(listener: dropped)
        _ = try await b.addTodo(title: "seen")
        XCTAssertEqual(dropped.all.count, 1)
        XCTAssertNotNil(handle)
        handle = nil
        _ = try await b.addTodo(title: "not seen")
        XCTAssertEqual(dropped.all.count, 1)
    }

    func testAThrowingListenerBreaksNeitherTheWriteNorOtherListeners() async throws {
        let db = try await open("a.db")
        let failing = Recorder(fails: true)
        let good = Recorder()
        let s1 = try db.subscribe(listener: failing)
        let s2 = try db.subscribe(listener: good)
        let todo = try await db.addTodo(title: "still saved")
        XCTAssertEqual(failing.all.count, 1)
        XCTAssertEqual(good.all.map(\.ids), [[todo.id]])
        let stored = try await db.getTodo(id: todo.id)
        XCTAssertEqual(stored.title, "still saved")
        try s1.unsubscribe()
        try s2.unsubscribe()
    }

    func testAnUnreachableServerGivesTheTypedNetworkError() async throws {
        let db = try await open("a.db", url: "http://127.0.0.1:1")
        let todo = try await db.addTodo(title: "works offline")
        await assertErth("sync to a closed port", { if case .Network = $0 { return true }; return false }) {
            _ = try await db.sync()
        }
        let status = try await db.status()
        XCTAssertNotNil(status.lastError, "status keeps the error")
        XCTAssertEqual(status.pendingChanges, 1)
        let stored = try await db.getTodo(id: todo.id)
        XCTAssertEqual(stored, todo)
    }

    func testASubscriptionPullsOnlyItsRowsWhichLeaveWhenTheyNoLongerMatch() async throws {
        let writer = try await open("w.db")
        let phone = try await open("p.db")
        let tag = String(UUID().uuidString.prefix(8))
        let keep = try await writer.addTodo(title: "\(tag) keep")
        _ = try await writer.addTodo(title: "\(tag) other")
        _ = try await writer.sync()

        try await phone.addSubscription(
            name: "mine", table: "todos", filter: "title LIKE ?", params: [.text("\(tag) keep%")], ttlMs: nil)
        try await phone.waitForSubscription(name: "mine")
        let titles = try await phone.listActiveTodos().map { $0.title }
        XCTAssertEqual(titles, ["\(tag) keep"])
        let subs = try await phone.subscriptions()
        XCTAssertEqual(subs.map { $0.name }, ["mine"])
        XCTAssertTrue(subs[0].ready)

        // The row leaves the filter on the server: evicted here, not deleted there.
        _ = try await writer.renameTodo(id: keep.id, title: "\(tag) moved")
        _ = try await writer.sync()
        _ = try await phone.sync()
        let left = try await phone.listActiveTodos()
        XCTAssertTrue(left.isEmpty)
        let pending = try await phone.status().pendingChanges
        XCTAssertEqual(pending, 0)
        let moved = try await writer.getTodo(id: keep.id)
        XCTAssertEqual(moved.title, "\(tag) moved")

        let removed = try await phone.removeSubscription(name: "mine")
        XCTAssertTrue(removed)
        await assertErth("a filter that is not one expression", { if case .InvalidInput = $0 { return true }; return false }) {
            try await phone.addSubscription(
                name: "bad", table: "todos", filter: "1); DROP TABLE todos; --", params: [], ttlMs: nil)
        }
        await assertErth("an unknown subscription", { if case .NotFound = $0 { return true }; return false }) {
            try await phone.waitForSubscription(name: "nope")
        }
    }

    func testAPurgeRemovesOldTombstonesAndAnOfflineEditOfAPurgedRowIsDropped() async throws {
        let writer = try await open("w.db")
        let phone = try await open("p.db")
        let tag = String(UUID().uuidString.prefix(8))
        let gone = try await writer.addTodo(title: "\(tag) gone")
        _ = try await writer.addTodo(title: "\(tag) kept")
        _ = try await writer.sync()
        _ = try await phone.sync()
        // The phone edits a row offline; another device deletes it, and the
        // server is purged of its tombstones.
        _ = try await phone.renameTodo(id: gone.id, title: "\(tag) edited offline")
        let deleted = try await writer.deleteTodo(id: gone.id)
        XCTAssertTrue(deleted)
        _ = try await writer.sync()
        let report = try await writer.purge(olderThanMs: 0)
        let todos = report.tables.first { $0.table == "todos" }
        XCTAssertGreaterThanOrEqual(todos?.rows ?? 0, 1)
        XCTAssertGreaterThan(todos?.mark ?? 0, 0)
        // The phone's edit of the purged row is dropped, never pushed back.
        _ = try await phone.sync()
        let titles = try await phone.listActiveTodos().map { $0.title }.filter { $0.hasPrefix(tag) }
        XCTAssertEqual(titles, ["\(tag) kept"])
        let pending = try await phone.status().pendingChanges
        XCTAssertEqual(pending, 0)
        let local = try await open("l.db", url: .some(nil))
        await assertErth("a purge without a server", { if case .NoRemote = $0 { return true }; return false }) {
            _ = try await local.purge(olderThanMs: nil)
        }
    }

    func testEncryptedColumnsSyncBetweenKeyHoldersAndAMissingOrWrongKeyIsTyped() async throws {
        let table = "sealed_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12)
        let schema = #"{"tables": {"\#(table)": {"columns": {"body": {"type": "text", "encrypted": true}}}}}"#
        let key = Data((0..<32).map { UInt8($0) })
        func config(_ name: String, _ keys: [Data]) -> ErthConfig {
            ErthConfig(
                path: dir.appendingPathComponent(name).path, url: url, authToken: token,
                schema: schema, columnKeys: keys)
        }
        let a = try await ErthDb.open(config: config("ka.db", [key]))
        let b = try await ErthDb.open(config: config("kb.db", [key]))
        _ = try await a.execute(sql: "INSERT INTO \(table) (body) VALUES ('the plan')", params: [])
        _ = try await a.sync()
        _ = try await b.sync()
        let rows = try await b.query(sql: "SELECT body FROM \(table)", params: [])
        XCTAssertEqual(rows.rows, [[.text("the plan")]])
        await assertErth("no key", { if case .InvalidInput = $0 { return true }; return false }) {
            _ = try await ErthDb.open(config: config("kc.db", []))
        }
        let wrong = try await ErthDb.open(config: config("kw.db", [Data(count: 32)]))
        await assertErth("a wrong key", { if case .WrongKey = $0 { return true }; return false }) {
            _ = try await wrong.sync()
        }
        // A recovery phrase gives the same key on another device (the
        // first key stays: the table holds a value sealed with it).
        let phrase = try newRecoveryPhrase()
        XCTAssertEqual(phrase.split(separator: " ").count, 24)
        let fromPhrase = try columnKeyFromRecoveryPhrase(phrase: phrase)
        XCTAssertEqual(fromPhrase.count, 32)
        let p = try await ErthDb.open(config: config("kp.db", [fromPhrase, key]))
        _ = try await p.execute(sql: "INSERT INTO \(table) (body) VALUES ('from a phrase')", params: [])
        _ = try await p.sync()
        let typed = try columnKeyFromRecoveryPhrase(phrase: "  " + phrase.uppercased() + "\n")
        let q = try await ErthDb.open(config: config("kq.db", [typed, key]))
        _ = try await q.sync()
        let seen = try await q.query(sql: "SELECT body FROM \(table) ORDER BY body", params: [])
        XCTAssertEqual(seen.rows, [[.text("from a phrase")], [.text("the plan")]])
        await assertErth("a mistyped phrase", { if case .InvalidInput = $0 { return true }; return false }) {
            _ = try columnKeyFromRecoveryPhrase(phrase: phrase + " abandon")
        }
    }

    func testAnEncryptedFileOpensOnlyWithItsKeyAndConvertsToPlain() async throws {
        let path = dir.appendingPathComponent("at-rest.db").path
        let marker = "swift-at-rest-marker"
        let key = try fileKeyFromRecoveryPhrase(phrase: try newRecoveryPhrase())
        XCTAssertEqual(key.count, 32)
        func onDisk() -> Bool {
            [path, path + "-wal"].contains { p in
                guard let bytes = FileManager.default.contents(atPath: p) else { return false }
                return bytes.range(of: Data(marker.utf8)) != nil
            }
        }
        // The handle is released when this function returns, closing the file.
        func write() async throws {
            let db = try await ErthDb.open(config: ErthConfig(path: path, fileKey: key))
            _ = try await db.addTodo(title: marker)
            XCTAssertFalse(onDisk(), "the open file and its WAL are encrypted")
        }
        try await write()
        let before = FileManager.default.contents(atPath: path)
        let wrongKey = { (e: ErthError) -> Bool in if case .WrongKey = e { return true }; return false }
        await assertErth("no key", wrongKey) { _ = try await ErthDb.open(config: ErthConfig(path: path)) }
        await assertErth("a wrong key", wrongKey) {
            _ = try await ErthDb.open(config: ErthConfig(path: path, fileKey: Data(count: 32)))
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path), before, "a wrong key changed the file")
        await assertErth("a wrong old key", wrongKey) {
            try changeFileKey(path: path, oldKey: Data(count: 32), newKey: nil)
        }
        try changeFileKey(path: path, oldKey: key, newKey: nil)
        XCTAssertTrue(onDisk(), "decrypted: the grep finds the value")
        let plain = try await ErthDb.open(config: ErthConfig(path: path))
        let titles = try await plain.listActiveTodos().map(\.title)
        XCTAssertEqual(titles, [marker])
        await assertErth("while open", { if case .DatabaseLocked = $0 { return true }; return false }) {
            try changeFileKey(path: path, oldKey: nil, newKey: key)
        }
    }

    func testTypedErrorsForHostMistakes() async throws {
        let early = try await localOnlyThenSynced()
        // `localOnlyThenSynced` released its handle, which closed the file.
        let reopened = try await open("a.db")
        let again = try await reopened.getTodo(id: early.id)
        XCTAssertEqual(again.id, early.id)
    }

    /// Opens a.db without a server, checks the typed errors, then sets the
    /// server and syncs. Returns the todo made before the server was known.
    func localOnlyThenSynced() async throws -> Todo {
        let db = try await open("a.db", url: .some(nil))
        await assertErth("sync without a server", { if case .NoRemote = $0 { return true }; return false }) {
            _ = try await db.sync()
        }
        await assertErth("rename unknown", { if case .NotFound = $0 { return true }; return false }) {
            _ = try await db.renameTodo(id: "0190a0a0-0000-7000-8000-000000000000", title: "x")
        }
        await assertErth("bad scheme", { if case .InvalidInput = $0 { return true }; return false }) {
            try db.setRemote(url: "ftp://example.com", authToken: nil)
        }
        await assertErth("clear text to a public host", { if case .InvalidInput = $0 { return true }; return false }) {
            _ = try await self.open("b.db", url: "http://db.example.com")
        }
        await assertErth("second handle", { if case .DatabaseLocked = $0 { return true }; return false }) {
            _ = try await self.open("a.db")
        }

        // Local-only changes are pushed once a server is set.
        let early = try await db.addTodo(title: "made before the server was known")
        try db.setRemote(url: url, authToken: token)
        let report = try await db.sync()
        XCTAssertEqual(report.pushed, 1)
        let other = try await open("c.db")
        _ = try await other.sync()
        let seen = try await other.getTodo(id: early.id)
        XCTAssertEqual(seen.title, early.title)
        return early
    }

    func testConcurrentCallsFromManyTasksAreSafe() async throws {
        let db = try await open("a.db")
        let workers = 8
        let perWorker = 10
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<workers {
                group.addTask {
                    var mine: [String] = []
                    for i in 0..<perWorker {
                        mine.append(try await db.addTodo(title: "w\(w)-\(i)").id)
                    }
                    _ = try await db.sync()
                    _ = try await db.renameTodo(id: mine[0], title: "w\(w)-renamed")
                    _ = try await db.listActiveTodos()
                    _ = try await db.status()
                    return mine
                }
            }
            var all: [String] = []
            for try await mine in group {
                all += mine
            }
            return all
        }
        XCTAssertEqual(Set(ids).count, workers * perWorker)
        _ = try await db.sync()
        let pending = try await db.status().pendingChanges
        XCTAssertEqual(pending, 0)

        let other = try await open("b.db")
        let pushed = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for _ in 0..<4 {
                group.addTask { try await other.sync().pushed }
            }
            return try await group.reduce(0, +)
        }
        XCTAssertEqual(pushed, 0)
        let wanted = Set(ids)
        let mine = try await db.listActiveTodos().filter { wanted.contains($0.id) }
        let theirs = try await other.listActiveTodos().filter { wanted.contains($0.id) }
        XCTAssertEqual(theirs.count, workers * perWorker)
        XCTAssertEqual(view(mine), view(theirs))
        XCTAssertEqual(theirs.filter { $0.title.hasSuffix("-renamed") }.count, workers)
    }

    func testAutoSyncCarriesAWriteToASecondReplicaWithoutSync() async throws {
        let a = try await open("a.db", autoSync: AutoSyncOptions(debounceMs: 50, intervalMs: 0))
        let b = try await open("b.db", autoSync: AutoSyncOptions(debounceMs: 50, intervalMs: 200))
        let started = try await a.status()
        XCTAssertTrue(started.autoSync)
        let todo = try await a.addTodo(title: "auto-synced \(UUID().uuidString)")
        let deadline = Date().addingTimeInterval(15)
        // B pulls A's write; A's push is acknowledged (it may be a moment after B sees the row).
        while true {
            let pulled = try await b.listActiveTodos().contains(where: { $0.id == todo.id })
            let pending = try await a.status().pendingChanges
            if pulled && pending == 0 { break }
            XCTAssertLessThan(Date(), deadline, "B never pulled A's write")
            if Date() >= deadline { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        // Offline: sync() fails at once with Network, and the status says so.
        try a.setOnline(online: false)
        await assertErth("sync while offline", { if case .Network = $0 { return true }; return false }) {
            _ = try await a.sync()
        }
        let offline = try await a.status()
        XCTAssertFalse(offline.online)
        try a.setOnline(online: true)
    }

    func testARefusedRowCarriesTheServersCodeAndABrokenRowIsQuarantined() async throws {
        // Two app versions: A's `v` may not be NULL and its `w` holds blobs;
        // B's `v` may be NULL and its `w` holds text.
        let table = "clash_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12)
        let a = try await open("a.db", schema: #"{"tables": {"\#(table)": {"columns": {"v": {"type": "text", "notNull": true, "default": ""}, "w": {"type": "blob"}}}}}"#)
        _ = try await a.execute(sql: "INSERT INTO \(table) (v, w) VALUES ('from a', ?)", params: [.blob(Data([0, 1]))])
        _ = try await a.sync()
        let b = try await open("b.db", schema: #"{"tables": {"\#(table)": {"columns": {"v": {"type": "text"}, "w": {"type": "text"}}}}}"#)
        _ = try await b.execute(sql: "INSERT INTO \(table) (v, w) VALUES (NULL, 'from b')", params: [])
        // The sync goes through: the server refuses B's row (its code kept),
        // and B quarantines A's row (a blob where B reads text).
        _ = try await b.sync()
        let refused = try await b.rejectedRows()
        XCTAssertEqual(refused.count, 1)
        XCTAssertFalse(refused.first?.code.isEmpty ?? true, "the server's code")
        XCTAssertTrue(refused.first?.message.contains("NOT NULL") ?? false, "\(refused)")
        let quarantined = try await b.quarantinedRows()
        XCTAssertEqual(quarantined.count, 1)
        XCTAssertTrue(quarantined.first?.reason.contains("w") ?? false, "\(quarantined)")
        let status = try await b.status()
        XCTAssertEqual(status.rejected, 1)
        XCTAssertEqual(status.quarantined, 1)
        XCTAssertNil(status.lastErrorKind)
        try await b.waitForFirstSync()
    }

    func testTheTokenNeverShowsInDescriptions() {
        let config = ErthConfig(
            path: "/data/todos.db",
            url: "libsql://db.example.io?authToken=url-s3cret",
            authToken: "field-s3cret"
        )
        for text in [config.description, config.debugDescription, "\(config)", String(reflecting: config)] {
            XCTAssertFalse(text.contains("s3cret"), text)
            XCTAssertTrue(text.contains("<redacted>"), text)
            XCTAssertTrue(text.contains("https://db.example.io"), text)
        }
        XCTAssertEqual(config.authToken, "field-s3cret")
    }
}
