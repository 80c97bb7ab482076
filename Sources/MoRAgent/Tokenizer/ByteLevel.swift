/// GPT-2's reversible byte ↔ character table, which lets byte-level BPE vocabularies store every
/// byte as a printable character: bytes `!`…`~`, `¡`…`¬` and `®`…`ÿ` stand for themselves, and the
/// other 68 bytes map to U+0100, U+0101, … in increasing byte order.
enum ByteLevelTable {
    /// The character standing for each byte.
    static let scalarForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 0x100
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The UTF-8 encoding of each byte's character (all below U+0800, so one or two bytes; the
    /// second is 0 for one), so mapping a string is a table copy.
    static let utf8ForByte: [(UInt8, UInt8)] = scalarForByte.map { scalar in
        let bytes = Array(String(scalar).utf8)
        return (bytes[0], bytes.count > 1 ? bytes[1] : 0)
    }

    /// The byte each table character stands for, indexed by code point (−1: not in the table).
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// `text`'s UTF-8 bytes, each replaced by its table character.
    static func encode(_ text: String) -> String {
        var source = text
        return source.withUTF8 { bytes in
            String(unsafeUninitializedCapacity: bytes.count * 2) { buffer in
                var count = 0
                for byte in bytes {
                    let (first, second) = utf8ForByte[Int(byte)]
                    buffer[count] = first
                    count += 1
                    if second != 0 {
                        buffer[count] = second
                        count += 1
                    }
                }
                return count
            }
        }
    }

    /// The bytes a token's characters stand for, or nil if one of them is not a table character
    /// (HF then keeps the token's own UTF-8 bytes, e.g. for added tokens written in plain text).
    static func decode(_ token: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.count)
        var i = 0
        while i < token.count {
            // Table characters take one or two UTF-8 bytes; any other sequence means "not a
            // table character".
            let lead = token[i]
            let value: Int
            if lead < 0x80 {
                value = Int(lead)
                i += 1
            } else if lead & 0xE0 == 0xC0, i + 1 < token.count, token[i + 1] & 0xC0 == 0x80 {
                value = Int(lead & 0x1F) << 6 | Int(token[i + 1] & 0x3F)
                i += 2
            } else {
                return nil
            }
            guard value < byteForScalar.count, byteForScalar[value] >= 0 else { return nil }
            out.append(UInt8(byteForScalar[value]))
        }
        return out
    }
}
