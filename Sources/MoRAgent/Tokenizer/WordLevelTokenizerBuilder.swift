/// Builds a word-level `tokenizer.json` from a corpus, for the tiny base models the library
/// pretrains itself (DESIGN.md §5: a household text world's scripted walkthroughs).
///
/// The file is what HF `tokenizers`' `WordLevelTrainer` would write for the same corpus: a
/// `WordLevel` model with `unk_token`, the `WhitespaceSplit` pre-tokenizer, no normalizer, no
/// post-processor and no decoder. Without a decoder, HF (and `Tokenizer`) decode by joining tokens
/// with single spaces, so any text whose words are single-space separated and in the vocabulary
/// decodes to itself. `WhitespaceSplit` rather than `Whitespace`: the latter would cut
/// `fridge.` into `fridge` `.` and decode it as `fridge .`.
///
/// Ids: the special tokens `<unk>` 0, `<pad>` 1, `</s>` 2, then the added (non-special) tokens in
/// the order given, then the words by descending frequency, ties in byte order (the trainer's
/// order, so the ids are deterministic). Every added token is also in the model's vocabulary at
/// its id, as the trainer writes them, so HF never renumbers one.
public struct WordLevelTokenizerBuilder: Sendable {
    /// The unknown token: every word outside the vocabulary encodes to it (id 0).
    public static let unknownToken = "<unk>"
    /// The padding token (id 1); never produced by encoding.
    public static let paddingToken = "<pad>"
    /// The end-of-sequence token (id 2), which pretraining appends to every line.
    public static let endOfSequenceToken = "</s>"
    /// The special tokens in id order; `decode(skipSpecialTokens: true)` drops them.
    public static let specialTokens = [unknownToken, paddingToken, endOfSequenceToken]

    /// Words seen fewer times than this are left out (they encode as `<unk>`).
    public var minimumFrequency = 1
    /// The largest vocabulary, special and added tokens included (nil: no limit); the rarest
    /// words are dropped first.
    public var maximumVocabularySize: Int?
    /// Non-special added tokens, matched in text before it is split into words and kept by
    /// `decode(skipSpecialTokens: true)`: the policy's stop string is `</action>`, so the action
    /// tags must survive decoding.
    public var addedTokens = ["<action>", "</action>"]

    /// A builder with the defaults: every word kept, the `<action>` tags added.
    public init() {}

    /// The tokens in id order for `lines`. Throws `invalidArgument` for bad options or a corpus
    /// without a single word.
    public func vocabulary(lines: [String]) throws -> [String] {
        let reserved = try reservedTokens()
        let reader = TokenizerFileReader(path: "<word-level builder>")
        // Words are cut exactly as `Tokenizer.encode` will cut them: added tokens first, then
        // white space.
        let added = try addedTokensJSON(reserved).enumerated().map { try TokenizerAddedToken($1, reader, index: $0) }
        let matcher = AddedTokenMatcher(added) { $0.content }
        // Counted by UTF-8 bytes, as HF does and `Tokenizer` looks words up: as `String` keys,
        // canonically equivalent spellings (é and e + ◌́) would merge into one entry.
        var counts: [[UInt8]: Int] = [:]
        var words: [String] = []
        for line in lines {
            for piece in matcher.split(line) {
                guard case .text(let text) = piece else { continue }
                words.removeAll(keepingCapacity: true)
                TokenizerPreTokenizer.whitespaceSplit.preTokenize(text, into: &words)
                for word in words { counts[Array(word.utf8), default: 0] += 1 }
            }
        }
        guard !counts.isEmpty else { throw MoRAgentError.invalidArgument("the corpus has no words to build a vocabulary from") }
        var ranked = counts.filter { $0.value >= minimumFrequency }.map { (word: $0.key, count: $0.value) }
        ranked.sort { $0.count != $1.count ? $0.count > $1.count : $0.word.lexicographicallyPrecedes($1.word) }
        let room = (maximumVocabularySize ?? Int.max) - reserved.count
        return reserved + ranked.prefix(room).map { String(decoding: $0.word, as: UTF8.self) }
    }

    /// The `tokenizer.json` content for `lines` (see the type's description for its layout).
    public func tokenizerJSON(lines: [String]) throws -> JSONValue {
        let tokens = try vocabulary(lines: lines)
        let reserved = try reservedTokens()
        return .object([
            ("version", .string("1.0")),
            ("truncation", .null),
            ("padding", .null),
            ("added_tokens", .array(addedTokensJSON(reserved))),
            ("normalizer", .null),
            ("pre_tokenizer", .object([("type", .string("WhitespaceSplit"))])),
            ("post_processor", .null),
            ("decoder", .null),
            ("model", .object([
                ("type", .string("WordLevel")),
                ("vocab", .object(tokens.enumerated().map { ($1, .number(Double($0))) })),
                ("unk_token", .string(Self.unknownToken)),
            ])),
        ])
    }

    /// The special tokens then the added ones, after checking the options.
    private func reservedTokens() throws -> [String] {
        guard minimumFrequency >= 1 else { throw MoRAgentError.invalidArgument("the minimum frequency must be ≥ 1, got \(minimumFrequency)") }
        let reserved = Self.specialTokens + addedTokens
        for token in addedTokens where token.isEmpty || token.unicodeScalars.contains(where: TokenizerCharClass.isWhitespace) {
            throw MoRAgentError.invalidArgument("added token \(token.debugDescription) is empty or contains white space")
        }
        guard Set(reserved).count == reserved.count else {
            throw MoRAgentError.invalidArgument("the added tokens \(addedTokens) repeat one another or a special token \(Self.specialTokens)")
        }
        if let limit = maximumVocabularySize, limit < reserved.count {
            throw MoRAgentError.invalidArgument("a vocabulary of at most \(limit) cannot hold the \(reserved.count) special and added tokens")
        }
        return reserved
    }

    /// The `added_tokens` entries as HF writes them (every flag explicit).
    private func addedTokensJSON(_ reserved: [String]) -> [JSONValue] {
        reserved.enumerated().map { id, content in
            .object([("id", .number(Double(id))), ("content", .string(content)), ("single_word", .bool(false)),
                     ("lstrip", .bool(false)), ("rstrip", .bool(false)), ("normalized", .bool(false)),
                     ("special", .bool(id < Self.specialTokens.count))])
        }
    }
}
