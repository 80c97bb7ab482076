// `String._nfd` (the stdlib's own NFD iterator) is SPI; NFC has the public `_nfcCodeUnits`.
@_spi(_Unicode) import Swift

/// A `tokenizer.json` normalizer: rewrites text before pre-tokenization (and the content of
/// added tokens marked `normalized`).
indirect enum TokenizerNormalizer {
    case nfc
    case nfd
    case lowercase
    /// Prepends the string to non-empty text.
    case prepend(String)
    /// Replaces every match of the pattern with the content.
    case replace(TokenizerTextPattern, String)
    /// Trims white space from the left and/or right end.
    case strip(left: Bool, right: Bool)
    case sequence([TokenizerNormalizer])

    /// Reads the `normalizer` member; nil for null.
    static func parse(_ json: JSONValue, _ reader: TokenizerFileReader) throws -> TokenizerNormalizer? {
        if json.isNull { return nil }
        let type = try reader.type(of: json, "normalizer")
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "Lowercase": return .lowercase
        case "Prepend": return .prepend(try reader.string(json, "prepend", in: "normalizer Prepend"))
        case "Replace":
            return .replace(try reader.pattern(json["pattern"], in: "normalizer Replace"),
                            try reader.string(json, "content", in: "normalizer Replace"))
        case "Strip":
            return .strip(left: try reader.bool(json, "strip_left", in: "normalizer Strip", default: true),
                          right: try reader.bool(json, "strip_right", in: "normalizer Strip", default: true))
        case "Sequence":
            let parts = try reader.array(json, "normalizers", in: "normalizer Sequence")
            return .sequence(try parts.compactMap { try parse($0, reader) })
        default:
            throw reader.unsupported("normalizer", type)
        }
    }

    /// The normalized text.
    func normalize(_ text: String) -> String {
        switch self {
        case .nfc:
            return String(decoding: text._nfcCodeUnits, as: UTF8.self)
        case .nfd:
            var out = String.UnicodeScalarView()
            out.append(contentsOf: text._nfd)
            return String(out)
        case .lowercase:
            return TokenizerNormalizer.lowercase(text)
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content):
            var out = ""
            for piece in pattern.matches(in: text) {
                if piece.isMatch { out += content } else { out += text.tokenizerSlice(piece.range) }
            }
            return out
        case .strip(let left, let right):
            let scalars = text.unicodeScalars
            var start = scalars.startIndex, end = scalars.endIndex
            if left { while start < end, TokenizerCharClass.isWhitespace(scalars[start]) { start = scalars.index(after: start) } }
            if right {
                while end > start, TokenizerCharClass.isWhitespace(scalars[scalars.index(before: end)]) {
                    end = scalars.index(before: end)
                }
            }
            return text.tokenizerSlice(start..<end)
        case .sequence(let steps):
            return steps.reduce(text) { $1.normalize($0) }
        }
    }

    /// Code point by code point full lowercase mapping, like Rust's `char::to_lowercase` that HF
    /// applies (so no context-dependent final sigma, unlike `str::to_lowercase`).
    private static func lowercase(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if u.value < 0x80 {
                out.append((0x41...0x5A).contains(u.value) ? Unicode.Scalar(u.value + 0x20)! : u)
            } else {
                out.append(contentsOf: u.properties.lowercaseMapping.unicodeScalars)
            }
        }
        return String(out)
    }
}
