#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CMoRAgent
import MoRAgent

/// A failure detected by the C layer itself (bad caller input, a dead handle, a small buffer,
/// an abort), with the status the header documents for it.
struct CallError: Error {
    let status: moragent_status
    let message: String

    static func invalidArgument(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_INVALID_ARGUMENT, message: message) }
    static func invalidHandle(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_INVALID_HANDLE, message: message) }
    static func bufferTooSmall(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_BUFFER_TOO_SMALL, message: message) }
    static func aborted(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_ABORTED, message: message) }
    static func callback(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_CALLBACK, message: message) }
    static func busy(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_BUSY, message: message) }
    static func io(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_IO, message: message) }
    static func malformedFile(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_MALFORMED_FILE, message: message) }
    static func unsupported(_ message: String) -> CallError { CallError(status: MORAGENT_ERROR_UNSUPPORTED, message: message) }
}

/// Runs the work of C entry point `function`: returns MORAGENT_OK and clears the thread's
/// message when `body` returns, or records "function: what went wrong" and returns the status
/// that fits the error. Every fallible `@_cdecl` body is one call to this, so no Swift error
/// crosses into C and every failure leaves a message.
func withStatus(_ function: StaticString, _ body: () throws -> Void) -> moragent_status {
    do {
        try body()
        LastError.clear()
        return MORAGENT_OK
    } catch {
        let (status, message) = classify(error)
        LastError.set("\(function): \(message)")
        return status
    }
}

/// The status and message for an error thrown by the C layer or the core.
private func classify(_ error: Error) -> (moragent_status, String) {
    switch error {
    case let e as CallError:
        return (e.status, e.message)
    case let e as MoRAgentError:
        switch e {
        case .io: return (MORAGENT_ERROR_IO, e.description)
        case .malformedFile: return (MORAGENT_ERROR_MALFORMED_FILE, e.description)
        case .unsupported: return (MORAGENT_ERROR_UNSUPPORTED, e.description)
        case .invalidArgument: return (MORAGENT_ERROR_INVALID_ARGUMENT, e.description)
        }
    default:
        return (MORAGENT_ERROR_INTERNAL, "internal error: \(error)")
    }
}

/// The static strings `moragent_status_string` returns.
enum StatusNames {
    private static let names: [Int32: UnsafePointer<CChar>] = [
        MORAGENT_OK.rawValue: cString("ok"),
        MORAGENT_ERROR_INVALID_ARGUMENT.rawValue: cString("invalid argument"),
        MORAGENT_ERROR_INVALID_HANDLE.rawValue: cString("invalid handle"),
        MORAGENT_ERROR_IO.rawValue: cString("i/o error"),
        MORAGENT_ERROR_MALFORMED_FILE.rawValue: cString("malformed file"),
        MORAGENT_ERROR_UNSUPPORTED.rawValue: cString("unsupported"),
        MORAGENT_ERROR_BUFFER_TOO_SMALL.rawValue: cString("buffer too small"),
        MORAGENT_ERROR_ABORTED.rawValue: cString("aborted"),
        MORAGENT_ERROR_INTERNAL.rawValue: cString("internal error"),
        MORAGENT_ERROR_CALLBACK.rawValue: cString("callback failed"),
        MORAGENT_ERROR_BUSY.rawValue: cString("busy"),
    ]
    private static let unknown = cString("unknown status")

    static func name(of status: moragent_status) -> UnsafePointer<CChar> {
        names[status.rawValue] ?? unknown
    }

    /// A C string that lives as long as the process.
    private static func cString(_ text: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(text)!) }
}
