/// The part of a tokenizer that turns one pre-tokenized word into ids.
protocol TokenizerModel: AnyObject {
    /// Token (as UTF-8 bytes, so that canonically equivalent spellings stay distinct) → id.
    var vocabulary: [[UInt8]: Int32] { get }
    /// Appends the ids of `word` (non-empty) to `ids`; safe to call from several threads at once.
    func tokenize(_ word: String, into ids: inout [Int32])
}

/// Reads the `model` member of `tokenizer.json`.
func parseTokenizerModel(_ json: JSONValue, _ reader: TokenizerFileReader) throws -> TokenizerModel {
    guard json.objectValue != nil else { throw reader.malformed("model is not an object") }
    let type: String
    if let explicit = json["type"]?.stringValue {
        type = explicit
    } else {
        // Old files leave the type out and HF guesses it from the fields present.
        if json["merges"] != nil { type = "BPE" }
        else if json["max_input_chars_per_word"] != nil { type = "WordPiece" }
        else if json["vocab"]?.arrayValue != nil { type = "Unigram" }
        else { type = "WordLevel" }
    }
    switch type {
    case "BPE": return try BPEModel(json, reader)
    case "WordLevel": return try WordLevelModel(json, reader)
    default: throw reader.unsupported("model", type)
    }
}

/// Reads a `{token: id}` vocabulary object.
func parseTokenizerVocabulary(_ json: JSONValue?, _ reader: TokenizerFileReader,
                              in component: String) throws -> [[UInt8]: Int32] {
    guard let members = json?.objectValue else { throw reader.malformed("\(component).vocab must be an object") }
    var vocabulary: [[UInt8]: Int32] = [:]
    vocabulary.reserveCapacity(members.count)
    for (token, id) in members {
        vocabulary[Array(token.utf8)] = try reader.tokenID(id, "\(component).vocab[\"\(token)\"]")
    }
    return vocabulary
}
