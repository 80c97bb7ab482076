/// What a Split-style pre-tokenizer or a Replace normalizer searches for.
enum TokenizerTextPattern {
    /// A literal string; Hugging Face escapes it into a regex, which finds the same
    /// leftmost non-overlapping occurrences.
    case literal([Unicode.Scalar])
    /// A regex working on code points.
    case regex(Regex<AnyRegexOutput>)
    /// One of the common word-splitting regexes, matched by hand.
    case words(TokenizerWordPattern)
    /// Every single code point for which the predicate holds is a match of its own (what HF's
    /// `Fn(char) -> bool` patterns do).
    case scalar((Unicode.Scalar) -> Bool)

    /// `text` cut into consecutive ranges that cover it, each flagged as a match or not, like
    /// HF's `Pattern::find_matches` (nothing for empty text: HF drops empty pieces anyway).
    func matches(in text: String) -> [(range: Range<String.Index>, isMatch: Bool)] {
        if text.isEmpty { return [] }
        var found: [Range<String.Index>] = []
        let scalars = text.unicodeScalars
        switch self {
        case .regex(let regex):
            for match in text.matches(of: regex) { found.append(match.range) }
        case .words(let pattern):
            var contiguous = text
            let ends = contiguous.withUTF8 { pattern.matchEnds(in: $0) }
            var start = text.startIndex
            var startOffset = 0
            for end in ends {
                let upper = text.utf8.index(start, offsetBy: end - startOffset)
                found.append(start..<upper)
                start = upper
                startOffset = end
            }
        case .scalar(let predicate):
            var i = scalars.startIndex
            while i < scalars.endIndex {
                let next = scalars.index(after: i)
                if predicate(scalars[i]) { found.append(i..<next) }
                i = next
            }
        case .literal(let literal):
            var i = scalars.startIndex
            while i <= scalars.endIndex {
                if let end = TokenizerTextPattern.literalEnd(literal, in: scalars, at: i) {
                    found.append(i..<end)
                    // An empty literal matches at every position, as the empty regex would.
                    if end > i { i = end; continue }
                }
                if i == scalars.endIndex { break }
                i = scalars.index(after: i)
            }
        }
        var pieces: [(range: Range<String.Index>, isMatch: Bool)] = []
        pieces.reserveCapacity(found.count * 2 + 1)
        var previous = text.startIndex
        for range in found {
            if previous < range.lowerBound { pieces.append((previous..<range.lowerBound, false)) }
            pieces.append((range, true))
            previous = range.upperBound
        }
        if previous < text.endIndex { pieces.append((previous..<text.endIndex, false)) }
        return pieces
    }

    /// Where `literal` ends if it occurs in `scalars` at `start`.
    private static func literalEnd(_ literal: [Unicode.Scalar], in scalars: String.UnicodeScalarView,
                                   at start: String.Index) -> String.Index? {
        var i = start
        for u in literal {
            guard i < scalars.endIndex, scalars[i] == u else { return nil }
            i = scalars.index(after: i)
        }
        return i
    }
}

/// What a split does with the matched delimiters (HF's `SplitDelimiterBehavior`).
enum TokenizerSplitBehavior: String {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// The ranges to keep, given the match flags; a transcription of HF's `NormalizedString::split`.
    func keptRanges(_ pieces: [(range: Range<String.Index>, isMatch: Bool)]) -> [Range<String.Index>] {
        switch self {
        case .removed:
            return pieces.filter { !$0.isMatch }.map(\.range)
        case .isolated:
            return pieces.map(\.range)
        case .contiguous:
            var out: [Range<String.Index>] = []
            var previousMatch = false
            for piece in pieces {
                if piece.isMatch == previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<piece.range.upperBound
                } else {
                    out.append(piece.range)
                }
                previousMatch = piece.isMatch
            }
            return out
        case .mergedWithPrevious:
            var out: [Range<String.Index>] = []
            var previousMatch = false
            for piece in pieces {
                if piece.isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = last.lowerBound..<piece.range.upperBound
                } else {
                    out.append(piece.range)
                }
                previousMatch = piece.isMatch
            }
            return out
        case .mergedWithNext:
            var out: [Range<String.Index>] = []
            var previousMatch = false
            for piece in pieces.reversed() {
                if piece.isMatch && !previousMatch, let last = out.last {
                    out[out.count - 1] = piece.range.lowerBound..<last.upperBound
                } else {
                    out.append(piece.range)
                }
                previousMatch = piece.isMatch
            }
            return out.reversed()
        }
    }
}

extension String {
    /// The code points in `range` as a new string. `String`'s own range subscript would round
    /// the bounds to grapheme-cluster boundaries; the pipeline cuts between code points.
    func tokenizerSlice(_ range: Range<String.Index>) -> String {
        String(Substring(unicodeScalars[range]))
    }

    /// Splits the string as HF's `NormalizedString::split(pattern, behavior)` does, with the
    /// match flags flipped when `invert` is set, dropping empty pieces.
    func tokenizerSplit(_ pattern: TokenizerTextPattern, _ behavior: TokenizerSplitBehavior,
                        invert: Bool = false, into out: inout [String]) {
        var pieces = pattern.matches(in: self)
        if invert { for i in pieces.indices { pieces[i].isMatch.toggle() } }
        for range in behavior.keptRanges(pieces) where !range.isEmpty {
            out.append(tokenizerSlice(range))
        }
    }
}
