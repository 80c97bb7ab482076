import CMoRAgent
import MoRAgent

/// What a `moragent_policy *` points to: the core policy, and the flag that turns overlapping
/// calls into MORAGENT_ERROR_BUSY (the core policy is not thread-safe).
final class PolicyHandle: CHandle {
    static let cName = "moragent_policy"

    let policy: Policy
    let busy = BusyFlag()

    init(_ policy: Policy) { self.policy = policy }

    /// Runs `body` on the policy as the only call in progress.
    func exclusively<T>(_ body: (Policy) throws -> T) throws -> T {
        try busy.exclusively("policy") { try body(policy) }
    }
}

/// What a `moragent_step_result *` points to: one step's results copied into memory that does
/// not move, so the pointers the accessors return stay valid until the handle is freed.
final class StepResultHandle: CHandle {
    static let cName = "moragent_step_result"

    let action: StableArray<CChar>
    let response: StableArray<CChar>
    let actionValid: Bool
    let ids: StableArray<Int32>
    let logProbabilities: StableArray<Float>
    let promptIDs: StableArray<Int32>
    let expert: Int32
    let probabilities: StableArray<Float>
    let routingSeconds: Double
    let generationSeconds: Double
    /// Per generated token, a moragent_role (empty unless Mixture-of-Roles).
    let roles: StableArray<Int32>
    /// Tokens × per-token experts, row-major (empty unless token routing).
    let tokenExperts: StableArray<Int32>
    let tokenExpertsPerToken: Int

    init(_ result: StepResult) {
        roles = StableArray((result.roles ?? []).map { Int32($0.rawValue) })
        let chosen = result.tokenExperts ?? []
        tokenExperts = StableArray(chosen.flatMap { $0.map { Int32($0) } })
        tokenExpertsPerToken = chosen.first?.count ?? 0
        action = StableArray(cString: result.action)
        response = StableArray(cString: result.response)
        actionValid = result.actionValid
        ids = StableArray(result.ids)
        logProbabilities = StableArray(result.logProbabilities)
        promptIDs = StableArray(result.promptIDs)
        expert = result.decision.expert.map { Int32($0) } ?? -1
        probabilities = StableArray(result.decision.probabilities)
        routingSeconds = result.routingSeconds
        generationSeconds = result.generationSeconds
    }
}

/// Elements copied into an allocation of at least one element (so it is never NULL) that lives
/// as long as this object.
final class StableArray<T> {
    let pointer: UnsafeMutablePointer<T>
    /// Elements, not counting the NUL of a C string.
    let count: Int

    init(_ values: [T]) {
        pointer = .allocate(capacity: max(values.count, 1))
        _ = UnsafeMutableBufferPointer(start: pointer, count: values.count).initialize(from: values)
        count = values.count
    }

    deinit {
        pointer.deinitialize(count: count)
        pointer.deallocate()
    }
}

extension StableArray where T == CChar {
    /// The UTF-8 bytes of `text` and a terminating NUL.
    convenience init(cString text: String) {
        self.init(Array(text.utf8).map { CChar(bitPattern: $0) } + [0])
    }

    /// The text's length in bytes, without the NUL.
    var textLength: Int { count - 1 }
}

/// The work behind the policy and step result entry points.
enum PolicyCalls {
    /// Size of `moragent_policy_params` in version 0.2, the smallest `struct_size` accepted.
    static let paramsFirstSize = MemoryLayout<moragent_policy_params>.stride

    static func defaultParams(_ params: UnsafeMutablePointer<moragent_policy_params>?) throws {
        let params = try CInput.required(params, "params")
        let size = try CInput.structSize(params, firstSize: paramsFirstSize, "params", "moragent_policy_params")
        // The core's defaults are the single source of the documented ones.
        let d = PromptTemplate()
        params.pointee = moragent_policy_params(struct_size: size, sampling: nil, first_step_template: nil, later_step_template: nil,
                                                history_entry_template: nil, history_length: d.historyLength, chatml: d.chatML ? 1 : 0)
    }

    /// Sampling (nil: the policy's defaults) and template for a C parameter struct (NULL: the defaults).
    static func settings(_ params: UnsafePointer<moragent_policy_params>?) throws -> (SamplingParameters?, PromptTemplate) {
        var template = PromptTemplate()
        guard let params else { return (nil, template) }
        _ = try CInput.structSize(params, firstSize: paramsFirstSize, "params", "moragent_policy_params")
        let p = params.pointee
        let sampling = try p.sampling.map { try GenerateCalls.samplingParameters($0) }
        if let t = try CInput.optionalCString(p.first_step_template, "params->first_step_template") { template.firstStep = t }
        if let t = try CInput.optionalCString(p.later_step_template, "params->later_step_template") { template.laterStep = t }
        if let t = try CInput.optionalCString(p.history_entry_template, "params->history_entry_template") { template.historyEntry = t }
        template.historyLength = try CInput.size(p.history_length, "params->history_length")
        template.chatML = p.chatml != 0
        return (sampling, template)
    }

    static func create(_ engine: OpaquePointer?, _ experts: OpaquePointer?, _ router: OpaquePointer?,
                       _ params: UnsafePointer<moragent_policy_params>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_policy")
        out.pointee = nil
        let engine = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine
        let router = try RouterCalls.resolve(router)
        let routing: PolicyRouting
        switch router.body {
        case .step(let stepRouter):
            let experts = try ExpertsCalls.resolve(experts)
            // The policy's own set, re-checked against this engine's shapes: experts made for another
            // model would multiply vectors of the wrong length (the core does not compare the two).
            let set = ExpertSet(model: engine.decoder.config)
            for expert in experts.experts { try set.add(expert) }
            // Likewise a phase router's linear layers read encodings of the engine's width.
            if let width = router.modelHiddenSize, width != engine.decoder.config.hiddenSize {
                throw CallError.invalidArgument("the \(router.kind) router was made for models of hidden size \(width) but the engine's is \(engine.decoder.config.hiddenSize)")
            }
            routing = .step(stepRouter, experts: set)
        case .tokens(let tokenRouter):
            // `experts` is ignored: the router routes the set it was made with (the core checks its shapes).
            routing = .tokens(tokenRouter)
        case .roles(let mor):
            routing = .roles(mor, RoleGate())
        }
        let (sampling, template) = try settings(params)
        let policy = try Policy(engine: engine, routing: routing, sampling: sampling, template: template)
        out.pointee = HandleRegistry.shared.register(PolicyHandle(policy))
    }

    static func free(_ policy: OpaquePointer?) throws {
        try HandleRegistry.shared.free(policy, as: PolicyHandle.self, "policy")
    }

    static func step(_ policy: OpaquePointer?, _ episode: Int64, _ observation: UnsafePointer<CChar>?, _ goal: UnsafePointer<CChar>?,
                     _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_result")
        out.pointee = nil
        let handle = try resolve(policy)
        let observation = try CInput.cString(observation, "observation")
        let goal = try CInput.cString(goal, "goal")
        let result = try handle.exclusively { try $0.step(episode: Int(episode), observation: observation, goal: goal) }
        out.pointee = HandleRegistry.shared.register(StepResultHandle(result))
    }

    static func stepBatch(_ policy: OpaquePointer?, _ count: Int, _ episodes: UnsafePointer<Int64>?,
                          _ observations: UnsafePointer<UnsafePointer<CChar>?>?, _ goals: UnsafePointer<UnsafePointer<CChar>?>?,
                          _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let results = try CInput.room(out, count, "out_results", "count")
        for i in results.indices { results[i] = nil }
        let handle = try resolve(policy)
        let ids = try CInput.elements(episodes, count, "episodes", "count")
        let observations = try CInput.elements(observations, count, "observations", "count")
        let goals = try CInput.elements(goals, count, "goals", "count")
        let requests = try (0..<count).map { i in
            StepRequest(episode: Int(ids[i]), observation: try CInput.cString(observations[i], "observations[\(i)]"),
                        goal: try CInput.cString(goals[i], "goals[\(i)]"))
        }
        let steps = try handle.exclusively { try $0.step(requests) }
        for (i, step) in steps.enumerated() { results[i] = HandleRegistry.shared.register(StepResultHandle(step)) }
    }

    static func endEpisode(_ policy: OpaquePointer?, _ episode: Int64, _ reward: Double, _ success: Int32) throws {
        let handle = try resolve(policy)
        try handle.exclusively { try $0.endEpisode(Int(episode), reward: reward, success: success != 0) }
    }

    static func trace(_ policy: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                      _ outLength: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(policy)
        let text = try handle.exclusively { $0.routingTraceJSONLines() }
        try CInput.writeText(Array(text.utf8), buffer, capacity, outLength, "the trace")
    }

    static func clearEnded(_ policy: OpaquePointer?) throws {
        try resolve(policy).exclusively { $0.clearEndedEpisodes() }
    }

    private static func resolve(_ policy: OpaquePointer?) throws -> PolicyHandle {
        try HandleRegistry.shared.resolve(policy, as: PolicyHandle.self, "policy")
    }

    // Step results: resolve the handle, then hand out one field (owned by the handle).

    static func freeResult(_ result: OpaquePointer?) throws {
        try HandleRegistry.shared.free(result, as: StepResultHandle.self, "result")
    }

    static func action(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?, _ outLength: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolveResult(result)
        try CInput.required(out, "out_text").pointee = UnsafePointer(handle.action.pointer)
        outLength?.pointee = handle.action.textLength
    }

    static func response(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?, _ outLength: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolveResult(result)
        try CInput.required(out, "out_text").pointee = UnsafePointer(handle.response.pointer)
        outLength?.pointee = handle.response.textLength
    }

    static func actionValid(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) throws {
        let handle = try resolveResult(result)
        try CInput.required(out, "out_valid").pointee = handle.actionValid ? 1 : 0
    }

    static func ids(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Int32>?>?, _ outCount: UnsafeMutablePointer<Int>?) throws {
        try array(resolveResult(result).ids, out, outCount, "out_ids")
    }

    static func logProbabilities(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Float>?>?, _ outCount: UnsafeMutablePointer<Int>?) throws {
        try array(resolveResult(result).logProbabilities, out, outCount, "out_logprobs")
    }

    static func promptIDs(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Int32>?>?, _ outCount: UnsafeMutablePointer<Int>?) throws {
        try array(resolveResult(result).promptIDs, out, outCount, "out_ids")
    }

    static func expert(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<Int32>?) throws {
        let handle = try resolveResult(result)
        try CInput.required(out, "out_expert").pointee = handle.expert
    }

    static func probabilities(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Float>?>?, _ outCount: UnsafeMutablePointer<Int>?) throws {
        try array(resolveResult(result).probabilities, out, outCount, "out_probabilities")
    }

    static func timing(_ result: OpaquePointer?, _ outRouting: UnsafeMutablePointer<Double>?, _ outGeneration: UnsafeMutablePointer<Double>?) throws {
        let handle = try resolveResult(result)
        let routing = try CInput.required(outRouting, "out_routing_seconds")
        let generation = try CInput.required(outGeneration, "out_generation_seconds")
        routing.pointee = handle.routingSeconds
        generation.pointee = handle.generationSeconds
    }

    static func roles(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Int32>?>?, _ outCount: UnsafeMutablePointer<Int>?) throws {
        try array(resolveResult(result).roles, out, outCount, "out_roles")
    }

    static func tokenExperts(_ result: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Int32>?>?,
                             _ outCount: UnsafeMutablePointer<Int>?, _ outPerToken: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolveResult(result)
        let outPerToken = try CInput.required(outPerToken, "out_per_token")
        let outCount = try CInput.required(outCount, "out_count")
        try array(handle.tokenExperts, out, outCount, "out_experts")
        let perToken = handle.tokenExpertsPerToken
        outCount.pointee = perToken == 0 ? 0 : handle.tokenExperts.count / perToken   // tokens, not entries
        outPerToken.pointee = perToken
    }

    /// Hands out an array and its count (both out pointers required).
    private static func array<T>(_ values: StableArray<T>, _ out: UnsafeMutablePointer<UnsafePointer<T>?>?,
                                 _ outCount: UnsafeMutablePointer<Int>?, _ name: String) throws {
        let out = try CInput.required(out, name)
        let outCount = try CInput.required(outCount, "out_count")
        out.pointee = UnsafePointer(values.pointer)
        outCount.pointee = values.count
    }

    private static func resolveResult(_ result: OpaquePointer?) throws -> StepResultHandle {
        try HandleRegistry.shared.resolve(result, as: StepResultHandle.self, "result")
    }
}
