/// The three roles of MoRAgent (paper §3; notes/moragent-details.md §1).
public enum AgentRole: Int, CaseIterable, Sendable {
    /// Reads the query and trajectory, writes a thought and the next role.
    case reasoner
    /// Writes the function call.
    case executor
    /// Writes the final answer.
    case summarizer
}

/// The rule-based role gate: every token belongs to exactly one role. In training the role comes
/// from labels; at generation time it follows the text: the last hand-over marker written so far
/// (`Next Role: Executor`, `Next Role: Summarizer`, configurable) names the active role, and
/// before any marker the initial role is active.
public struct RoleGate: Equatable, Sendable {
    /// The role active before any marker.
    public var initialRole: AgentRole = .reasoner
    /// Hand-over markers and the role each activates.
    public var markers: [(text: String, role: AgentRole)] = [("Next Role: Executor", .executor), ("Next Role: Summarizer", .summarizer),
                                                            ("Next Role: Reasoner", .reasoner)]

    /// The paper's markers, starting with the reasoner.
    public init() {}

    public static func == (a: RoleGate, b: RoleGate) -> Bool {
        a.initialRole == b.initialRole && a.markers.count == b.markers.count
            && zip(a.markers, b.markers).allSatisfy { $0.text == $1.text && $0.role == $1.role }
    }

    /// The role of every token of `ids`: the role active after the text of the tokens before it
    /// (so a marker's own tokens belong to the role that wrote it, as in labelled training data).
    public func roles(of ids: [Int32], tokenizer: Tokenizer) -> [AgentRole] {
        var text: [UInt8] = []
        var starts: [Int] = []
        for id in ids {
            starts.append(text.count)
            text += tokenizer.decodedBytes([id])
        }
        var events: [(end: Int, role: AgentRole)] = []
        for (marker, role) in markers where !marker.isEmpty {
            let m = Array(marker.utf8)
            var i = 0
            while i + m.count <= text.count {
                if text[i] == m[0] && Array(text[i..<(i + m.count)]) == m { events.append((i + m.count, role)); i += m.count } else { i += 1 }
            }
        }
        events.sort { $0.end < $1.end }
        var roles: [AgentRole] = []
        var current = initialRole, e = 0
        for s in starts {
            while e < events.count && events[e].end <= s { current = events[e].role; e += 1 }
            roles.append(current)
        }
        return roles
    }

    /// The role active after `text`: that of the marker ending last in it.
    public func role(after text: String) -> AgentRole {
        var best: (end: String.Index, role: AgentRole)?
        for (marker, role) in markers where !marker.isEmpty {
            var searchFrom = text.startIndex
            while let r = text[searchFrom...].firstRange(of: marker) {
                if best == nil || r.upperBound > best!.end { best = (r.upperBound, role) }
                searchFrom = r.upperBound
            }
        }
        return best?.role ?? initialRole
    }
}

/// The shape of a Mixture-of-Roles adapter (DESIGN.md §4: the paper's "5-5-4").
public struct MixtureOfRolesConfiguration: Equatable, Sendable {
    /// Routed LoRAs per role (reasoner, executor, summarizer).
    public var routedCounts: [Int] = [4, 4, 3]
    /// Routed LoRAs kept per token, per role.
    public var topK: [Int] = [3, 3, 2]
    /// Rank of every LoRA (16 in the released code).
    public var rank: Int = 16
    /// Scale of every LoRA delta. The released code applies no alpha/r scaling (scale 1).
    public var scale: Float = 1
    /// The adapted projections (all seven in the paper).
    public var targetModules: Set<ProjectionKind> = Set(ProjectionKind.allCases)
    /// Multiply the shared LoRA by a learned `sigmoid(w·x)` per module, as the released code
    /// does; false gives it weight 1, as the paper's formula does.
    public var sharedGate: Bool = false

    /// The paper's configuration.
    public init() {}

    /// Throws when counts and top-k do not fit together.
    public func validate() throws {
        guard routedCounts.count == 3, topK.count == 3 else { throw MoRAgentError.invalidArgument("give routed counts and top-k for the three roles") }
        for r in 0..<3 where routedCounts[r] < 0 || topK[r] < 0 || topK[r] > routedCounts[r] || (routedCounts[r] > 0 && topK[r] == 0) {
            throw MoRAgentError.invalidArgument("role \(r): top-k \(topK[r]) does not fit \(routedCounts[r]) routed LoRAs")
        }
        guard rank > 0, scale.isFinite, !targetModules.isEmpty else { throw MoRAgentError.invalidArgument("bad rank, scale or targets") }
    }
}

/// MoRAgent's Mixture-of-Roles adapter (paper §3.2): per role, a shared LoRA that is always on
/// plus routed LoRAs chosen per token by a bias-free linear router on the module's input
/// (softmax, top-k, renormalised), in every adapted projection of every layer. Tokens of one role
/// never touch the other roles' LoRAs.
public final class MixtureOfRoles: @unchecked Sendable {
    /// Shapes.
    public let configuration: MixtureOfRolesConfiguration
    /// Every LoRA of every role in one set: for each role, its routed LoRAs then its shared one.
    public let loras: ExpertSet
    /// `routers[role][module]`: `[E_role, in]`, no bias.
    public let routers: [[LoRAModuleKey: LinearLayer]]
    /// `sharedGates[role][module]`: `[1, in]`, when the shared gate is on.
    public let sharedGates: [[LoRAModuleKey: LinearLayer]]

    /// A seeded adapter for `model` (PEFT init: A Kaiming-uniform, B zero; routers uniform).
    public init(configuration: MixtureOfRolesConfiguration, model: ModelConfig, seed: UInt64) throws {
        try configuration.validate()
        self.configuration = configuration
        let lora = LoRAConfiguration(rank: configuration.rank, alpha: configuration.scale * Float(configuration.rank),
                                     targetModules: configuration.targetModules)
        loras = ExpertSet(model: model)
        var routers: [[LoRAModuleKey: LinearLayer]] = [], gates: [[LoRAModuleKey: LinearLayer]] = []
        var g = SeededGenerator(seed: seed)
        for role in AgentRole.allCases {
            for i in 0...configuration.routedCounts[role.rawValue] {
                let name = i < configuration.routedCounts[role.rawValue] ? "\(role)\(i)" : "\(role)_shared"
                try loras.add(LoRAExpert(name: name, configuration: lora, model: model, seed: g.next()))
            }
            var r: [LoRAModuleKey: LinearLayer] = [:], s: [LoRAModuleKey: LinearLayer] = [:]
            for layer in 0..<model.layerCount {
                for kind in ProjectionKind.allCases where configuration.targetModules.contains(kind) {
                    let key = LoRAModuleKey(layer: layer, kind: kind)
                    let inF = model.projectionShape(kind).in
                    if configuration.routedCounts[role.rawValue] > 0 {
                        r[key] = LinearLayer(inFeatures: inF, outFeatures: configuration.routedCounts[role.rawValue], bias: false, generator: &g)
                    }
                    if configuration.sharedGate { s[key] = LinearLayer(inFeatures: inF, outFeatures: 1, bias: false, generator: &g) }
                }
            }
            routers.append(r)
            gates.append(s)
        }
        self.routers = routers
        sharedGates = gates
    }

    /// Index in `loras` of role `role`'s routed LoRA `i` (or its shared LoRA for `i = E_role`).
    public func loraIndex(role: AgentRole, _ i: Int) -> Int {
        (0..<role.rawValue).reduce(0) { $0 + configuration.routedCounts[$1] + 1 } + i
    }

    /// Generates with the role gate following the text: every prompt and generated token goes
    /// through the role active after the text before it (`RoleGate.roles(of:tokenizer:)`).
    public func generate(engine: Engine, prompts: [[Int32]], parameters: SamplingParameters,
                         gate: RoleGate = RoleGate()) throws -> [GenerationResult] {
        let tokenizer = try engine.requireTokenizer()
        return try TextGenerator(engine: engine).generate(prompts: prompts, parameters: parameters) { active, counts, generated in
            var roles: [AgentRole] = []
            for (i, s) in active.enumerated() {
                let all = gate.roles(of: prompts[s] + generated[i], tokenizer: tokenizer)
                roles += all.suffix(counts[i])
            }
            return self.adapter(rowRoles: roles)
        }
    }

    /// An adapter for one forward whose packed rows have the given roles.
    public func adapter(rowRoles: [AgentRole]) -> MixtureOfRolesAdapter { MixtureOfRolesAdapter(mor: self, rowRoles: rowRoles) }
}

/// The per-forward side of `MixtureOfRoles`. It records, per module, each row's routed weights
/// after top-k and renormalisation (the quantities the load-balancing loss needs).
public final class MixtureOfRolesAdapter: DecoderAdapter {
    let mor: MixtureOfRoles
    /// The role of every packed row.
    public let rowRoles: [AgentRole]
    /// `routing[module][row]`: the routed LoRAs (ids within the role) and weights used.
    public private(set) var routing: [LoRAModuleKey: [[(lora: Int, weight: Float)]]] = [:]

    init(mor: MixtureOfRoles, rowRoles: [AgentRole]) {
        self.mor = mor
        self.rowRoles = rowRoles
    }

    public func begin(rowCount: Int) throws {
        guard rowCount == rowRoles.count else {
            throw MoRAgentError.invalidArgument("a role mask of \(rowRoles.count) tokens for a forward of \(rowCount)")
        }
    }

    public func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        guard mor.configuration.targetModules.contains(kind) else { return }
        let c = mor.configuration
        var weights = Array(repeating: [(expert: Int, weight: Float)](), count: rows)
        var recorded = Array(repeating: [(lora: Int, weight: Float)](), count: rows)
        for role in AgentRole.allCases {
            let members = (0..<rows).filter { rowRoles[$0] == role }
            guard !members.isEmpty else { continue }
            let routed = c.routedCounts[role.rawValue]
            var logits: Tensor?
            if let router = mor.routers[role.rawValue][key] {
                let l = Tensor(uninitialized: [rows, routed])
                BLAS.linear(input, rows: rows, inFeatures: router.inFeatures, xStride: inputStride, weight: router.weight.pointer,
                            outFeatures: routed, into: l.pointer, yStride: routed)
                logits = l
            }
            var gateValues: Tensor?
            if let gate = mor.sharedGates[role.rawValue][key] {
                let gv = Tensor(uninitialized: [rows, 1])
                BLAS.linear(input, rows: rows, inFeatures: gate.inFeatures, xStride: inputStride, weight: gate.weight.pointer,
                            outFeatures: 1, into: gv.pointer, yStride: 1)
                gateValues = gv
            }
            for r in members {
                let shared = gateValues.map { sigmoid($0.pointer[r]) } ?? 1
                weights[r].append((mor.loraIndex(role: role, routed), shared))
                if let logits {
                    let chosen = TokenTopKRouter.topK(Array(UnsafeBufferPointer(start: logits.pointer + r * routed, count: routed)),
                                                      k: c.topK[role.rawValue])
                    for (i, w) in chosen { weights[r].append((mor.loraIndex(role: role, i), w)) }
                    recorded[r] = chosen.map { ($0.expert, $0.weight) }
                }
            }
        }
        routing[key] = recorded
        ExpertMixtureAdapter(experts: mor.loras, checkedRowWeights: weights)
            .addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
    }
}
