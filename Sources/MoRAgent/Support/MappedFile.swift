#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file.
///
/// Weights are read through the map and converted to f32 once, so a model never sits in memory
/// twice (DESIGN.md §2); the map is released when the last reference goes away.
public final class MappedFile: @unchecked Sendable {
    /// The path the file was opened with, used in error messages.
    public let path: String
    /// The file's bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    /// Maps `path` read-only; throws `MoRAgentError.io` naming the file when it cannot.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw MoRAgentError.io(path: path, reason: "not a regular file") }
        let size = Int(info.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw MoRAgentError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))") }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    deinit {
        if let base { munmap(base, bytes.count) }
    }
}

/// Reads a whole (small) file into memory; throws `MoRAgentError.io` naming the file.
func readFileBytes(_ path: String) throws -> [UInt8] {
    let file = try MappedFile(path: path)
    return Array(file.bytes)
}

/// Parses the JSON file at `path`; errors name the file.
func readJSONFile(_ path: String) throws -> JSONValue {
    let bytes = try readFileBytes(path)
    do { return try JSONValue.parse(bytes: bytes) } catch let e as JSONParseError {
        throw MoRAgentError.malformedFile(path: path, reason: e.description)
    }
}

/// True when a file or folder exists at `path`.
func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}

/// `folder/name`, without doubling the slash.
func joinPath(_ folder: String, _ name: String) -> String {
    folder.hasSuffix("/") ? folder + name : folder + "/" + name
}
