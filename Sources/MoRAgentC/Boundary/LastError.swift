#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The per-thread message behind `moragent_last_error()`.
///
/// Why pthread keys: Swift has no thread-local storage of its own, and the message must outlive
/// the call that set it (the caller reads it afterwards) yet be freed when its thread ends,
/// which the key's destructor does.
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    /// What `moragent_last_error` returns when no failure is recorded.
    private static let empty = UnsafePointer(strdup("")!)

    /// The calling thread's message (a `malloc`ed C string), or "".
    static var message: UnsafePointer<CChar> {
        guard let stored = pthread_getspecific(key) else { return empty }
        return UnsafePointer(stored.assumingMemoryBound(to: CChar.self))
    }

    /// Replaces the calling thread's message.
    static func set(_ text: String) {
        replace(with: UnsafeMutableRawPointer(strdup(text)))
    }

    /// Forgets the calling thread's message (a call succeeded).
    static func clear() {
        guard pthread_getspecific(key) != nil else { return }
        replace(with: nil)
    }

    private static func replace(with new: UnsafeMutableRawPointer?) {
        let old = pthread_getspecific(key)
        pthread_setspecific(key, new)
        free(old)
    }
}
