#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Checks of what C callers pass, made before anything is dereferenced or converted: a Swift
/// trap (a failed conversion, an overflow, a bad index) would kill the host process, so every
/// pointer, length and string goes through here and comes out as a Swift value or a `CallError`.
///
/// `size_t` arrives in Swift as `Int`: a negative value is a length above SIZE_MAX / 2, the
/// usual result of passing -1 or a subtraction that went below zero.
enum CInput {
    /// A pointer the call cannot do without.
    static func required<T>(_ pointer: UnsafePointer<T>?, _ name: String) throws -> UnsafePointer<T> {
        guard let pointer else { throw CallError.invalidArgument("\(name) is NULL") }
        return pointer
    }

    /// An out-pointer the call cannot do without.
    static func required<T>(_ pointer: UnsafeMutablePointer<T>?, _ name: String) throws -> UnsafeMutablePointer<T> {
        guard let pointer else { throw CallError.invalidArgument("\(name) is NULL") }
        return pointer
    }

    /// A length that is no more than SIZE_MAX / 2 and whose size in bytes, for elements of `T`,
    /// fits in a `ptrdiff_t`.
    static func count<T>(_ count: Int, of type: T.Type, _ name: String) throws -> Int {
        guard count >= 0, count <= Int.max / MemoryLayout<T>.stride else {
            throw CallError.invalidArgument("\(name) is \(UInt(bitPattern: count)), too large for elements of \(MemoryLayout<T>.stride) bytes")
        }
        return count
    }

    /// A `size_t` setting (not a length) that is no more than SIZE_MAX / 2.
    static func size(_ value: Int, _ name: String) throws -> Int {
        guard value >= 0 else { throw CallError.invalidArgument("\(name) is \(UInt(bitPattern: value)), above SIZE_MAX / 2 (a negative value cast to size_t?)") }
        return value
    }

    /// The elements `(pointer, count)` describes; NULL is accepted for zero elements.
    static func elements<T>(_ pointer: UnsafePointer<T>?, _ count: Int, _ name: String, _ countName: String) throws -> UnsafeBufferPointer<T> {
        let n = try self.count(count, of: T.self, countName)
        guard let pointer else {
            guard n == 0 else { throw CallError.invalidArgument("\(name) is NULL but \(countName) is \(n)") }
            return UnsafeBufferPointer(start: nil, count: 0)
        }
        return UnsafeBufferPointer(start: pointer, count: n)
    }

    /// The room `(pointer, capacity)` describes; NULL is accepted for zero capacity.
    static func room<T>(_ pointer: UnsafeMutablePointer<T>?, _ capacity: Int, _ name: String, _ capacityName: String) throws -> UnsafeMutableBufferPointer<T> {
        let n = try count(capacity, of: T.self, capacityName)
        guard let pointer else {
            guard n == 0 else { throw CallError.invalidArgument("\(name) is NULL but \(capacityName) is \(n)") }
            return UnsafeMutableBufferPointer(start: nil, count: 0)
        }
        return UnsafeMutableBufferPointer(start: pointer, count: n)
    }

    /// The text `bytes` hold, which must be valid UTF-8 (no overlong forms, no surrogates): the
    /// core takes Swift strings, and repairing the text silently would tokenize something other
    /// than what the caller passed.
    static func utf8(_ bytes: UnsafeBufferPointer<UInt8>, _ name: String) throws -> String {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return String(decoding: bytes, as: UTF8.self)
            case .error: throw CallError.invalidArgument("\(name) is not valid UTF-8 (invalid sequence at byte \(offset))")
            }
        }
    }

    /// A required NUL-terminated UTF-8 string.
    static func cString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String {
        let p = try required(pointer, name)
        return try p.withMemoryRebound(to: UInt8.self, capacity: 1) { bytes in
            try utf8(UnsafeBufferPointer(start: bytes, count: strlen(p)), name)
        }
    }

    /// Most experts a set or a router may have: far above any real use, low enough that the
    /// per-step arrays of K entries can never exhaust memory.
    static let maxExperts = 65536

    /// An expert count (`size_t`) of at most `maxExperts`.
    static func expertCount(_ value: Int, _ name: String) throws -> Int {
        guard value >= 0, value <= maxExperts else {
            throw CallError.invalidArgument("\(name) is \(UInt(bitPattern: value)); at most \(maxExperts) experts are supported")
        }
        return value
    }

    /// Most parameters one call may allocate (8 GiB of f32). Why a limit: a size the caller got
    /// wrong (a rank of 2^40) would otherwise make the allocation fail, which traps, or overflow
    /// the size arithmetic first, which traps too.
    static let maxParameters = 1 << 31

    /// The sum of the products `terms` describes, refused when it overflows or exceeds
    /// `maxParameters`.
    static func parameterCount(_ terms: [[Int]], _ what: String) throws -> Int {
        var total = 0
        for factors in terms {
            var product = 1
            for f in factors {
                let (p, overflow) = product.multipliedReportingOverflow(by: f)
                guard !overflow, p <= maxParameters else { throw tooMany(what) }
                product = p
            }
            let (t, overflow) = total.addingReportingOverflow(product)
            guard !overflow, t <= maxParameters else { throw tooMany(what) }
            total = t
        }
        return total
    }

    private static func tooMany(_ what: String) -> CallError {
        CallError.invalidArgument("\(what) would have more than \(maxParameters) parameters")
    }

    /// An optional NUL-terminated UTF-8 string (NULL: nil).
    static func optionalCString(_ pointer: UnsafePointer<CChar>?, _ name: String) throws -> String? {
        guard pointer != nil else { return nil }
        return try cString(pointer, name)
    }

    /// Copies `bytes` and a NUL into the caller's `(buffer, capacity)` and reports the length
    /// through `outLength`, as `moragent_detokenize` documents: on a buffer too small only the
    /// length is reported.
    static func writeText(_ bytes: [UInt8], _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                          _ outLength: UnsafeMutablePointer<Int>?, _ what: String) throws {
        let room = try self.room(buffer, capacity, "buffer", "capacity")
        let outLength = try required(outLength, "out_length")
        outLength.pointee = bytes.count
        guard bytes.count < room.count else {
            throw CallError.bufferTooSmall("\(what) is \(bytes.count) bytes, which with the NUL need capacity \(bytes.count + 1), but capacity is \(room.count)")
        }
        let raw = UnsafeMutableRawBufferPointer(room)
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }

    /// Largest `struct_size` accepted: a larger one is taken for a field the caller forgot to
    /// set (stack garbage), since no version of a parameter struct will come near it.
    static let maxStructSize = 65536

    /// Checks the `struct_size` that begins a parameter struct: at least `firstSize` (the
    /// struct's size in its first published version) and at most `maxStructSize`. Only the
    /// size is read, so a caller struct shorter than this library's is never read past its end.
    static func structSize(_ pointer: UnsafeRawPointer, firstSize: Int, _ name: String, _ cType: String) throws -> Int {
        let size = pointer.loadUnaligned(as: Int.self)
        guard size >= firstSize, size <= maxStructSize else {
            throw CallError.invalidArgument("\(name)->struct_size is \(UInt(bitPattern: size)); set it to sizeof(\(cType)) (at least \(firstSize), at most \(maxStructSize))")
        }
        return size
    }
}
