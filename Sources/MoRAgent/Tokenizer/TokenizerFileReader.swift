/// Reads the fields of one `tokenizer.json`, turning every wrong shape into an error that names
/// the file: `.malformedFile` for a known field of the wrong type, `.unsupported` for a component
/// type this library does not implement.
struct TokenizerFileReader {
    /// The file the JSON came from, quoted in every error.
    let path: String

    /// A `.malformedFile` error for this file.
    func malformed(_ reason: String) -> MoRAgentError {
        .malformedFile(path: path, reason: reason)
    }

    /// An `.unsupported` error naming the file, the component (`model`, `normalizer`…) and its type.
    func unsupported(_ component: String, _ type: String) -> MoRAgentError {
        .unsupported("\(path): \(component) type \(type)")
    }

    /// The `type` member of a component object.
    func type(of json: JSONValue, _ component: String) throws -> String {
        guard json.objectValue != nil else { throw malformed("\(component) is not an object") }
        guard let type = json["type"]?.stringValue else { throw malformed("\(component) has no string \"type\"") }
        return type
    }

    /// A required string member.
    func string(_ json: JSONValue, _ key: String, in component: String) throws -> String {
        guard let value = json[key]?.stringValue else { throw malformed("\(component).\(key) must be a string") }
        return value
    }

    /// An optional string member: absent or null gives nil.
    func optionalString(_ json: JSONValue, _ key: String, in component: String) throws -> String? {
        guard let value = json[key], !value.isNull else { return nil }
        guard let s = value.stringValue else { throw malformed("\(component).\(key) must be a string or null") }
        return s
    }

    /// An optional Boolean member: absent or null gives `defaultValue`.
    func bool(_ json: JSONValue, _ key: String, in component: String, default defaultValue: Bool) throws -> Bool {
        guard let value = json[key], !value.isNull else { return defaultValue }
        guard let b = value.boolValue else { throw malformed("\(component).\(key) must be a Boolean") }
        return b
    }

    /// A required non-negative integer member.
    func count(_ json: JSONValue, _ key: String, in component: String) throws -> Int {
        guard let value = json[key]?.intValue, value >= 0 else {
            throw malformed("\(component).\(key) must be a non-negative integer")
        }
        return value
    }

    /// A required array member.
    func array(_ json: JSONValue, _ key: String, in component: String) throws -> [JSONValue] {
        guard let value = json[key]?.arrayValue else { throw malformed("\(component).\(key) must be an array") }
        return value
    }

    /// Largest token id accepted: far above any real vocabulary (a few hundred thousand), low
    /// enough that a corrupt id cannot make the id → token table exhaust memory.
    static let maxTokenID = 1 << 24

    /// A token id: an integer in 0 ... `maxTokenID`.
    func tokenID(_ json: JSONValue?, _ what: @autoclosure () -> String) throws -> Int32 {
        guard let value = json?.intValue, value >= 0, value <= TokenizerFileReader.maxTokenID else {
            throw malformed("\(what()) must be a token id (an integer from 0 to \(TokenizerFileReader.maxTokenID))")
        }
        return Int32(value)
    }

    /// A Split-style pattern object, `{"String": s}` or `{"Regex": r}`.
    func pattern(_ json: JSONValue?, in component: String) throws -> TokenizerTextPattern {
        if let literal = json?["String"]?.stringValue { return .literal(Array(literal.unicodeScalars)) }
        if let source = json?["Regex"]?.stringValue {
            if let words = TokenizerWordPattern(source: source) { return .words(words) }
            return .regex(try regex(source, in: component))
        }
        throw malformed("\(component).pattern must be {\"String\": …} or {\"Regex\": …}")
    }

    /// Compiles a pattern written for Oniguruma (what Hugging Face uses) as a Swift `Regex` that
    /// works on code points, as Oniguruma does, instead of on grapheme clusters.
    func regex(_ source: String, in component: String) throws -> Regex<AnyRegexOutput> {
        do {
            let regex = try Regex(source).matchingSemantics(.unicodeScalar)
            // `Regex` compiles its program lazily on first use; doing it here keeps that work
            // (and any failure) out of concurrent `encode` calls.
            _ = "warm-up".firstMatch(of: regex)
            return regex
        } catch {
            throw MoRAgentError.unsupported("\(path): \(component) regex \"\(source)\" (\(error))")
        }
    }
}
