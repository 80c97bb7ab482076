/// Hand-written matchers for the word-splitting regexes of GPT-2 (ByteLevel's `use_regex`) and
/// of the Llama 3 / Qwen 2 family (their `Split` pre-tokenizer). These run on every prompt, and
/// Swift's `Regex` engine is several times slower than a direct scan; the scan also follows
/// Oniguruma where Swift's `Regex` differs (`(?i)` matching "ſ" as "s").
///
/// The matches of each pattern cover the text without gaps: every character is a letter, a
/// number, white space or "other", and for each class one alternative applies.
enum TokenizerWordPattern {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,n}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// with digit runs of at most `maxDigits` (Qwen 2: 1, written `\p{N}`; Llama 3: 3).
    case llama3(maxDigits: Int)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Source =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The hand-written matcher for a regex source, if there is one.
    init?(source: String) {
        switch source {
        case TokenizerWordPattern.gpt2Source: self = .gpt2
        case TokenizerWordPattern.qwen2Source: self = .llama3(maxDigits: 1)
        case TokenizerWordPattern.llama3Source: self = .llama3(maxDigits: 3)
        default: return nil
        }
    }

    /// The character classes the patterns distinguish.
    private enum Kind {
        case letter, number, other
        /// `\s` other than `\r` and `\n`.
        case space
        /// `\r` or `\n` (also `\s`).
        case newline
    }

    /// The class of every ASCII character.
    private static let asciiKinds: [Kind] = (0..<128).map { (v: Int) -> Kind in
        switch v {
        case 0x0A, 0x0D: return .newline
        case 0x09, 0x0B, 0x0C, 0x20: return .space
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }

    private static func kind(_ value: UInt32) -> Kind {
        if value < 0x80 { return asciiKinds[Int(value)] }
        let properties = Unicode.Scalar(value)!.properties
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return properties.isWhitespace ? .space : .other
        }
    }

    /// The end offsets of the consecutive matches in `text` (UTF-8, valid).
    func matchEnds(in text: UnsafeBufferPointer<UInt8>) -> [Int] {
        let scanner = Scanner(text: text)
        var ends: [Int] = []
        var position = 0
        while position < text.count {
            switch self {
            case .gpt2: position = scanner.gpt2Match(at: position)
            case .llama3(let maxDigits): position = scanner.llama3Match(at: position, maxDigits: maxDigits)
            }
            ends.append(position)
        }
        return ends
    }

    /// Character-level reading of the text.
    private struct Scanner {
        let text: UnsafeBufferPointer<UInt8>

        /// The code point at `i` (a character boundary) and its length in bytes.
        func scalar(at i: Int) -> (value: UInt32, length: Int) {
            let (scalar, length) = TokenizerCharClass.scalar(at: i, in: text)
            return (scalar.value, length)
        }

        /// The class of the character at `i`, nil at the end.
        func kind(at i: Int) -> Kind? {
            guard i < text.count else { return nil }
            if text[i] < 0x80 { return TokenizerWordPattern.asciiKinds[Int(text[i])] }
            return TokenizerWordPattern.kind(scalar(at: i).value)
        }

        /// The end of the run of characters from `i` whose class satisfies `include`, stopping
        /// after `limit` characters.
        func runEnd(from i: Int, limit: Int = Int.max, _ include: (Kind) -> Bool) -> Int {
            var j = i
            var count = 0
            while count < limit, let k = kind(at: j), include(k) {
                j += scalar(at: j).length
                count += 1
            }
            return j
        }

        /// The end of `'s|'t|'re|'ve|'m|'ll|'d` at `i` (an apostrophe), case-insensitively
        /// (where "ſ" folds to "s", as in Oniguruma) or not.
        func contractionEnd(at i: Int, ignoringCase: Bool) -> Int? {
            func letter(_ j: Int) -> UInt32? {
                guard j < text.count else { return nil }
                let (value, _) = scalar(at: j)
                if ignoringCase {
                    if value == 0x17F { return UInt32(UInt8(ascii: "s")) }
                    if (0x41...0x5A).contains(value) { return value + 0x20 }
                }
                return value
            }
            guard let first = letter(i + 1) else { return nil }
            // "ſ" takes two bytes; every other letter here takes one.
            let afterFirst = i + 1 + scalar(at: i + 1).length
            switch first {
            case UInt32(UInt8(ascii: "s")), UInt32(UInt8(ascii: "t")), UInt32(UInt8(ascii: "m")), UInt32(UInt8(ascii: "d")):
                return afterFirst
            case UInt32(UInt8(ascii: "r")), UInt32(UInt8(ascii: "v")):
                return letter(afterFirst) == UInt32(UInt8(ascii: "e")) ? afterFirst + 1 : nil
            case UInt32(UInt8(ascii: "l")):
                return letter(afterFirst) == UInt32(UInt8(ascii: "l")) ? afterFirst + 1 : nil
            default:
                return nil
            }
        }

        /// `\s+(?!\S)|\s+` at `i` (white space): the run, minus its last character when a
        /// non-space follows and the run has more than one character.
        func spaceEnd(at i: Int) -> Int {
            var j = i
            var lastStart = i
            while let k = kind(at: j), k == .space || k == .newline {
                lastStart = j
                j += scalar(at: j).length
            }
            return j < text.count && lastStart > i ? lastStart : j
        }

        func gpt2Match(at i: Int) -> Int {
            if text[i] == UInt8(ascii: "'"), let end = contractionEnd(at: i, ignoringCase: false) { return end }
            let first = kind(at: i)!
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
            var start = i
            var runKind = first
            if text[i] == UInt8(ascii: " "), let next = kind(at: i + 1), next != .space, next != .newline {
                start = i + 1
                runKind = next
            }
            switch runKind {
            case .letter, .number, .other: return runEnd(from: start) { $0 == runKind }
            case .space, .newline: return spaceEnd(at: i)
            }
        }

        func llama3Match(at i: Int, maxDigits: Int) -> Int {
            if text[i] == UInt8(ascii: "'"), let end = contractionEnd(at: i, ignoringCase: true) { return end }
            let first = kind(at: i)!
            // `[^\r\n\p{L}\p{N}]?\p{L}+`
            if first == .letter { return runEnd(from: i) { $0 == .letter } }
            let second = i + scalar(at: i).length
            if first == .space || first == .other, kind(at: second) == .letter { return runEnd(from: second) { $0 == .letter } }
            // `\p{N}{1,n}`
            if first == .number { return runEnd(from: i, limit: maxDigits) { $0 == .number } }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            var start = i
            if text[i] == UInt8(ascii: " "), kind(at: i + 1) == .other { start = i + 1 }
            if kind(at: start) == .other {
                let end = runEnd(from: start) { $0 == .other }
                return runEnd(from: end) { $0 == .newline }
            }
            // `\s*[\r\n]+`: up to the last line break of the white-space run.
            var j = i
            var afterLastNewline: Int?
            while let k = kind(at: j), k == .space || k == .newline {
                j += scalar(at: j).length
                if k == .newline { afterLastNewline = j }
            }
            if let afterLastNewline { return afterLastNewline }
            return spaceEnd(at: i)
        }
    }
}
