/// A `tokenizer.json` pre-tokenizer: cuts normalized text into the words the model tokenizes
/// one by one.
indirect enum TokenizerPreTokenizer {
    case split(pattern: TokenizerTextPattern, behavior: TokenizerSplitBehavior, invert: Bool)
    /// GPT-2's: optional leading space, optional split with GPT-2's word regex, then every byte
    /// as its table character.
    case byteLevel(addPrefixSpace: Bool, splitWords: Bool)
    /// `\w+|[^\w\s]+` kept, white space dropped.
    case whitespace
    /// White space dropped, the rest kept.
    case whitespaceSplit
    /// Numeric characters split off, one by one or in runs.
    case digits(individual: Bool)
    case sequence([TokenizerPreTokenizer])

    /// Reads the `pre_tokenizer` member; nil for null.
    static func parse(_ json: JSONValue, _ reader: TokenizerFileReader) throws -> TokenizerPreTokenizer? {
        if json.isNull { return nil }
        let type = try reader.type(of: json, "pre_tokenizer")
        switch type {
        case "Split":
            let behaviorName = try reader.string(json, "behavior", in: "pre_tokenizer Split")
            guard let behavior = TokenizerSplitBehavior(rawValue: behaviorName) else {
                throw reader.malformed("pre_tokenizer Split: unknown behavior \"\(behaviorName)\"")
            }
            return .split(pattern: try reader.pattern(json["pattern"], in: "pre_tokenizer Split"), behavior: behavior,
                          invert: try reader.bool(json, "invert", in: "pre_tokenizer Split", default: false))
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try reader.bool(json, "add_prefix_space", in: "pre_tokenizer ByteLevel", default: true),
                              splitWords: try reader.bool(json, "use_regex", in: "pre_tokenizer ByteLevel", default: true))
        case "Whitespace":
            return .whitespace
        case "WhitespaceSplit":
            return .whitespaceSplit
        case "Digits":
            return .digits(individual: try reader.bool(json, "individual_digits", in: "pre_tokenizer Digits", default: false))
        case "Sequence":
            let parts = try reader.array(json, "pretokenizers", in: "pre_tokenizer Sequence")
            return .sequence(try parts.compactMap { try parse($0, reader) })
        default:
            throw reader.unsupported("pre_tokenizer", type)
        }
    }

    /// Appends the non-empty words `piece` splits into to `out`.
    func preTokenize(_ piece: String, into out: inout [String]) {
        switch self {
        case let .split(pattern, behavior, invert):
            piece.tokenizerSplit(pattern, behavior, invert: invert, into: &out)
        case let .byteLevel(addPrefixSpace, splitWords):
            // HF prepends the space to every piece it is given, not only to the start of the text.
            let text = addPrefixSpace && piece.utf8.first != UInt8(ascii: " ") ? " " + piece : piece
            var words: [String] = []
            if splitWords {
                text.tokenizerSplit(.words(.gpt2), .isolated, into: &words)
            } else {
                words = [text]
            }
            for word in words { out.append(ByteLevelTable.encode(word)) }
        case .whitespace:
            TokenizerPreTokenizer.appendWordsAndPunctuation(piece, into: &out)
        case .whitespaceSplit:
            piece.tokenizerSplit(.scalar(TokenizerCharClass.isWhitespace), .removed, into: &out)
        case .digits(let individual):
            piece.tokenizerSplit(.scalar(TokenizerCharClass.isNumeric), individual ? .isolated : .contiguous, into: &out)
        case .sequence(let steps):
            var pieces = [piece]
            for step in steps {
                var next: [String] = []
                for p in pieces { step.preTokenize(p, into: &next) }
                pieces = next
            }
            out.append(contentsOf: pieces)
        }
    }

    /// The matches of `\w+|[^\w\s]+` (Rust regex classes) in `piece`: runs of word characters
    /// and runs of other non-space characters.
    private static func appendWordsAndPunctuation(_ piece: String, into out: inout [String]) {
        let scalars = piece.unicodeScalars
        var i = scalars.startIndex
        while i < scalars.endIndex {
            let u = scalars[i]
            if TokenizerCharClass.isWhitespace(u) { i = scalars.index(after: i); continue }
            let word = TokenizerCharClass.isWord(u)
            let start = i
            repeat { i = scalars.index(after: i) } while i < scalars.endIndex
                && !TokenizerCharClass.isWhitespace(scalars[i]) && TokenizerCharClass.isWord(scalars[i]) == word
            out.append(piece.tokenizerSlice(start..<i))
        }
    }
}
