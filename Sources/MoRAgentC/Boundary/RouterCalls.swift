import CMoRAgent
import MoRAgent

/// A router that several policies and trajectory routers may share across threads: its
/// decisions and end-of-episode notices run one at a time. Why: the core routers are not
/// thread-safe (a trajectory router's per-episode dictionary, a plugin's state), and the header
/// promises routers may be shared. The lock is recursive so that a callback may step another
/// policy that shares this router.
final class SerializedRouter: StepRouter {
    let base: StepRouter
    private let lock = PThreadLock(recursive: true)

    init(_ base: StepRouter) { self.base = base }

    var expertCount: Int { base.expertCount }

    var wrappedRouter: StepRouter? { base }

    func decide(_ context: StepContext) throws -> StepDecision {
        try lock.withLock { try base.decide(context) }
    }

    func endEpisode(_ episode: Int) {
        lock.withLock { base.endEpisode(episode) }
    }

    /// Runs `body` holding the router's lock (a phase router saved while a policy steps).
    func withLock<T>(_ body: () throws -> T) rethrows -> T { try lock.withLock(body) }
}

/// What a `moragent_router *` points to: the shared router, and what policy creation must
/// check about it.
final class RouterHandle: CHandle {
    static let cName = "moragent_router"

    /// What routes: a step router (serialised), or a router that routes inside the forward
    /// (read-only once made, so shared without a lock).
    enum Body {
        case step(SerializedRouter)
        case tokens(TokenTopKRouter)
        case roles(MixtureOfRoles)
    }

    let body: Body
    /// The kind, for messages ("phase", "trajectory", "token", "roles", a plugin's kind name).
    let kind: String
    /// The base-model width the router reads encodings of (a phase router, or a trajectory
    /// router over one): a policy over an engine of another width would feed its linear layers
    /// vectors of the wrong length.
    let modelHiddenSize: Int?

    init(_ router: StepRouter, kind: String, modelHiddenSize: Int? = nil) {
        body = .step(SerializedRouter(router))
        self.kind = kind
        self.modelHiddenSize = modelHiddenSize
    }

    init(tokens router: TokenTopKRouter) {
        body = .tokens(router)
        kind = "token"
        modelHiddenSize = nil
    }

    init(roles mor: MixtureOfRoles) {
        body = .roles(mor)
        kind = "roles"
        modelHiddenSize = nil
    }

    /// The step router, nil for token and Mixture-of-Roles routers.
    var router: SerializedRouter? { if case .step(let r) = body { return r }; return nil }

    /// The step router, or an error naming what this router is instead.
    func stepRouter(_ name: String) throws -> SerializedRouter {
        guard let router else { throw CallError.invalidArgument("\(name) is a \(kind) router, not a step router") }
        return router
    }

    /// K (3 for a Mixture-of-Roles router: its decisions are over the roles).
    var expertCount: Int {
        switch body {
        case .step(let r): return r.expertCount
        case .tokens(let t): return t.experts.count
        case .roles: return AgentRole.allCases.count
        }
    }

    /// The phase router, or an error naming what this router is instead.
    func phaseRouter() throws -> PhaseRouter {
        guard let phase = router?.base as? PhaseRouter else {
            throw CallError.invalidArgument("the router is a \(kind) router, not a phase router")
        }
        return phase
    }

    /// The Mixture-of-Roles router, or an error naming what this router is instead.
    func mixtureOfRoles() throws -> MixtureOfRoles {
        guard case .roles(let mor) = body else {
            throw CallError.invalidArgument("the router is a \(kind) router, not a Mixture-of-Roles router")
        }
        return mor
    }
}

/// The work behind the router entry points.
enum RouterCalls {
    /// Size of `moragent_phase_router_params` in version 0.2, the smallest `struct_size` accepted.
    static let phaseParamsFirstSize = MemoryLayout<moragent_phase_router_params>.stride
    /// Limits beyond the parameter budget: the LSTM runs `layers × history` steps per decision.
    static let maxLSTMLayers = 64, maxHistoryLength = 4096, maxHiddenSize = 65536

    static func createFixed(_ expertCount: Int, _ expert: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let count = try CInput.expertCount(expertCount, "expert_count")
        guard expert == -1 || (expert >= 0 && Int(expert) < count) else {
            throw CallError.invalidArgument("expert is \(expert); it must be -1 (the base model) or in [0, \(count))")
        }
        let router = try FixedRouter(expert: expert == -1 ? nil : Int(expert), expertCount: count)
        out.pointee = HandleRegistry.shared.register(RouterHandle(router, kind: "fixed"))
    }

    static func defaultPhaseParams(_ params: UnsafeMutablePointer<moragent_phase_router_params>?) throws {
        let params = try CInput.required(params, "params")
        let size = try CInput.structSize(params, firstSize: phaseParamsFirstSize, "params", "moragent_phase_router_params")
        // The core's defaults are the single source of the documented ones.
        let d = PhaseRouterConfiguration()
        params.pointee = moragent_phase_router_params(
            struct_size: size, expert_count: d.expertCount, attention_dim: d.attentionDimension, attention_heads: d.attentionHeads,
            lstm_hidden: d.lstmHiddenSize, lstm_layers: d.lstmLayers, history_length: d.historyLength, mlp_hidden: d.mlpHiddenSize,
            pooled_goal: d.pooledGoal ? 1 : 0, initial_temperature: d.initialTemperature, final_temperature: d.finalTemperature,
            anneal_updates: d.annealUpdates)
    }

    /// The core configuration for a C parameter struct (NULL: the defaults), with every size
    /// checked before the router allocates anything.
    static func phaseConfiguration(_ params: UnsafePointer<moragent_phase_router_params>?, hiddenSize c: Int) throws -> PhaseRouterConfiguration {
        var configuration = PhaseRouterConfiguration()
        if let params {
            _ = try CInput.structSize(params, firstSize: phaseParamsFirstSize, "params", "moragent_phase_router_params")
            let p = params.pointee
            configuration.expertCount = try CInput.expertCount(p.expert_count, "params->expert_count")
            configuration.attentionDimension = try CInput.size(p.attention_dim, "params->attention_dim")
            configuration.attentionHeads = try CInput.size(p.attention_heads, "params->attention_heads")
            configuration.lstmHiddenSize = try CInput.size(p.lstm_hidden, "params->lstm_hidden")
            configuration.lstmLayers = try CInput.size(p.lstm_layers, "params->lstm_layers")
            configuration.historyLength = try CInput.size(p.history_length, "params->history_length")
            configuration.mlpHiddenSize = try CInput.size(p.mlp_hidden, "params->mlp_hidden")
            configuration.pooledGoal = p.pooled_goal != 0
            configuration.initialTemperature = p.initial_temperature
            configuration.finalTemperature = p.final_temperature
            configuration.annealUpdates = try CInput.size(p.anneal_updates, "params->anneal_updates")
        }
        try configuration.validate()
        guard configuration.lstmLayers <= maxLSTMLayers else {
            throw CallError.invalidArgument("params->lstm_layers is \(configuration.lstmLayers); at most \(maxLSTMLayers)")
        }
        guard configuration.historyLength <= maxHistoryLength else {
            throw CallError.invalidArgument("params->history_length is \(configuration.historyLength); at most \(maxHistoryLength)")
        }
        _ = try parameterCount(configuration, hiddenSize: c)
        return configuration
    }

    /// The exact number of parameters `PhaseRouter` allocates for `configuration` (sizes already
    /// known to be non-negative and at most `maxHiddenSize` or the LSTM and history limits):
    /// attention q/k/v `[a, C] + [a]` and output `[a, a] + [a]`; LSTM layer 0 `[4h, 2C] + [4h, h]`,
    /// the others `[4h, h] + [4h, h]`, each with two `[4h]` biases; MLP `[m, a + h] + [m]` and
    /// `[K, m] + [K]`. Throws above `CInput.maxParameters`.
    static func parameterCount(_ configuration: PhaseRouterConfiguration, hiddenSize c: Int) throws -> Int {
        let a = configuration.attentionDimension, h = configuration.lstmHiddenSize, m = configuration.mlpHiddenSize
        return try CInput.parameterCount([
            [3, a, c + 1], [a, a + 1], [4, h, 2 * c + h + 2], [max(configuration.lstmLayers - 1, 0), 4, h, 2 * h + 2],
            [m, a + h + 1], [configuration.expertCount, m + 1],
        ], "this phase router")
    }

    /// Checks, before `PhaseRouter.load` allocates from a file's metadata, that the sizes it
    /// declares are ones the file can back: a damaged or hostile file claiming a width of 2^40
    /// must be a malformed-file error, not a failed allocation (which traps). Metadata the core
    /// would refuse anyway (missing, negative) is left to its own, more specific message.
    static func preflightPhaseFile(_ path: String) throws {
        let file = try SafeTensorsFile(path: path)
        guard let text = file.metadata["moragent"], let meta = try? JSONValue.parse(text) else { return }
        let keys = ["model_hidden_size", "expert_count", "attention_dimension", "lstm_hidden_size", "lstm_layers",
                    "history_length", "mlp_hidden_size"]
        let values = keys.map { meta[$0]?.intValue }
        guard values.allSatisfy({ ($0 ?? -1) >= 0 }) else { return }
        let v = values.map { $0! }
        func bad(_ reason: String) -> CallError { CallError.malformedFile("\(path): \(reason)") }
        guard v[0] <= maxHiddenSize, v[4] <= maxLSTMLayers, v[5] <= maxHistoryLength else {
            throw bad("metadata declares sizes beyond this library's limits (model_hidden_size \(v[0]), lstm_layers \(v[4]), history_length \(v[5]))")
        }
        var configuration = PhaseRouterConfiguration()
        configuration.expertCount = v[1]; configuration.attentionDimension = v[2]; configuration.lstmHiddenSize = v[3]
        configuration.lstmLayers = v[4]; configuration.historyLength = v[5]; configuration.mlpHiddenSize = v[6]
        let stored = file.entries.values.reduce(0) { $0 + ($1.dtype.isConvertibleToFloat32 ? $1.count : 0) }
        let declared: Int
        do { declared = try parameterCount(configuration, hiddenSize: v[0]) } catch { throw bad("metadata declares a router of more than \(CInput.maxParameters) parameters") }
        guard declared <= stored else {
            throw bad("metadata declares a router of \(declared) parameters but the file stores \(stored) values")
        }
    }

    static func createPhase(_ modelHiddenSize: Int, _ params: UnsafePointer<moragent_phase_router_params>?, _ seed: UInt64,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        guard modelHiddenSize >= 1, modelHiddenSize <= maxHiddenSize else {
            throw CallError.invalidArgument("model_hidden_size is \(UInt(bitPattern: modelHiddenSize)); it must be from 1 to \(maxHiddenSize)")
        }
        let configuration = try phaseConfiguration(params, hiddenSize: modelHiddenSize)
        let router = try PhaseRouter(configuration: configuration, modelHiddenSize: modelHiddenSize, seed: seed)
        out.pointee = HandleRegistry.shared.register(RouterHandle(router, kind: "phase", modelHiddenSize: modelHiddenSize))
    }

    static func savePhase(_ router: OpaquePointer?, _ path: UnsafePointer<CChar>?) throws {
        let handle = try resolve(router)
        let path = try CInput.cString(path, "path")
        let phase = try handle.phaseRouter()
        try handle.stepRouter("router").withLock { try phase.save(to: path) }
    }

    static func loadPhase(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let path = try CInput.cString(path, "path")
        try preflightPhaseFile(path)
        let router = try PhaseRouter.load(from: path)
        out.pointee = HandleRegistry.shared.register(RouterHandle(router, kind: "phase", modelHiddenSize: router.modelHiddenSize))
    }

    static func createTrajectory(_ inner: OpaquePointer?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let inner = try HandleRegistry.shared.resolve(inner, as: RouterHandle.self, "inner")
        let router = TrajectoryRouter(inner: try inner.stepRouter("inner"))
        out.pointee = HandleRegistry.shared.register(RouterHandle(router, kind: "trajectory", modelHiddenSize: inner.modelHiddenSize))
    }

    static func createCallback(_ expertCount: Int, _ fn: moragent_router_fn?, _ user: UnsafeMutableRawPointer?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let count = try CInput.expertCount(expertCount, "expert_count")
        guard let fn else { throw CallError.invalidArgument("fn is NULL") }
        let router = CallbackRouter(expertCount: count) { context in
            try ExternalWeights.collect(context, expertCount: count, source: "the router callback") { features, weights in
                fn(features, weights, count, user)
            }
        }
        out.pointee = HandleRegistry.shared.register(RouterHandle(router, kind: "callback"))
    }

    static func free(_ router: OpaquePointer?) throws {
        try HandleRegistry.shared.free(router, as: RouterHandle.self, "router")
    }

    static func expertCount(_ router: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(router)
        try CInput.required(out, "out_count").pointee = handle.expertCount
    }

    // Token and Mixture-of-Roles routers (0.3).

    static func createToken(_ experts: OpaquePointer?, _ topK: Int, _ perLayer: Int32, _ seed: UInt64,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let handle = try ExpertsCalls.resolve(experts)
        // A snapshot: experts added to the caller's set later must not change K under the gates.
        let set = ExpertSet(model: handle.model)
        for expert in handle.experts { try set.add(expert) }
        guard set.count > 0 else { throw CallError.invalidArgument("the expert set is empty") }
        let k = try CInput.size(topK, "top_k")
        guard k >= 1, k <= set.count else {
            throw CallError.invalidArgument("top_k is \(k); it must be from 1 to the set's expert count \(set.count)")
        }
        _ = try CInput.parameterCount([[perLayer != 0 ? set.model.layerCount : 1, set.count, set.model.hiddenSize]], "this token router")
        let router = try TokenTopKRouter(experts: set, topK: k, perLayer: perLayer != 0, seed: seed)
        out.pointee = HandleRegistry.shared.register(RouterHandle(tokens: router))
    }

    /// Size of `moragent_mor_params` in version 0.3, the smallest `struct_size` accepted.
    static let morParamsFirstSize = MemoryLayout<moragent_mor_params>.stride
    static let maxRank = 65536

    static func defaultMoRParams(_ params: UnsafeMutablePointer<moragent_mor_params>?) throws {
        let params = try CInput.required(params, "params")
        let size = try CInput.structSize(params, firstSize: morParamsFirstSize, "params", "moragent_mor_params")
        // The core's defaults are the single source of the documented ones.
        let d = MixtureOfRolesConfiguration()
        params.pointee = moragent_mor_params(
            struct_size: size, routed_counts: (d.routedCounts[0], d.routedCounts[1], d.routedCounts[2]),
            top_k: (d.topK[0], d.topK[1], d.topK[2]), rank: d.rank, scale: d.scale, shared_gate: d.sharedGate ? 1 : 0,
            target_modules: ExpertsCalls.bits(of: d.targetModules))
    }

    /// The core configuration for a C parameter struct (NULL: the defaults).
    static func morConfiguration(_ params: UnsafePointer<moragent_mor_params>?) throws -> MixtureOfRolesConfiguration {
        var c = MixtureOfRolesConfiguration()
        if let params {
            _ = try CInput.structSize(params, firstSize: morParamsFirstSize, "params", "moragent_mor_params")
            let p = params.pointee
            let counts = [p.routed_counts.0, p.routed_counts.1, p.routed_counts.2]
            let topK = [p.top_k.0, p.top_k.1, p.top_k.2]
            for r in 0..<3 {
                c.routedCounts[r] = try CInput.expertCount(counts[r], "params->routed_counts[\(r)]")
                c.topK[r] = try CInput.size(topK[r], "params->top_k[\(r)]")
            }
            guard p.rank >= 1, p.rank <= maxRank else {
                throw CallError.invalidArgument("params->rank is \(UInt(bitPattern: p.rank)); it must be from 1 to \(maxRank)")
            }
            c.rank = p.rank
            guard p.scale.isFinite else { throw CallError.invalidArgument("params->scale is \(p.scale); it must be finite") }
            c.scale = p.scale
            c.sharedGate = p.shared_gate != 0
            let known = ExpertsCalls.moduleBits.reduce(UInt32(0)) { $0 | $1.bit }
            guard p.target_modules != 0, p.target_modules & ~known == 0 else {
                throw CallError.invalidArgument("params->target_modules is 0x\(String(p.target_modules, radix: 16)); it must be a non-zero OR of MORAGENT_MODULE_* values")
            }
            c.targetModules = Set(ExpertsCalls.moduleBits.filter { p.target_modules & $0.bit != 0 }.map(\.kind))
        }
        try c.validate()
        return c
    }

    /// The parameters a Mixture-of-Roles of `c` has for `model` (throws above the limit): per
    /// role and adapted module, (routed + 1) LoRAs of `r·(in + out)`, a router `[routed, in]`
    /// and a shared gate `[1, in]`.
    static func morParameterCount(_ c: MixtureOfRolesConfiguration, model: ModelConfig) throws -> Int {
        var terms: [[Int]] = []
        for kind in c.targetModules {
            let shape = model.projectionShape(kind)
            for r in 0..<3 {
                terms.append([model.layerCount, c.routedCounts[r] + 1, c.rank, shape.in + shape.out])
                terms.append([model.layerCount, c.routedCounts[r] + 1, shape.in])
            }
        }
        return try CInput.parameterCount(terms, "this Mixture-of-Roles router")
    }

    static func createRoles(_ engine: OpaquePointer?, _ params: UnsafePointer<moragent_mor_params>?, _ seed: UInt64,
                            _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let model = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine.decoder.config
        let c = try morConfiguration(params)
        _ = try morParameterCount(c, model: model)
        let mor = try MixtureOfRoles(configuration: c, model: model, seed: seed)
        out.pointee = HandleRegistry.shared.register(RouterHandle(roles: mor))
    }

    static func saveRoles(_ router: OpaquePointer?, _ path: UnsafePointer<CChar>?) throws {
        let handle = try resolve(router)
        let path = try CInput.cString(path, "path")
        try handle.mixtureOfRoles().save(to: path)
    }

    static func loadRoles(_ engine: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let model = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine.decoder.config
        let path = try CInput.cString(path, "path")
        try preflightRolesFile(path, model: model)
        let mor = try MixtureOfRoles.load(from: path, model: model)
        out.pointee = HandleRegistry.shared.register(RouterHandle(roles: mor))
    }

    /// Checks, before `MixtureOfRoles.load` allocates, that the sizes the file's metadata declares
    /// are within this library's limits (metadata the core refuses anyway is left to it).
    static func preflightRolesFile(_ path: String, model: ModelConfig) throws {
        let file = try SafeTensorsFile(path: path)
        guard let text = file.metadata["moragent"], let meta = try? JSONValue.parse(text),
              let counts = meta["routed_counts"]?.arrayValue?.compactMap(\.intValue), counts.count == 3,
              let topK = meta["top_k"]?.arrayValue?.compactMap(\.intValue), topK.count == 3,
              let rank = meta["rank"]?.intValue else { return }
        func bad(_ reason: String) -> CallError { CallError.malformedFile("\(path): \(reason)") }
        var c = MixtureOfRolesConfiguration()
        c.routedCounts = counts; c.topK = topK; c.rank = rank
        if let targets = meta["target_modules"]?.arrayValue?.compactMap({ $0.stringValue.flatMap(ProjectionKind.init(rawValue:)) }), !targets.isEmpty {
            c.targetModules = Set(targets)
        }
        guard (try? c.validate()) != nil else { throw bad("metadata declares an invalid shape (routed_counts \(counts), top_k \(topK), rank \(rank))") }
        guard counts.allSatisfy({ $0 <= CInput.maxExperts }), rank <= maxRank, (try? morParameterCount(c, model: model)) != nil else {
            throw bad("metadata declares sizes beyond this library's limits")
        }
    }

    static func resolve(_ router: OpaquePointer?) throws -> RouterHandle {
        try HandleRegistry.shared.resolve(router, as: RouterHandle.self, "router")
    }
}
