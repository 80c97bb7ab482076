/// The character classes Hugging Face's pre-tokenizers and added-token rules use, defined on
/// code points exactly as Rust's `char` methods and `regex` crate define them (Swift's own
/// `Character` properties and `Regex` `\w` differ, e.g. on combining marks).
enum TokenizerCharClass {
    /// Rust `char::is_whitespace` and regex `\s`: the Unicode White_Space property.
    static func isWhitespace(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return u.value == 0x20 || (0x09...0x0D).contains(u.value) }
        return u.properties.isWhitespace
    }

    /// Rust regex `\w`: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
    static func isWord(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 {
            let v = u.value
            return (0x30...0x39).contains(v) || (0x41...0x5A).contains(v) || (0x61...0x7A).contains(v) || v == 0x5F
        }
        let p = u.properties
        if p.isAlphabetic || p.isJoinControl { return true }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// Rust `char::is_numeric`: general categories Nd, Nl and No.
    static func isNumeric(_ u: Unicode.Scalar) -> Bool {
        if u.value < 0x80 { return (0x30...0x39).contains(u.value) }
        switch u.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// The code point starting at byte `i` of valid UTF-8, with its length in bytes.
    static func scalar(at i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (value: Unicode.Scalar, length: Int) {
        let lead = UInt32(bytes[i])
        if lead < 0x80 { return (Unicode.Scalar(UInt8(lead)), 1) }
        let length = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        var value = lead & (0xFF >> (length + 1))
        for k in 1..<length { value = value << 6 | UInt32(bytes[i + k] & 0x3F) }
        return (Unicode.Scalar(value)!, length)
    }

    /// The code point ending just before byte `i` of valid UTF-8, with its length in bytes.
    static func scalar(before i: Int, in bytes: UnsafeBufferPointer<UInt8>) -> (value: Unicode.Scalar, length: Int) {
        var start = i - 1
        while bytes[start] & 0xC0 == 0x80 { start -= 1 }
        return scalar(at: start, in: bytes)
    }
}
