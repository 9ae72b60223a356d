// Hand-written Swift shipped with the generated bindings (module ErthSync):
// an AsyncStream over the live query of ErthDb.watch. Packaged by
// scripts/build-apple.sh and compiled with the generated code by
// `cargo xtask test swift`.

extension ErthDb {
    /// The rows of `sql` (positional `params`) as an `AsyncStream`: the
    /// current rows first, then the new rows after every committed change
    /// (local writes, pulled rows) to a table the query reads, when they
    /// differ. The live query stops when the iterating task is cancelled or
    /// the stream is dropped. A slow consumer gets the newest rows, not a
    /// backlog. Throws `ErthError.Sql` at once for bad SQL or a statement
    /// that writes.
    public func watchStream(sql: String, params: [SqlValue] = []) throws -> AsyncStream<Rows> {
        let (stream, continuation) = AsyncStream<Rows>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let live = try watch(sql: sql, params: params, listener: StreamListener(continuation))
        continuation.onTermination = { _ in try? live.stop() }
        return stream
    }
}

/// Feeds a live query's rows into a stream's continuation (which is thread-safe).
private final class StreamListener: LiveQueryListener, @unchecked Sendable {
    private let continuation: AsyncStream<Rows>.Continuation

    init(_ continuation: AsyncStream<Rows>.Continuation) {
        self.continuation = continuation
    }

    func onRows(rows: Rows) throws {
        continuation.yield(rows)
    }
}
