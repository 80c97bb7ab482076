/// A Hugging Face `tokenizer.json` tokenizer.
///
/// Encoding follows HF's pipeline: added tokens that are not `normalized` are cut out of the raw
/// text; the rest is normalized, then the `normalized` added tokens are cut out; what remains is
/// pre-tokenized into words and each word is tokenized by the model (BPE or WordLevel). The
/// post-processor runs only when special tokens are requested. Padding and truncation settings
/// in the file are ignored: callers decide about lengths.
///
/// The tokenizer is immutable after `init` (the BPE word cache has its own lock), so one
/// instance can be shared by any number of threads.
public final class Tokenizer: @unchecked Sendable {
    private let normalizer: TokenizerNormalizer?
    private let preTokenizer: TokenizerPreTokenizer?
    private let model: TokenizerModel
    private let postProcessor: TokenizerPostProcessor?
    private let decoder: TokenizerDecoder?
    /// Added tokens matched in the raw text.
    private let rawAddedTokens: AddedTokenMatcher
    /// Added tokens matched in normalized text.
    private let normalizedAddedTokens: AddedTokenMatcher
    /// Added token content → id; these take precedence over the model's vocabulary.
    private let addedTokenIDs: [[UInt8]: Int32]
    /// Each id's token (added tokens override the model's vocabulary), nil for unused ids.
    private let tokensByID: [[UInt8]?]
    /// Content of the added tokens marked special. HF skips tokens by their decoded spelling, so
    /// a vocabulary entry spelled like a special token is skipped too, while a special token
    /// whose normalized form differs from its content is not.
    private let specialContents: Set<[UInt8]>

    /// The ids of the added tokens marked `special`.
    public let specialTokenIDs: Set<Int32>

    /// Loads a `tokenizer.json` file.
    public convenience init(path: String) throws {
        try self.init(json: try readJSONFile(path), path: path)
    }

    /// Builds a tokenizer from parsed `tokenizer.json` content; `path` only names the source in
    /// error messages. Throws `MoRAgentError.unsupported` for components this library does not
    /// implement and `.malformedFile` for fields of the wrong shape.
    public init(json: JSONValue, path: String) throws {
        let reader = TokenizerFileReader(path: path)
        guard json.objectValue != nil else { throw reader.malformed("a tokenizer.json must be a JSON object") }
        guard let modelJSON = json["model"] else { throw reader.malformed("no \"model\"") }
        model = try parseTokenizerModel(modelJSON, reader)
        normalizer = try json["normalizer"].flatMap { try TokenizerNormalizer.parse($0, reader) }
        preTokenizer = try json["pre_tokenizer"].flatMap { try TokenizerPreTokenizer.parse($0, reader) }
        postProcessor = try json["post_processor"].flatMap { try TokenizerPostProcessor.parse($0, reader) }
        decoder = try json["decoder"].flatMap { try TokenizerDecoder.parse($0, reader) }

        var added: [TokenizerAddedToken] = []
        if let list = json["added_tokens"], !list.isNull {
            guard let entries = list.arrayValue else { throw reader.malformed("added_tokens must be an array") }
            added = try entries.enumerated().map { try TokenizerAddedToken($1, reader, index: $0) }
        }
        let normalizer = self.normalizer
        rawAddedTokens = AddedTokenMatcher(added.filter { !$0.normalized }) { $0.content }
        normalizedAddedTokens = AddedTokenMatcher(added.filter(\.normalized)) { normalizer?.normalize($0.content) ?? $0.content }

        var addedIDs: [[UInt8]: Int32] = [:]
        for token in added where addedIDs[Array(token.content.utf8)] == nil { addedIDs[Array(token.content.utf8)] = token.id }
        addedTokenIDs = addedIDs

        let maxID = max(model.vocabulary.values.max() ?? -1, added.map(\.id).max() ?? -1)
        var tokens = [[UInt8]?](repeating: nil, count: Int(maxID) + 1)
        for (token, id) in model.vocabulary { tokens[Int(id)] = token }
        for token in added {
            // HF (since 0.22) decodes a `normalized` added token as its normalized form, so that
            // the decoder can undo what the normalizer did.
            let text = token.normalized ? normalizer?.normalize(token.content) ?? token.content : token.content
            tokens[Int(token.id)] = Array(text.utf8)
        }
        tokensByID = tokens

        let special = added.filter(\.special)
        specialTokenIDs = Set(special.map(\.id))
        specialContents = Set(special.map { Array($0.content.utf8) })
    }

    /// One more than the largest id of the vocabulary and the added tokens.
    public var vocabularySize: Int { tokensByID.count }

    /// The ids of `text`; with `addSpecialTokens`, framed by the post-processor (e.g. a BOS id).
    /// Never fails: characters the model cannot represent become its unknown token, or are
    /// dropped when it has none (where HF would fail or drop likewise).
    public func encode(_ text: String, addSpecialTokens: Bool = false) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count / 3 + 4)
        for piece in rawAddedTokens.split(text) {
            switch piece {
            case .token(let id):
                ids.append(id)
            case .text(let raw):
                let normalized = normalizer?.normalize(raw) ?? raw
                for inner in normalizedAddedTokens.split(normalized) {
                    switch inner {
                    case .token(let id): ids.append(id)
                    case .text(let segment): tokenizeSegment(segment, into: &ids)
                    }
                }
            }
        }
        if addSpecialTokens, let postProcessor { ids = postProcessor.process(ids) }
        return ids
    }

    /// Pre-tokenizes a normalized segment and runs the model on each word.
    private func tokenizeSegment(_ segment: String, into ids: inout [Int32]) {
        guard let preTokenizer else {
            model.tokenize(segment, into: &ids)
            return
        }
        var words: [String] = []
        preTokenizer.preTokenize(segment, into: &words)
        for word in words { model.tokenize(word, into: &ids) }
    }

    /// The text of `ids`, through the decoder (tokens joined by spaces when the file has none,
    /// as HF does). Invalid UTF-8 becomes U+FFFD as in HF. Ids that are neither in the
    /// vocabulary nor added tokens are skipped, as HF skips them.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) -> String {
        String(decoding: decodeBytes(ids, skipSpecialTokens: skipSpecialTokens, lossy: true), as: UTF8.self)
    }

    /// The raw bytes `ids` decode to, before any UTF-8 repair, so that a stream of ids can be
    /// turned into text once a character is complete and stop strings can be searched for.
    /// Unknown ids are skipped as in `decode`.
    public func decodedBytes(_ ids: [Int32], skipSpecialTokens: Bool = false) -> [UInt8] {
        decodeBytes(ids, skipSpecialTokens: skipSpecialTokens, lossy: false)
    }

    private func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool, lossy: Bool) -> [UInt8] {
        var tokens: [[UInt8]] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard id >= 0, Int(id) < tokensByID.count, let token = tokensByID[Int(id)] else { continue }
            if skipSpecialTokens && specialContents.contains(token) { continue }
            tokens.append(token)
        }
        guard let decoder else { return Tokenizer.concatenate(tokens, separator: UInt8(ascii: " ")) }
        return Tokenizer.concatenate(decoder.decodeChain(tokens, lossy: lossy), separator: nil)
    }

    private static func concatenate(_ chunks: [[UInt8]], separator: UInt8?) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(chunks.reduce(chunks.count) { $0 + $1.count })
        for (i, chunk) in chunks.enumerated() {
            if i > 0, let separator { out.append(separator) }
            out.append(contentsOf: chunk)
        }
        return out
    }

    /// The id of a token, looked up among the added tokens first, then in the vocabulary
    /// (exact code points: no normalization).
    public func id(of token: String) -> Int32? {
        let key = Array(token.utf8)
        return addedTokenIDs[key] ?? model.vocabulary[key]
    }

    /// The token of an id as the decoder sees it: the vocabulary entry (byte-level tokens keep
    /// their table characters, e.g. "Ġthe"), or an added token's content (normalized if the
    /// token is marked `normalized`, as in HF); nil for an unknown id.
    public func token(of id: Int32) -> String? {
        guard id >= 0, Int(id) < tokensByID.count, let token = tokensByID[Int(id)] else { return nil }
        return String(decoding: token, as: UTF8.self)
    }
}
