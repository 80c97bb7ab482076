/// Every failure the library reports. The C layer maps each case to a `moragent_status` code
/// and its `description` to `moragent_last_error()`, so messages name the file and the problem.
public enum MoRAgentError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A file could not be opened, mapped or read (`path`, then what the system said).
    case io(path: String, reason: String)
    /// A file was read but its content is wrong (`path`, then what is wrong with it).
    case malformedFile(path: String, reason: String)
    /// A model, tokenizer or option this library does not implement.
    case unsupported(String)
    /// A caller passed a value outside what the call accepts.
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .io(path, reason): return "\(path): \(reason)"
        case let .malformedFile(path, reason): return "\(path): \(reason)"
        case let .unsupported(what): return "unsupported: \(what)"
        case let .invalidArgument(what): return "invalid argument: \(what)"
        }
    }
}
