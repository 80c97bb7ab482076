import MoRAgent

/// Marks an object as in use by one call, so that a second, overlapping call (from another
/// thread, or re-entering from a callback of the first) fails with MORAGENT_ERROR_BUSY instead of
/// racing on state the core does not lock (a policy's episode records).
final class BusyFlag: @unchecked Sendable {
    private var busy = false
    private let lock = PThreadLock()

    /// Runs `body` as the only call on `object` (named in the message), or throws a busy error.
    func exclusively<T>(_ object: String, _ body: () throws -> T) throws -> T {
        try lock.withLock {
            guard !busy else {
                throw CallError.busy("the \(object) is in use by another call that has not returned (one call at a time: another thread, or a callback inside that call)")
            }
            busy = true
        }
        defer { lock.withLock { busy = false } }
        return try body()
    }
}
