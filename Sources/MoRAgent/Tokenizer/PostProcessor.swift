/// A `tokenizer.json` post-processor, reduced to what it does to the ids of a single sequence
/// when special tokens are requested.
indirect enum TokenizerPostProcessor {
    /// One piece of a template: the input sequence, or fixed ids.
    enum Piece {
        case sequence
        case special([Int32])
    }

    /// Leaves the ids alone (HF's ByteLevel post-processor only adjusts offsets).
    case byteLevel
    /// The ids laid out by the `single` template.
    case template([Piece])
    case sequence([TokenizerPostProcessor])

    /// Reads the `post_processor` member; nil for null.
    static func parse(_ json: JSONValue, _ reader: TokenizerFileReader) throws -> TokenizerPostProcessor? {
        if json.isNull { return nil }
        let type = try reader.type(of: json, "post_processor")
        switch type {
        case "ByteLevel":
            return .byteLevel
        case "TemplateProcessing":
            return .template(try parseTemplate(json, reader))
        case "BertProcessing", "RobertaProcessing":
            // Both frame a single sequence as `cls … sep`; the rest of them concerns pairs and offsets.
            func token(_ key: String) throws -> Int32 {
                guard let pair = json[key]?.arrayValue, pair.count == 2, pair[0].stringValue != nil else {
                    throw reader.malformed("post_processor \(type).\(key) must be [token, id]")
                }
                return try reader.tokenID(pair[1], "post_processor \(type).\(key)[1]")
            }
            return .template([.special([try token("cls")]), .sequence, .special([try token("sep")])])
        case "Sequence":
            let parts = try reader.array(json, "processors", in: "post_processor Sequence")
            return .sequence(try parts.compactMap { try parse($0, reader) })
        default:
            throw reader.unsupported("post_processor", type)
        }
    }

    private static func parseTemplate(_ json: JSONValue, _ reader: TokenizerFileReader) throws -> [Piece] {
        let what = "post_processor TemplateProcessing"
        let specials = json["special_tokens"]
        return try reader.array(json, "single", in: what).enumerated().map { index, piece in
            if let sequence = piece["Sequence"] {
                guard sequence["id"]?.stringValue == "A" else {
                    throw reader.malformed("\(what).single[\(index)]: a single-sequence template can only use sequence A")
                }
                return .sequence
            }
            guard let name = piece["SpecialToken"]?["id"]?.stringValue else {
                throw reader.malformed("\(what).single[\(index)] must be {\"Sequence\": …} or {\"SpecialToken\": …}")
            }
            guard let ids = specials?[name]?["ids"]?.arrayValue else {
                throw reader.malformed("\(what).special_tokens has no ids for \"\(name)\"")
            }
            return .special(try ids.map { try reader.tokenID($0, "\(what).special_tokens[\"\(name)\"].ids") })
        }
    }

    /// The ids framed as the processor frames a single sequence with special tokens.
    func process(_ ids: [Int32]) -> [Int32] {
        switch self {
        case .byteLevel:
            return ids
        case .template(let pieces):
            var out: [Int32] = []
            out.reserveCapacity(ids.count + pieces.count)
            for piece in pieces {
                switch piece {
                case .sequence: out.append(contentsOf: ids)
                case .special(let special): out.append(contentsOf: special)
                }
            }
            return out
        case .sequence(let steps):
            return steps.reduce(ids) { $1.process($0) }
        }
    }
}
