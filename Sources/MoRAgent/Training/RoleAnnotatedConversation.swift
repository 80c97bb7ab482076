/// One training conversation for Mixture-of-Roles SFT (DESIGN.md §4 "Data"): a system prompt,
/// then turns whose speaker is `user`, `tool` (an observation), or one of the three roles.
///
/// JSON lines, one conversation per line:
/// `{"system": "...", "turns": [{"role": "user", "content": "..."}, {"role": "reasoner", "content": "Thought: ...\nNext Role: Executor"},
///   {"role": "executor", "content": "API: ..."}, {"role": "tool", "content": "..."}, ..., {"role": "summarizer", "content": "..."}]}`
public struct RoleAnnotatedConversation: Equatable, Sendable {
    /// Who speaks a turn.
    public enum Speaker: Equatable, Sendable {
        case user, tool
        case agent(AgentRole)
    }
    /// The system prompt ("" for none).
    public var system: String
    /// Turns in order.
    public var turns: [(speaker: Speaker, content: String)]

    public static func == (a: RoleAnnotatedConversation, b: RoleAnnotatedConversation) -> Bool {
        a.system == b.system && a.turns.count == b.turns.count && zip(a.turns, b.turns).allSatisfy { $0.speaker == $1.speaker && $0.content == $1.content }
    }

    /// Parses one JSON object; `location` names the file and line in errors.
    public init(json: JSONValue, location: String) throws {
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: location, reason: reason) }
        guard json.objectValue != nil else { throw bad("not a JSON object") }
        system = json["system"]?.stringValue ?? ""
        guard let turns = json["turns"]?.arrayValue, !turns.isEmpty else { throw bad("no \"turns\" array") }
        self.turns = try turns.enumerated().map { i, t in
            guard let role = t["role"]?.stringValue, let content = t["content"]?.stringValue else { throw bad("turn \(i) lacks \"role\" or \"content\"") }
            let speaker: Speaker
            switch role {
            case "user": speaker = .user
            case "tool", "observation": speaker = .tool
            case "reasoner": speaker = .agent(.reasoner)
            case "executor": speaker = .agent(.executor)
            case "summarizer": speaker = .agent(.summarizer)
            default: throw bad("turn \(i) has unknown role \"\(role)\" (user, tool, reasoner, executor, summarizer)")
            }
            return (speaker, content)
        }
        guard self.turns.contains(where: { if case .agent = $0.speaker { return true }; return false }) else { throw bad("no reasoner, executor or summarizer turn to train on") }
    }

    /// Reads a JSON-lines file (blank lines skipped); errors name the file and line.
    public static func load(path: String) throws -> [RoleAnnotatedConversation] {
        let out = try parse(lines: readFileBytes(path), location: path)
        guard !out.isEmpty else { throw MoRAgentError.malformedFile(path: path, reason: "no conversations") }
        return out
    }

    /// Conversations from JSON-lines bytes (blank lines skipped); errors name `location` and the line.
    public static func parse(lines bytes: [UInt8], location: String) throws -> [RoleAnnotatedConversation] {
        var out: [RoleAnnotatedConversation] = []
        for (n, line) in bytes.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where line.contains(where: { $0 != 0x20 && $0 != 0x0D }) {
            let place = "\(location):\(n + 1)"
            let json: JSONValue
            do { json = try JSONValue.parse(bytes: Array(line)) } catch let e as JSONParseError { throw MoRAgentError.malformedFile(path: place, reason: e.description) }
            out.append(try RoleAnnotatedConversation(json: json, location: place))
        }
        return out
    }

    /// One turn as the model sees it: `User: …`, `Observation: …`, or the agent's own text (which
    /// carries the `Thought:`/`Next Role:`/`API:` fields). Turns are joined by a newline placed at
    /// the *start* of the following turn, so the first token after a `Next Role:` marker belongs to
    /// the next speaker in training exactly as the role gate assigns it at generation time.
    public static func text(of speaker: Speaker, _ content: String) -> String {
        switch speaker {
        case .user: return "User: \(content)"
        case .tool: return "Observation: \(content)"
        case .agent: return content
        }
    }

    /// Token ids, the role of every token (agent turns by their label; system, user and tool
    /// tokens by the role that speaks next, as the role gate would route them), and whether
    /// each token is a training target (agent turns only). Truncated to `maxLength` tokens.
    public func encode(tokenizer: Tokenizer, maxLength: Int) -> (ids: [Int32], roles: [AgentRole], targets: [Bool]) {
        var ids: [Int32] = [], roles: [AgentRole] = [], targets: [Bool] = []
        var pieces: [(String, Speaker)] = []
        if !system.isEmpty { pieces.append(("System: \(system)", .user)) }
        pieces += turns.map { (RoleAnnotatedConversation.text(of: $0.speaker, $0.content), $0.speaker) }
        pieces = pieces.enumerated().map { $0.offset == 0 ? $0.element : ("\n" + $0.element.0, $0.element.1) }
        for (i, (text, speaker)) in pieces.enumerated() {
            let tokens = tokenizer.encode(text)
            let role: AgentRole
            switch speaker {
            case .agent(let r): role = r
            default:
                role = pieces[(i + 1)...].lazy.compactMap { if case .agent(let r) = $0.1 { return r }; return nil }.first ?? .reasoner
            }
            ids += tokens
            roles += Array(repeating: role, count: tokens.count)
            if case .agent = speaker { targets += Array(repeating: true, count: tokens.count) } else { targets += Array(repeating: false, count: tokens.count) }
        }
        let n = min(ids.count, max(1, maxLength))
        return (Array(ids.prefix(n)), Array(roles.prefix(n)), Array(targets.prefix(n)))
    }
}
