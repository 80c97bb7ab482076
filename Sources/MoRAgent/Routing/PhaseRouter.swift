/// The shape and schedule of a PA-MoE phase router (paper §Phase-Aware Router, Eq. 1-3).
public struct PhaseRouterConfiguration: Equatable, Sendable {
    /// Number of experts `K`.
    public var expertCount: Int = 4
    /// Width of the goal cross-attention (queries, keys, values, output).
    public var attentionDimension: Int = 256
    /// Heads of the goal cross-attention.
    public var attentionHeads: Int = 4
    /// LSTM hidden size `d` (256 in the paper).
    public var lstmHiddenSize: Int = 256
    /// LSTM layers (3 in the paper).
    public var lstmLayers: Int = 3
    /// History window `L` (5 in the paper).
    public var historyLength: Int = 5
    /// Hidden width of the MLP head.
    public var mlpHiddenSize: Int = 256
    /// Attend from `Enc(o_t)` to the single pooled `Enc(g)` (the paper's literal form, which is
    /// only a linear map of the goal) instead of to the goal's per-token hidden states.
    public var pooledGoal: Bool = false
    /// Temperature schedule: `τ(u) = max(τ_f, τ_0 − (τ_0 − τ_f)·u / T_anneal)` over updates `u` (Eq. 3).
    public var initialTemperature: Float = 2.0
    /// `τ_f`.
    public var finalTemperature: Float = 0.5
    /// `T_anneal`.
    public var annealUpdates: Int = 3000

    /// The paper's settings.
    public init() {}

    /// Throws when a field is out of range.
    public func validate() throws {
        guard expertCount >= 1 else { throw MoRAgentError.invalidArgument("a phase router needs at least one expert") }
        guard attentionDimension > 0, attentionHeads > 0, attentionDimension % attentionHeads == 0 else {
            throw MoRAgentError.invalidArgument("attention dimension \(attentionDimension) must be a positive multiple of the head count \(attentionHeads)")
        }
        guard lstmHiddenSize > 0, lstmLayers > 0, historyLength >= 0, mlpHiddenSize > 0 else {
            throw MoRAgentError.invalidArgument("phase router sizes must be positive")
        }
        // Bounds far above any useful router, so sizes from a file or a caller cannot exhaust
        // memory or overflow shape products.
        let limits: [(String, Int, Int)] = [("expert count", expertCount, 65536), ("attention dimension", attentionDimension, 65536),
                                            ("LSTM hidden size", lstmHiddenSize, 65536), ("MLP hidden size", mlpHiddenSize, 65536),
                                            ("LSTM layers", lstmLayers, 64), ("history length", historyLength, 4096)]
        for (name, value, limit) in limits where value > limit {
            throw MoRAgentError.invalidArgument("phase router \(name) \(value) exceeds \(limit)")
        }
        guard initialTemperature.isFinite, finalTemperature.isFinite, initialTemperature > 0, finalTemperature > 0, annealUpdates >= 0 else {
            throw MoRAgentError.invalidArgument("phase router temperatures must be positive and finite")
        }
    }

    /// `τ` after `update` updates (Eq. 3).
    public func temperature(afterUpdates update: Int) -> Float {
        guard annealUpdates > 0 else { return finalTemperature }
        let t = initialTemperature - (initialTemperature - finalTemperature) * Float(max(0, update)) / Float(annealUpdates)
        return max(min(finalTemperature, initialTemperature), t)
    }
}

/// PA-MoE's phase router: `p_t = softmax(MLP([CrossAttn(Enc(o_t), goal); LSTM(history)]) / τ)`,
/// `k* = argmax p_t`, one expert per environment step (paper Eq. 1-2, DESIGN.md §4).
///
/// Goal alignment attends from a projection of `Enc(o_t)` to projections of the goal's
/// per-token hidden states (the pooled variant attends to `Enc(g)` alone). The history is the
/// last `L` steps, each `[Embed(a); Embed(o)]`, zero-padded at the episode start, oldest first,
/// through a stacked LSTM. Parameters are seeded, saved and loaded as safetensors.
public final class PhaseRouter: StepRouter {
    /// Shapes and schedule.
    public let configuration: PhaseRouterConfiguration
    /// The base model's width `C`.
    public let modelHiddenSize: Int
    /// The softmax temperature in force.
    public var temperature: Float
    let query: LinearLayer, key: LinearLayer, value: LinearLayer, output: LinearLayer
    let lstm: LSTMNetwork
    let mlpHidden: LinearLayer, mlpOut: LinearLayer

    public var expertCount: Int { configuration.expertCount }

    /// A seeded router for a base model of width `modelHiddenSize`.
    public init(configuration: PhaseRouterConfiguration, modelHiddenSize: Int, seed: UInt64) throws {
        try configuration.validate()
        guard modelHiddenSize > 0 else { throw MoRAgentError.invalidArgument("model hidden size must be positive") }
        self.configuration = configuration
        self.modelHiddenSize = modelHiddenSize
        temperature = configuration.initialTemperature
        var g = SeededGenerator(seed: seed)
        let a = configuration.attentionDimension, c = modelHiddenSize
        query = LinearLayer(inFeatures: c, outFeatures: a, generator: &g)
        key = LinearLayer(inFeatures: c, outFeatures: a, generator: &g)
        value = LinearLayer(inFeatures: c, outFeatures: a, generator: &g)
        output = LinearLayer(inFeatures: a, outFeatures: a, generator: &g)
        lstm = LSTMNetwork(inputSize: 2 * c, hiddenSize: configuration.lstmHiddenSize, layerCount: configuration.lstmLayers, generator: &g)
        mlpHidden = LinearLayer(inFeatures: a + configuration.lstmHiddenSize, outFeatures: configuration.mlpHiddenSize, generator: &g)
        mlpOut = LinearLayer(inFeatures: configuration.mlpHiddenSize, outFeatures: configuration.expertCount, generator: &g)
    }

    /// The router's inputs for one step, as the forward uses them.
    public struct Inputs {
        /// `Enc(o_t)` `[C]`.
        public var observation: [Float]
        /// Goal keys/values source `[Tg, C]` (one row when pooled).
        public var goal: Tensor
        /// `L` history vectors `[2C]`, oldest first, zero-padded.
        public var history: [[Float]]
    }

    /// Gathers the inputs of `context` through its encoder.
    public func inputs(_ context: StepContext) throws -> Inputs {
        let e = context.encoder
        let goal: Tensor
        if configuration.pooledGoal {
            goal = Tensor(shape: [1, modelHiddenSize], values: try e.encode(context.goal))
        } else {
            goal = try e.tokenStates(context.goal)
        }
        let recent = context.history.suffix(configuration.historyLength)
        var history = Array(repeating: [Float](repeating: 0, count: 2 * modelHiddenSize), count: configuration.historyLength - recent.count)
        for (o, a) in recent { history.append(try e.embed(a) + e.embed(o)) }
        return Inputs(observation: try e.encode(context.observation), goal: goal, history: history)
    }

    /// The logits `[K]` (before temperature) for `inputs`.
    public func logits(_ inputs: Inputs) -> [Float] {
        let a = configuration.attentionDimension, heads = configuration.attentionHeads, dh = a / heads
        let q = query.apply(inputs.observation)
        let tg = inputs.goal.rows
        var attended = [Float](repeating: 0, count: a)
        if tg > 0 {
            let k = Tensor(uninitialized: [tg, a]), v = Tensor(uninitialized: [tg, a])
            key.apply(inputs.goal.pointer, rows: tg, into: k.pointer)
            value.apply(inputs.goal.pointer, rows: tg, into: v.pointer)
            var scores = [Float](repeating: 0, count: tg)
            let scale = 1 / Float(dh).squareRoot()
            q.withUnsafeBufferPointer { qp in
                for h in 0..<heads {
                    for j in 0..<tg { scores[j] = Kernels.dot(qp.baseAddress! + h * dh, k.pointer + j * a + h * dh, count: dh) * scale }
                    scores.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: tg) }
                    attended.withUnsafeMutableBufferPointer { o in
                        for j in 0..<tg { Kernels.addScaled(v.pointer + j * a + h * dh, scale: scores[j], into: o.baseAddress! + h * dh, count: dh) }
                    }
                }
            }
        }
        let aligned = output.apply(attended)
        let recurrent = lstm.lastHidden(inputs.history)
        let hidden = mlpHidden.apply(aligned + recurrent).map { max(0, $0) }
        return mlpOut.apply(hidden)
    }

    /// `softmax(logits / τ)`.
    public func probabilities(_ logits: [Float]) -> [Float] {
        var p = logits.map { $0 / temperature }
        p.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: $0.count) }
        return p
    }

    public func decide(_ context: StepContext) throws -> StepDecision { decide(try inputs(context)) }

    /// The decision for already gathered `inputs`: `k* = argmax p` (ties: the lower id).
    public func decide(_ inputs: Inputs) -> StepDecision {
        let p = probabilities(logits(inputs))
        return StepDecision(route: .expert(p.indices.max { p[$0] < p[$1] || (p[$0] == p[$1] && $0 > $1) }!), probabilities: p)
    }

    /// The name and shape of every parameter for a configuration, in `namedTensors` order,
    /// computed without allocating.
    static func parameterShapes(configuration c: PhaseRouterConfiguration, modelHiddenSize m: Int) -> [(String, [Int])] {
        let a = c.attentionDimension, h = c.lstmHiddenSize
        var out: [(String, [Int])] = []
        for (name, inF, outF) in [("attention.query", m, a), ("attention.key", m, a), ("attention.value", m, a), ("attention.output", a, a)] {
            out += [(name + ".weight", [outF, inF]), (name + ".bias", [outF])]
        }
        for l in 0..<c.lstmLayers {
            out += [("lstm.weight_ih_l\(l)", [4 * h, l == 0 ? 2 * m : h]), ("lstm.bias_ih_l\(l)", [4 * h]),
                    ("lstm.weight_hh_l\(l)", [4 * h, h]), ("lstm.bias_hh_l\(l)", [4 * h])]
        }
        out += [("mlp.0.weight", [c.mlpHiddenSize, a + h]), ("mlp.0.bias", [c.mlpHiddenSize]),
                ("mlp.2.weight", [c.expertCount, c.mlpHiddenSize]), ("mlp.2.bias", [c.expertCount])]
        return out
    }

    public func validate(for model: ModelConfig) throws {
        guard model.hiddenSize == modelHiddenSize else {
            throw MoRAgentError.invalidArgument("the phase router reads hidden states of width \(modelHiddenSize) but the model's are \(model.hiddenSize)")
        }
    }

    /// Every parameter by a PyTorch-style name.
    public var namedTensors: [(name: String, tensor: Tensor)] {
        query.namedTensors("attention.query") + key.namedTensors("attention.key") + value.namedTensors("attention.value")
            + output.namedTensors("attention.output") + lstm.namedTensors("lstm")
            + mlpHidden.namedTensors("mlp.0") + mlpOut.namedTensors("mlp.2")
    }

    /// Writes the parameters, configuration and temperature to one safetensors file (atomically).
    public func save(to path: String) throws {
        let c = configuration
        let meta: JSONValue = .object([
            ("format", .string("moragent.phase_router")), ("version", .number(1)),
            ("model_hidden_size", .number(Double(modelHiddenSize))), ("expert_count", .number(Double(c.expertCount))),
            ("attention_dimension", .number(Double(c.attentionDimension))), ("attention_heads", .number(Double(c.attentionHeads))),
            ("lstm_hidden_size", .number(Double(c.lstmHiddenSize))), ("lstm_layers", .number(Double(c.lstmLayers))),
            ("history_length", .number(Double(c.historyLength))), ("mlp_hidden_size", .number(Double(c.mlpHiddenSize))),
            ("pooled_goal", .bool(c.pooledGoal)), ("initial_temperature", .number(Double(c.initialTemperature))),
            ("final_temperature", .number(Double(c.finalTemperature))), ("anneal_updates", .number(Double(c.annealUpdates))),
            ("temperature", .number(Double(temperature))),
        ])
        try SafeTensorsWriter.write(namedTensors, metadata: ["moragent": meta.serialized], to: path)
    }

    /// Reads a router written by `save`.
    public static func load(from path: String) throws -> PhaseRouter {
        let file = try SafeTensorsFile(path: path)
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: path, reason: reason) }
        guard let text = file.metadata["moragent"], let meta = try? JSONValue.parse(text),
              meta["format"]?.stringValue == "moragent.phase_router" else { throw bad("not a MoRAgent phase router (no moragent metadata)") }
        func int(_ k: String) throws -> Int { guard let v = meta[k]?.intValue else { throw bad("metadata lacks \(k)") }; return v }
        func float(_ k: String) throws -> Float { guard let v = meta[k]?.doubleValue else { throw bad("metadata lacks \(k)") }; return Float(v) }
        var c = PhaseRouterConfiguration()
        c.expertCount = try int("expert_count"); c.attentionDimension = try int("attention_dimension")
        c.attentionHeads = try int("attention_heads"); c.lstmHiddenSize = try int("lstm_hidden_size")
        c.lstmLayers = try int("lstm_layers"); c.historyLength = try int("history_length"); c.mlpHiddenSize = try int("mlp_hidden_size")
        c.pooledGoal = meta["pooled_goal"]?.boolValue ?? false
        c.initialTemperature = try float("initial_temperature"); c.finalTemperature = try float("final_temperature")
        c.annealUpdates = try int("anneal_updates")
        do { try c.validate() } catch { throw bad("\(error)") }
        let width = try int("model_hidden_size")
        guard (1...(1 << 20)).contains(width) else { throw bad("model_hidden_size \(width) is implausible") }
        // Every tensor the metadata implies must be stored with that shape before anything is allocated.
        for (name, shape) in PhaseRouter.parameterShapes(configuration: c, modelHiddenSize: width) {
            guard let e = file.entries[name] else { throw bad("missing tensor \"\(name)\"") }
            guard e.shape == shape else { throw bad("tensor \"\(name)\" has shape \(e.shape) but the metadata implies \(shape)") }
        }
        let router = try PhaseRouter(configuration: c, modelHiddenSize: width, seed: 0)
        router.temperature = try float("temperature")
        for (name, t) in router.namedTensors { try file.readFloat32(name, expectedShape: t.shape, into: t.pointer) }
        return router
    }
}
