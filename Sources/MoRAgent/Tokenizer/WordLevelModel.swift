/// HF's WordLevel model: each word is one vocabulary entry, or the unknown token.
final class WordLevelModel: TokenizerModel {
    let vocabulary: [[UInt8]: Int32]
    /// The id of `unk_token`; nil when it is not in the vocabulary.
    private let unknownID: Int32?

    init(_ json: JSONValue, _ reader: TokenizerFileReader) throws {
        vocabulary = try parseTokenizerVocabulary(json["vocab"], reader, in: "model")
        let unknown = try reader.optionalString(json, "unk_token", in: "model") ?? "<unk>"
        unknownID = vocabulary[Array(unknown.utf8)]
    }

    /// HF fails the whole encode when a word is unknown and there is no unknown token; this
    /// library's `encode` cannot fail, so it drops the word instead.
    func tokenize(_ word: String, into ids: inout [Int32]) {
        if let id = vocabulary[Array(word.utf8)] ?? unknownID { ids.append(id) }
    }
}
