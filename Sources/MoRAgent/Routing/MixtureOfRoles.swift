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
    /// `seeds` (one per prompt) replaces the samplers' default seeds (`parameters.seed + i·φ`).
    public func generate(engine: Engine, prompts: [[Int32]], parameters: SamplingParameters,
                         gate: RoleGate = RoleGate(), seeds: [UInt64]? = nil) throws -> [GenerationResult] {
        let tokenizer = try engine.requireTokenizer()
        return try TextGenerator(engine: engine).generate(prompts: prompts, parameters: parameters, seeds: seeds) { active, counts, generated in
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

/// Gradient buffers of a Mixture-of-Roles adapter: every LoRA (`loras`), every router and
/// shared gate (same keys and shapes as the adapter's).
public final class MixtureOfRolesGradients: @unchecked Sendable {
    /// LoRA A/B gradients.
    public let loras: ExpertGradients
    /// `[role][module]` router weight gradients.
    public let routers: [[LoRAModuleKey: Tensor]]
    /// `[role][module]` shared-gate weight gradients.
    public let sharedGates: [[LoRAModuleKey: Tensor]]

    /// Zero gradients for `mor`.
    public init(mor: MixtureOfRoles) {
        loras = ExpertGradients(experts: mor.loras)
        routers = mor.routers.map { $0.mapValues { Tensor(zeros: $0.weight.shape) } }
        sharedGates = mor.sharedGates.map { $0.mapValues { Tensor(zeros: $0.weight.shape) } }
    }

    /// `(parameter, gradient)` pairs: LoRAs, then routers and gates in a fixed order.
    public func parameterPairs(_ mor: MixtureOfRoles) -> [(value: Tensor, gradient: Tensor)] {
        var pairs = loras.parameterPairs(mor.loras)
        for r in 0..<3 {
            for key in mor.routers[r].keys.sorted() { pairs.append((mor.routers[r][key]!.weight, routers[r][key]!)) }
            for key in mor.sharedGates[r].keys.sorted() { pairs.append((mor.sharedGates[r][key]!.weight, sharedGates[r][key]!)) }
        }
        return pairs
    }

    /// Sets every gradient to zero.
    public func zero() {
        loras.zero()
        for t in (routers + sharedGates).flatMap({ $0.values }) { t.pointer.update(repeating: 0, count: t.count) }
    }
}

/// The per-forward side of `MixtureOfRoles`. It records, per module, each row's routed weights
/// after top-k and renormalisation, and the router probabilities the load-balancing loss needs.
public final class MixtureOfRolesAdapter: TrainableAdapter {
    let mor: MixtureOfRoles
    /// The role of every packed row.
    public let rowRoles: [AgentRole]
    /// `routing[module][row]`: the routed LoRAs (ids within the role) and weights used.
    public private(set) var routing: [LoRAModuleKey: [[(lora: Int, weight: Float)]]] = [:]
    /// Where `backward` accumulates gradients (nil: inference only).
    public var gradients: MixtureOfRolesGradients?
    /// The load-balancing term whose weighted gradient `backward` adds; its coefficient is 0
    /// (none) unless set, as the SFT trainer does from its objective.
    public var loadBalancing = RoleLoadBalancingLoss(coefficient: 0)
    /// The unweighted load-balancing loss of this forward (`RoleLoadBalancingLoss`): per module
    /// and role, Switch's `E·Σ_i f_i·P_i`, averaged over modules and summed over roles (in the
    /// order the forward met the modules). After `combineLoadBalancing`, the whole batch's.
    public var loadBalancingLoss: Double {
        var total = 0.0
        for key in moduleOrder {
            for counts in balanceCounts[key]! {
                guard let counts else { continue }
                total += loadBalancing.value(fractions: counts.fractions, meanProbabilities: counts.meanProbabilities, modules: moduleCount)
            }
        }
        return total
    }
    private var probabilities: [LoRAModuleKey: [[Float]]] = [:]     // full softmax per row (routed)
    private var gates: [LoRAModuleKey: [Float]] = [:]              // shared weight per row
    private var balanceCounts: [LoRAModuleKey: [RoutingCounts?]] = [:]  // [role], nil: no routed LoRA or no token
    private var moduleOrder: [LoRAModuleKey] = []
    private var moduleCount = 0

    /// What the load-balancing term reads of one role at one module: how many of the role's
    /// top-k slots each routed LoRA took, the LoRAs' summed router probabilities, the role's token
    /// count and its k. Counts (not the fractions themselves) so that the halves of a batch can be
    /// added up into the batch's.
    struct RoutingCounts {
        var chosen: [Double]
        var probabilitySums: [Double]
        var tokens: Int
        var slots: Int

        /// `f_i`: the share of the role's top-k slots given to LoRA i.
        var fractions: [Double] { chosen.map { $0 / Double(tokens * slots) } }
        /// `P_i`: LoRA i's mean router probability over the role's tokens.
        var meanProbabilities: [Double] { probabilitySums.map { $0 / Double(tokens) } }

        static func + (a: RoutingCounts, b: RoutingCounts) -> RoutingCounts {
            RoutingCounts(chosen: zip(a.chosen, b.chosen).map(+), probabilitySums: zip(a.probabilitySums, b.probabilitySums).map(+),
                          tokens: a.tokens + b.tokens, slots: a.slots)
        }
    }

    /// Makes the load-balancing term of `adapters` (one per part of a batch, each after its
    /// forward) that of the whole batch: every adapter's `loadBalancingLoss` and the gradient its
    /// backward adds then use the batch's `f_i`, `P_i` and token counts, as one forward over the
    /// whole batch would (MoRAgent's `L_aux` is defined per batch). The parts' sums are added in
    /// index order.
    public static func combineLoadBalancing(_ adapters: [MixtureOfRolesAdapter]) {
        guard let first = adapters.first, adapters.count > 1 else { return }
        var combined = first.balanceCounts
        for other in adapters.dropFirst() {
            for (key, roles) in other.balanceCounts {
                let mine = combined[key] ?? Array(repeating: nil, count: roles.count)
                combined[key] = zip(mine, roles).map { a, b in
                    switch (a, b) {
                    case let (a?, b?): return a + b
                    default: return a ?? b
                    }
                }
            }
        }
        let order = adapters.flatMap(\.moduleOrder).reduce(into: [LoRAModuleKey]()) { if !$0.contains($1) { $0.append($1) } }
        for adapter in adapters {
            adapter.balanceCounts = combined
            adapter.moduleOrder = order
        }
    }

    init(mor: MixtureOfRoles, rowRoles: [AgentRole]) {
        self.mor = mor
        self.rowRoles = rowRoles
        moduleCount = mor.loras.model.layerCount * mor.configuration.targetModules.count
    }

    public func begin(rowCount: Int) throws {
        guard rowCount == rowRoles.count else {
            throw MoRAgentError.invalidArgument("a role mask of \(rowRoles.count) tokens for a forward of \(rowCount)")
        }
    }

    /// Per row, the LoRAs (global ids) and weights of module `key`.
    private func rowWeights(_ key: LoRAModuleKey) -> [[(expert: Int, weight: Float)]] {
        let c = mor.configuration
        return (0..<rowRoles.count).map { r in
            let role = rowRoles[r]
            var w: [(expert: Int, weight: Float)] = [(mor.loraIndex(role: role, c.routedCounts[role.rawValue]), gates[key]![r])]
            for (i, weight) in routing[key]![r] { w.append((mor.loraIndex(role: role, i), weight)) }
            return w
        }
    }

    public func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        guard mor.configuration.targetModules.contains(kind) else { return }
        let c = mor.configuration
        var recorded = Array(repeating: [(lora: Int, weight: Float)](), count: rows)
        var probs = Array(repeating: [Float](), count: rows)
        var shared = [Float](repeating: 1, count: rows)
        var counts = [RoutingCounts?](repeating: nil, count: AgentRole.allCases.count)
        for role in AgentRole.allCases {
            let members = (0..<rows).filter { rowRoles[$0] == role }
            guard !members.isEmpty else { continue }
            let routed = c.routedCounts[role.rawValue]
            if let router = mor.routers[role.rawValue][key] {
                let l = Tensor(uninitialized: [rows, routed])
                BLAS.linear(input, rows: rows, inFeatures: router.inFeatures, xStride: inputStride, weight: router.weight.pointer,
                            outFeatures: routed, into: l.pointer, yStride: routed)
                var tally = RoutingCounts(chosen: Array(repeating: 0, count: routed), probabilitySums: Array(repeating: 0, count: routed),
                                          tokens: members.count, slots: c.topK[role.rawValue])
                for r in members {
                    var p = Array(UnsafeBufferPointer(start: l.pointer + r * routed, count: routed))
                    p.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: routed) }
                    probs[r] = p
                    let chosen = TokenTopKRouter.topK(Array(UnsafeBufferPointer(start: l.pointer + r * routed, count: routed)), k: tally.slots)
                    recorded[r] = chosen.map { ($0.expert, $0.weight) }
                    for (i, _) in chosen { tally.chosen[i] += 1 }
                    for i in 0..<routed { tally.probabilitySums[i] += Double(p[i]) }
                }
                counts[role.rawValue] = tally
            }
            if let gate = mor.sharedGates[role.rawValue][key] {
                for r in members {
                    shared[r] = sigmoid(Kernels.dot(gate.weight.pointer, input + r * inputStride, count: gate.inFeatures))
                }
            }
        }
        routing[key] = recorded
        probabilities[key] = probs
        gates[key] = shared
        if balanceCounts[key] == nil { moduleOrder.append(key) }
        balanceCounts[key] = counts
        replayDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
    }

    /// Applies the LoRAs of projection `kind` of `layer` with the routed weights and shared-gate
    /// values `addDelta` recorded there, without routing anew: `routing`, `loadBalancingLoss` and
    /// what the backward reads stay as the forward left them.
    public func replayDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                            output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        guard routing[key] != nil else { return }
        ExpertMixtureAdapter(experts: mor.loras, checkedRowWeights: rowWeights(key))
            .addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
    }

    /// LoRA gradients as for any expert mixture; then, through the routing weights: with
    /// `g_l = dL/dw_l = s·(dY B_l)·(X A_lᵀ)` per row, the renormalised top-k gives
    /// `dL/dp_i = (g_i − Σ_j w_j g_j)/S` for kept `i` (`S` the kept mass), the load-balancing
    /// term adds `coef·E·f_i/N_role`, softmax turns `dp` into router logits' gradient, and the
    /// shared gate gets `g_shared·σ(1−σ)`; router and gate weights get `dz ⊗ x`, the input `Wᵀ dz`.
    public func backward(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         outputGradient: UnsafePointer<Float>, outputGradientStride: Int,
                         inputGradient: UnsafeMutablePointer<Float>, inputGradientStride: Int, rows: Int) {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        guard mor.configuration.targetModules.contains(kind), let recorded = routing[key] else { return }
        let c = mor.configuration
        let weights = rowWeights(key)
        let lora = ExpertMixtureAdapter(experts: mor.loras, checkedRowWeights: weights)
        lora.gradients = gradients?.loras
        lora.backward(layer: layer, kind: kind, input: input, inputStride: inputStride, outputGradient: outputGradient,
                      outputGradientStride: outputGradientStride, inputGradient: inputGradient, inputGradientStride: inputGradientStride, rows: rows)
        // g[row][global lora] for the LoRAs each row used.
        var g = Array(repeating: [Int: Float](), count: rows)
        for l in Set(weights.flatMap { $0.map(\.expert) }).sorted() {
            let users = (0..<rows).filter { row in weights[row].contains { $0.expert == l } }
            let values = mor.loras.experts[l].modules[key]!.weightGradients(
                rows: users, input: input, inputStride: inputStride, outputGradient: outputGradient, outputGradientStride: outputGradientStride)
            for (row, value) in zip(users, values) { g[row][l] = value }
        }
        for role in AgentRole.allCases {
            let members = (0..<rows).filter { rowRoles[$0] == role }
            guard !members.isEmpty else { continue }
            let routed = c.routedCounts[role.rawValue]
            if let router = mor.routers[role.rawValue][key] {
                let dW = gradients?.routers[role.rawValue][key]
                let balance = balanceCounts[key]?[role.rawValue].flatMap {
                    loadBalancing.probabilityGradient(fractions: $0.fractions, tokens: $0.tokens, modules: moduleCount)
                }
                for r in members {
                    let dz = TokenTopKRouter.logitGradient(probabilities: probabilities[key]![r], kept: recorded[r].map { ($0.lora, $0.weight) },
                                                           weightGradient: { g[r][self.mor.loraIndex(role: role, $0)] ?? 0 }, extra: balance)
                    for i in 0..<routed where dz[i] != 0 {
                        Kernels.addScaled(router.weight.pointer + i * router.inFeatures, scale: dz[i], into: inputGradient + r * inputGradientStride, count: router.inFeatures)
                        if let dW { Kernels.addScaled(input + r * inputStride, scale: dz[i], into: dW.pointer + i * router.inFeatures, count: router.inFeatures) }
                    }
                }
            }
            if let gate = mor.sharedGates[role.rawValue][key] {
                let dW = gradients?.sharedGates[role.rawValue][key]
                for r in members {
                    let s = gates[key]![r]
                    let du = (g[r][mor.loraIndex(role: role, routed)] ?? 0) * s * (1 - s)
                    Kernels.addScaled(gate.weight.pointer, scale: du, into: inputGradient + r * inputGradientStride, count: gate.inFeatures)
                    if let dW { Kernels.addScaled(input + r * inputStride, scale: du, into: dW.pointer, count: gate.inFeatures) }
                }
            }
        }
    }
}
