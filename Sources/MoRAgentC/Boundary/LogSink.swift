import CMoRAgent
import MoRAgent

/// Where the library's log lines go: the host's callback, or nowhere (the default: a library
/// must not print into its host's terminal).
///
/// Lines are delivered under a lock, so the callback is never entered by two threads at once and
/// `set` returns only once no call to the previous callback is in progress; the lock is
/// recursive so that a callback may replace itself.
enum LogSink {
    private nonisolated(unsafe) static var callback: moragent_log_fn?
    private nonisolated(unsafe) static var user: UnsafeMutableRawPointer?
    private static let lock = PThreadLock(recursive: true)

    /// Installs `callback` (nil silences the library) with its user pointer.
    static func set(_ callback: moragent_log_fn?, _ user: UnsafeMutableRawPointer?) {
        lock.withLock {
            self.callback = callback
            self.user = user
        }
    }

    /// Sends one line to the callback, if any. `message` is built only when someone listens.
    static func emit(_ level: moragent_log_level, _ message: @autoclosure () -> String) {
        lock.withLock {
            guard let callback else { return }
            let user = self.user
            message().withCString { callback(level, $0, user) }
        }
    }
}
