// XCTest tests of the Swift face's sync limits against a server that
// accepts connections and never answers (a listening socket nobody reads:
// the kernel completes the handshake, the request waits forever). Run by
// `cargo xtask test swift`.
import ErthSync
import Foundation
import XCTest

#if canImport(Glibc)
    import Glibc
#endif

/// A TCP socket on 127.0.0.1 that listens and never accepts.
final class SilentServer {
    let fd: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let size = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, size) }
        }
        guard bound == 0, listen(fd, 50) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var local = sockaddr_in()
        var length = size
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = UInt16(bigEndian: local.sin_port)
    }

    deinit { close(fd) }
}

final class ErthTimeoutTests: XCTestCase {
    var dir: URL!
    var silent: SilentServer!

    override func setUpWithError() throws {
        silent = try SilentServer()
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("erth-swift-timeout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir {
            try FileManager.default.removeItem(at: dir)
        }
        silent = nil
    }

    func openSilent(_ name: String, requestTimeoutMs: UInt64, syncTimeoutMs: UInt64) async throws -> ErthDb {
        try await ErthDb.open(config: ErthConfig(
            path: dir.appendingPathComponent(name).path, url: "http://127.0.0.1:\(silent.port)",
            requestTimeoutMs: requestTimeoutMs, syncTimeoutMs: syncTimeoutMs
        ))
    }

    /// The sync failed with Network saying `why`; the edit is kept, nothing is left syncing.
    func assertEnded(_ db: ErthDb, saying why: String) async throws {
        do {
            _ = try await db.sync()
            XCTFail("a silent server must fail the sync")
        } catch ErthError.Network(let message) {
            XCTAssertTrue(message.contains(why), message)
        }
        let status = try await db.status()
        XCTAssertFalse(status.syncing)
        XCTAssertEqual(status.lastErrorKind, .network)
        XCTAssertEqual(status.pendingChanges, 1)
        let kept = try await db.listActiveTodos()
        XCTAssertEqual(kept.count, 1)
    }

    func testASilentServerCostsOneRequestTimeout() async throws {
        let db = try await openSilent("request.db", requestTimeoutMs: 400, syncTimeoutMs: 0)
        _ = try await db.addTodo(title: "kept")
        try await assertEnded(db, saying: "timed out")
    }

    func testAWholeSyncStopsAtItsOwnLimitWhateverTheRequestTimeout() async throws {
        let db = try await openSilent("deadline.db", requestTimeoutMs: 120_000, syncTimeoutMs: 500)
        _ = try await db.addTodo(title: "kept")
        try await assertEnded(db, saying: "longer than its limit (500 ms)")
    }
}
