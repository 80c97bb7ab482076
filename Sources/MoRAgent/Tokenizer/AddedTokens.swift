/// One entry of `tokenizer.json`'s `added_tokens`.
struct TokenizerAddedToken {
    let id: Int32
    let content: String
    /// Only matched when not glued to word characters on either side.
    let singleWord: Bool
    /// Swallows the white space before it.
    let lstrip: Bool
    /// Swallows the white space after it.
    let rstrip: Bool
    /// Matched in normalized text (after the normalizer) rather than in the raw input.
    let normalized: Bool
    /// Skipped by `decode(skipSpecialTokens: true)`.
    let special: Bool

    /// Reads one `added_tokens` entry. Missing flags default as in HF's `AddedToken::from(content,
    /// special)`: off, and `normalized` only for tokens that are not special.
    init(_ json: JSONValue, _ reader: TokenizerFileReader, index: Int) throws {
        let what = "added_tokens[\(index)]"
        id = try reader.tokenID(json["id"], "\(what).id")
        content = try reader.string(json, "content", in: what)
        singleWord = try reader.bool(json, "single_word", in: what, default: false)
        lstrip = try reader.bool(json, "lstrip", in: what, default: false)
        rstrip = try reader.bool(json, "rstrip", in: what, default: false)
        special = try reader.bool(json, "special", in: what, default: false)
        normalized = try reader.bool(json, "normalized", in: what, default: !special)
    }
}

/// A piece of input text after the added tokens are cut out of it.
enum AddedTokenSplit {
    /// Text still to be pre-tokenized and tokenized by the model.
    case text(String)
    /// An added token, already resolved to its id.
    case token(Int32)
}

/// Finds added tokens in text the way HF's `AddedVocabulary::find_matches` does: leftmost-longest
/// matches (its Aho-Corasick automaton's `LeftmostLongest` mode), then the `single_word`,
/// `lstrip` and `rstrip` rules. It works on UTF-8 bytes: a token starts with a lead byte, so a
/// byte match is always a match of whole characters.
struct AddedTokenMatcher {
    /// The trie node reached from the root by each first byte (−1: no token starts so).
    private var rootChildren = [Int32](repeating: -1, count: 256)
    /// The children of the other trie nodes, by byte.
    private var children: [[UInt8: Int32]] = [[:]]
    /// For each trie node, the token (index into `tokens`) that ends there, or −1.
    private var terminal: [Int32] = [-1]
    private let tokens: [TokenizerAddedToken]

    /// A matcher for `tokens`, each searched for as `pattern(token)`; with two tokens of the
    /// same pattern the first one wins.
    init(_ tokens: [TokenizerAddedToken], pattern: (TokenizerAddedToken) -> String) {
        self.tokens = tokens
        for (index, token) in tokens.enumerated() {
            var node = 0
            for byte in pattern(token).utf8 {
                let existing = node == 0 ? rootChildren[Int(byte)] : children[node][byte] ?? -1
                if existing >= 0 {
                    node = Int(existing)
                    continue
                }
                children.append([:])
                terminal.append(-1)
                let child = Int32(children.count - 1)
                if node == 0 { rootChildren[Int(byte)] = child } else { children[node][byte] = child }
                node = Int(child)
            }
            // An empty pattern ends at the root, which is never treated as a match.
            if node > 0 && terminal[node] < 0 { terminal[node] = Int32(index) }
        }
    }

    /// `text` cut into added tokens and the (non-empty) text between them.
    func split(_ text: String) -> [AddedTokenSplit] {
        if text.isEmpty { return [] }
        if tokens.isEmpty { return [.text(text)] }
        var contiguous = text
        return contiguous.withUTF8 { split($0, text) }
    }

    private func split(_ bytes: UnsafeBufferPointer<UInt8>, _ text: String) -> [AddedTokenSplit] {
        let n = bytes.count
        func slice(_ lower: Int, _ upper: Int) -> AddedTokenSplit {
            .text(String(decoding: UnsafeBufferPointer(rebasing: bytes[lower..<upper]), as: UTF8.self))
        }
        var out: [AddedTokenSplit] = []
        var startOffset = 0
        var position = 0
        while position < n {
            guard let (tokenIndex, matchEnd) = longestMatch(bytes, at: position) else {
                position += 1
                continue
            }
            let token = tokens[tokenIndex]
            var start = position
            var stop = matchEnd
            // Like the automaton's iterator, the next search starts after this match whatever
            // the rules below decide.
            position = matchEnd
            if token.singleWord {
                let spaceBefore = start == 0 || !TokenizerCharClass.isWord(TokenizerCharClass.scalar(before: start, in: bytes).value)
                let spaceAfter = stop == n || !TokenizerCharClass.isWord(TokenizerCharClass.scalar(at: stop, in: bytes).value)
                if !spaceBefore || !spaceAfter { continue }
            }
            if token.lstrip {
                var newStart = start
                while newStart > 0 {
                    let (scalar, length) = TokenizerCharClass.scalar(before: newStart, in: bytes)
                    guard TokenizerCharClass.isWhitespace(scalar) else { break }
                    newStart -= length
                }
                start = max(newStart, startOffset)
            }
            if token.rstrip {
                while stop < n {
                    let (scalar, length) = TokenizerCharClass.scalar(at: stop, in: bytes)
                    guard TokenizerCharClass.isWhitespace(scalar) else { break }
                    stop += length
                }
            }
            if startOffset < start { out.append(slice(startOffset, start)) }
            // A match whose span the previous token's `rstrip` already swallowed ends up empty;
            // HF drops empty pieces, token or not.
            if start < stop { out.append(.token(token.id)) }
            startOffset = stop
        }
        if startOffset == 0 { return [.text(text)] }
        if startOffset < n { out.append(slice(startOffset, n)) }
        return out
    }

    /// The longest token starting at `start`, with the offset just past it.
    private func longestMatch(_ bytes: UnsafeBufferPointer<UInt8>, at start: Int) -> (Int, Int)? {
        var node = Int(rootChildren[Int(bytes[start])])
        guard node >= 0 else { return nil }
        var i = start + 1
        var best: (Int, Int)?
        while true {
            if terminal[node] >= 0 { best = (Int(terminal[node]), i) }
            guard i < bytes.count, let child = children[node][bytes[i]] else { return best }
            node = Int(child)
            i += 1
        }
    }
}
