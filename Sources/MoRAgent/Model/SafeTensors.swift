#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Element types a safetensors header may name (the format's `Dtype` list).
public enum SafeTensorsDType: String, CaseIterable, Sendable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3", i16 = "I16", u16 = "U16"
    case f16 = "F16", bf16 = "BF16", i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"
    case c64 = "C64", f8e8m0 = "F8_E8M0", f8e4m3fnuz = "F8_E4M3FNUZ", f8e5m2fnuz = "F8_E5M2FNUZ"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0, .f8e4m3fnuz, .f8e5m2fnuz: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64, .c64: return 8
        }
    }

    /// True for the types the engine converts to f32 (weights are computed in f32, DESIGN.md §2).
    public var isConvertibleToFloat32: Bool { self == .f32 || self == .f16 || self == .bf16 }
}

/// One tensor's entry in a safetensors header.
public struct SafeTensorsEntry: Sendable {
    /// The tensor's name (the header key).
    public let name: String
    /// Its element type.
    public let dtype: SafeTensorsDType
    /// Its shape.
    public let shape: [Int]
    /// Its bytes, as absolute offsets into the file.
    public let byteRange: Range<Int>
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A memory-mapped `.safetensors` file (format: an 8-byte little-endian header length, a JSON
/// header, then the tensors' bytes back to back). The header is validated as the reference
/// implementation does (sizes, offsets inside the buffer, no holes or overlaps), so a bad file
/// fails here, with the file named, rather than when a tensor is read.
public final class SafeTensorsFile: @unchecked Sendable {
    /// Headers longer than this are rejected, as the reference reader does.
    public static let maxHeaderLength = 100_000_000
    /// The file's path.
    public let path: String
    /// Tensors by name.
    public let entries: [String: SafeTensorsEntry]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    private let file: MappedFile

    /// Maps and validates `path`.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        let bytes = file.bytes
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: path, reason: reason) }
        guard bytes.count >= 8 else { throw bad("too short for a safetensors header (\(bytes.count) bytes)") }
        let n = bytes.loadUnaligned(as: UInt64.self).littleEndian
        guard n <= UInt64(SafeTensorsFile.maxHeaderLength) else { throw bad("header length \(n) exceeds the limit of \(SafeTensorsFile.maxHeaderLength) bytes") }
        let headerLength = Int(n)
        guard 8 + headerLength <= bytes.count else {
            throw bad("header length \(headerLength) runs past the end of the file (\(bytes.count) bytes): truncated or not a safetensors file")
        }
        let headerBytes = UnsafeBufferPointer(rebasing: bytes.bindMemory(to: UInt8.self)[8..<(8 + headerLength)])
        guard headerBytes.first == UInt8(ascii: "{") else { throw bad("header does not start with '{'") }
        let header: JSONValue
        do { header = try JSONValue.parse(bytes: headerBytes) } catch let e as JSONParseError {
            throw bad("header is not valid JSON: \(e.description)")
        }
        guard let members = header.objectValue else { throw bad("header is not a JSON object") }
        let dataStart = 8 + headerLength
        let dataSize = bytes.count - dataStart
        var entries: [String: SafeTensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard let meta = value.objectValue else { throw bad("__metadata__ is not an object") }
                for (k, v) in meta {
                    guard let s = v.stringValue else { throw bad("__metadata__ value for \"\(k)\" is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard entries[name] == nil else { throw bad("tensor \"\(name)\" appears twice") }
            guard let dtypeName = value["dtype"]?.stringValue else { throw bad("tensor \"\(name)\" has no dtype") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else { throw bad("tensor \"\(name)\" has unknown dtype \"\(dtypeName)\"") }
            guard let shapeValues = value["shape"]?.arrayValue else { throw bad("tensor \"\(name)\" has no shape") }
            var shape: [Int] = []
            var count = 1
            for d in shapeValues {
                guard let x = d.intValue, x >= 0 else { throw bad("tensor \"\(name)\" has a bad dimension in its shape") }
                let (m, overflow) = count.multipliedReportingOverflow(by: x)
                guard !overflow, m <= Int(UInt32.max) * 64 else { throw bad("tensor \"\(name)\" is implausibly large") }
                count = m
                shape.append(x)
            }
            guard let offsets = value["data_offsets"]?.arrayValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue else {
                throw bad("tensor \"\(name)\" has no valid data_offsets [begin, end]")
            }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw bad("tensor \"\(name)\" data_offsets [\(begin), \(end)] lie outside the data buffer of \(dataSize) bytes")
            }
            guard end - begin == count * dtype.size else {
                throw bad("tensor \"\(name)\" has \(end - begin) bytes but its shape \(shape) of \(dtypeName) needs \(count * dtype.size)")
            }
            entries[name] = SafeTensorsEntry(name: name, dtype: dtype, shape: shape,
                                             byteRange: (dataStart + begin)..<(dataStart + end))
        }
        // Tensors must tile the buffer exactly: no holes, no overlaps (the format's rule).
        var cursor = dataStart
        for e in entries.values.sorted(by: { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }) {
            guard e.byteRange.lowerBound == cursor else {
                throw bad(e.byteRange.lowerBound < cursor ? "tensor \"\(e.name)\" overlaps the one before it"
                                                            : "a hole in the data buffer before tensor \"\(e.name)\"")
            }
            cursor = e.byteRange.upperBound
        }
        guard cursor == bytes.count else { throw bad("\(bytes.count - cursor) bytes after the last tensor are not described by the header") }
        self.entries = entries
        self.metadata = metadata
    }

    /// Converts the tensor `name` to f32 into `destination` (which must hold `count` floats).
    /// Throws naming the file when the tensor is missing, of a non-float type, or not of
    /// `expectedShape` (when given).
    public func readFloat32(_ name: String, expectedShape: [Int]? = nil, into destination: UnsafeMutablePointer<Float>) throws {
        guard let e = entries[name] else { throw MoRAgentError.malformedFile(path: path, reason: "missing tensor \"\(name)\"") }
        if let expectedShape, expectedShape != e.shape {
            throw MoRAgentError.malformedFile(path: path, reason: "tensor \"\(name)\" has shape \(e.shape) but the config implies \(expectedShape)")
        }
        let src = file.bytes.baseAddress! + e.byteRange.lowerBound
        switch e.dtype {
        case .f32:
            UnsafeMutableRawPointer(destination).copyMemory(from: src, byteCount: e.count * 4)
        case .f16:
            for i in 0..<e.count { destination[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .bf16:
            for i in 0..<e.count { destination[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        default:
            throw MoRAgentError.unsupported("\(path): tensor \"\(name)\" has dtype \(e.dtype.rawValue); weights must be F32, F16 or BF16")
        }
    }

    /// The tensor `name` as a new f32 `Tensor`.
    public func tensor(_ name: String, expectedShape: [Int]? = nil) throws -> Tensor {
        guard let e = entries[name] else { throw MoRAgentError.malformedFile(path: path, reason: "missing tensor \"\(name)\"") }
        let t = Tensor(zeros: e.shape)
        try readFloat32(name, expectedShape: expectedShape, into: t.pointer)
        return t
    }
}

/// Writes f32 tensors as a safetensors file, atomically: the bytes go to a temporary file in
/// the same folder, are fsynced, then renamed over `path`, so a crash never leaves a half file.
public enum SafeTensorsWriter {
    /// Writes `tensors` (name, tensor) with optional string metadata.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to path: String) throws {
        var header: [(key: String, value: JSONValue)] = []
        if !metadata.isEmpty {
            header.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })))
        }
        var offset = 0
        for (name, t) in tensors {
            header.append((name, .object([("dtype", .string("F32")),
                                          ("shape", .array(t.shape.map { .number(Double($0)) })),
                                          ("data_offsets", .array([.number(Double(offset)), .number(Double(offset + t.count * 4))]))])))
            offset += t.count * 4
        }
        var headerBytes = Array(JSONValue.object(header).serialized.utf8)
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        while (headerBytes.count % 8) != 0 { headerBytes.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + headerBytes.count + offset)
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for (_, t) in tensors {
            out.append(contentsOf: UnsafeRawBufferPointer(start: t.pointer, count: t.count * 4))
        }
        try writeFileAtomically(out, to: path)
    }
}

/// Writes `bytes` to `path` through a temporary sibling file, fsync and rename.
func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw MoRAgentError.io(path: tmp, reason: String(cString: strerror(errno))) }
    var written = 0
    let ok: Bool = bytes.withUnsafeBytes { buf in
        while written < buf.count {
            let n = Glibc.write(fd, buf.baseAddress! + written, buf.count - written)
            if n <= 0 { return false }
            written += n
        }
        return fsync(fd) == 0
    }
    let reason = ok ? "" : String(cString: strerror(errno))
    close(fd)
    guard ok else { unlink(tmp); throw MoRAgentError.io(path: tmp, reason: "write failed: \(reason)") }
    guard rename(tmp, path) == 0 else {
        let why = String(cString: strerror(errno)); unlink(tmp)
        throw MoRAgentError.io(path: path, reason: "rename failed: \(why)")
    }
}
