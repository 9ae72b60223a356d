// Hand-written Swift shipped with the generated bindings (module ErthSync):
// the closure form of ErthDb.writeTransaction. It only forwards, and commits
// or rolls back; the transaction itself is the engine's. Packaged by
// scripts/build-apple.sh and compiled with the generated code by
// `cargo xtask test swift`.

extension ErthDb {
    /// Runs `body` in an interactive write transaction and returns its
    /// result: reads through the `ErthWriteTransaction` see the
    /// transaction's own writes, and nothing else writes to this replica
    /// between them ("add the item only if its list still exists", "take
    /// the next number").
    ///
    /// Commits when `body` returns; rolls back when it throws (a
    /// `CancellationError` included), then rethrows, so that nothing it
    /// wrote remains. Live queries and listeners hear of the changes once,
    /// after the commit.
    ///
    /// The transaction holds the replica until it ends: other calls on this
    /// `ErthDb` (and other transactions) wait for it, up to
    /// `ErthConfig.lockTimeoutMs`, then throw `ErthError.DatabaseLocked`;
    /// so does starting this one while another stays open. Inside `body`,
    /// use the transaction, not the database (a call on the database would
    /// wait for the transaction itself), keep it short, and don't keep the
    /// handle.
    ///
    /// Throws `ErthError.DatabaseLocked` (waited too long to begin),
    /// whatever `body` throws, `ErthError.Sql` when the commit fails
    /// (nothing remains).
    public func writeTransaction<T>(_ body: (ErthWriteTransaction) async throws -> T) async throws -> T {
        let tx = try await writeTransaction()
        let result: T
        do {
            result = try await body(tx)
        } catch {
            try? await tx.rollback()
            throw error
        }
        try await tx.commit()
        return result
    }
}
