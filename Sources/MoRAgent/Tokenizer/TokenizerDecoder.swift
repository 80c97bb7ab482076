/// A `tokenizer.json` decoder: turns the tokens of a list of ids back into text. It works on
/// byte strings so that `Tokenizer.decodedBytes` can return bytes that are not (yet) valid
/// UTF-8; `lossy` mode reproduces HF, which makes strings (with U+FFFD) at the same steps.
indirect enum TokenizerDecoder {
    /// Table characters back to bytes (GPT-2 byte level).
    case byteLevel
    /// Every occurrence of a literal in each token replaced.
    case replace(pattern: [UInt8], content: [UInt8])
    /// Runs of `<0xXX>` tokens turned back into their bytes.
    case byteFallback
    /// All tokens joined into one.
    case fuse
    /// Up to `start` copies of `content` removed from the front of each token, `stop` from the end.
    case strip(content: [UInt8], start: Int, stop: Int)
    case sequence([TokenizerDecoder])

    /// Reads the `decoder` member; nil for null.
    static func parse(_ json: JSONValue, _ reader: TokenizerFileReader) throws -> TokenizerDecoder? {
        if json.isNull { return nil }
        let type = try reader.type(of: json, "decoder")
        switch type {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Replace":
            guard let literal = json["pattern"]?["String"]?.stringValue else {
                if json["pattern"]?["Regex"] != nil { throw reader.unsupported("decoder", "Replace with a Regex pattern") }
                throw reader.malformed("decoder Replace: pattern must be {\"String\": …}")
            }
            return .replace(pattern: Array(literal.utf8),
                            content: Array(try reader.string(json, "content", in: "decoder Replace").utf8))
        case "Strip":
            let content = try reader.string(json, "content", in: "decoder Strip")
            guard content.unicodeScalars.count == 1 else { throw reader.malformed("decoder Strip: content must be one character") }
            return .strip(content: Array(content.utf8), start: try reader.count(json, "start", in: "decoder Strip"),
                          stop: try reader.count(json, "stop", in: "decoder Strip"))
        case "Sequence":
            let parts = try reader.array(json, "decoders", in: "decoder Sequence")
            return .sequence(try parts.compactMap { try parse($0, reader) })
        default:
            throw reader.unsupported("decoder", type)
        }
    }

    /// The tokens after this decoder (HF's `decode_chain`).
    func decodeChain(_ tokens: [[UInt8]], lossy: Bool) -> [[UInt8]] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { bytes.append(contentsOf: ByteLevelTable.decode(token) ?? token) }
            return [lossy ? TokenizerDecoder.repaired(bytes) : bytes]
        case let .replace(pattern, content):
            return tokens.map { TokenizerDecoder.replacing(pattern, with: content, in: $0) }
        case .byteFallback:
            return TokenizerDecoder.byteFallback(tokens, lossy: lossy)
        case .fuse:
            return [tokens.flatMap { $0 }]
        case let .strip(content, start, stop):
            return tokens.map { TokenizerDecoder.strip(content, start: start, stop: stop, from: $0) }
        case .sequence(let steps):
            return steps.reduce(tokens) { $1.decodeChain($0, lossy: lossy) }
        }
    }

    /// The bytes with invalid UTF-8 replaced by U+FFFD, like Rust's `String::from_utf8_lossy`.
    static func repaired(_ bytes: [UInt8]) -> [UInt8] {
        Array(String(decoding: bytes, as: UTF8.self).utf8)
    }

    private static func replacing(_ pattern: [UInt8], with content: [UInt8], in token: [UInt8]) -> [UInt8] {
        if pattern.isEmpty || token.count < pattern.count { return token }
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        var i = 0
        while i < token.count {
            if i + pattern.count <= token.count, token[i..<(i + pattern.count)].elementsEqual(pattern) {
                out.append(contentsOf: content)
                i += pattern.count
            } else {
                out.append(token[i])
                i += 1
            }
        }
        return out
    }

    /// HF gathers consecutive byte tokens; if they do not form valid UTF-8 it emits one U+FFFD
    /// per byte token (in `lossy` mode; otherwise the raw bytes are kept for the caller).
    private static func byteFallback(_ tokens: [[UInt8]], lossy: Bool) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var pending: [UInt8] = []
        func flush() {
            if pending.isEmpty { return }
            if !lossy || String(validating: pending, as: UTF8.self) != nil {
                out.append(pending)
            } else {
                out.append(contentsOf: repeatElement(Array("\u{FFFD}".utf8), count: pending.count))
            }
            pending = []
        }
        for token in tokens {
            if let byte = fallbackByte(token) {
                pending.append(byte)
            } else {
                flush()
                out.append(token)
            }
        }
        flush()
        return out
    }

    /// The byte a `<0xXX>` token stands for.
    private static func fallbackByte(_ token: [UInt8]) -> UInt8? {
        guard token.count == 6, token.starts(with: Array("<0x".utf8)), token[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: token[3..<5], as: UTF8.self), radix: 16)
    }

    private static func strip(_ content: [UInt8], start: Int, stop: Int, from token: [UInt8]) -> [UInt8] {
        var lower = 0, upper = token.count
        var removed = 0
        while removed < start, upper - lower >= content.count, token[lower..<(lower + content.count)].elementsEqual(content) {
            lower += content.count
            removed += 1
        }
        removed = 0
        while removed < stop, upper - lower >= content.count, token[(upper - content.count)..<upper].elementsEqual(content) {
            upper -= content.count
            removed += 1
        }
        return Array(token[lower..<upper])
    }
}
