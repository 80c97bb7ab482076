#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What one policy step produced.
public struct StepResult: Sendable {
    /// The full generated response.
    public var response: String
    /// The action extracted from it (`ActionExtractor`).
    public var action: String
    /// Whether the response held a well-formed `<action>…</action>`.
    public var actionValid: Bool
    /// The prompt's token ids.
    public var promptIDs: [Int32]
    /// The generated token ids.
    public var ids: [Int32]
    /// `log p` of each generated token under the unmodified distribution of the routed policy.
    public var logProbabilities: [Float]
    /// The router's decision (route and distribution over experts).
    public var decision: StepDecision
    /// Seconds spent routing.
    public var routingSeconds: Double
    /// Seconds spent generating.
    public var generationSeconds: Double
}

/// One step of an episode as the policy remembers it.
public struct StepRecord: Sendable {
    /// The observation.
    public var observation: String
    /// The action taken.
    public var action: String
    /// The router's decision.
    public var decision: StepDecision
}

/// An episode's record.
public struct EpisodeRecord: Sendable {
    /// The goal of the first step.
    public var goal: String
    /// Steps so far.
    public var steps: [StepRecord] = []
    /// Set by `endEpisode`.
    public var reward: Double?
    /// Set by `endEpisode`.
    public var success: Bool?

    /// Hard expert per step (nil for base or mixture steps).
    public var experts: [Int?] { steps.map { $0.decision.expert } }
    /// Consecutive steps routed differently (PA-MoE's switch metric, `Σ 1[z_t ≠ z_t+1]`).
    public var switches: Int { zip(steps, steps.dropFirst()).filter { $0.decision.route != $1.decision.route }.count }
}

/// A policy: a shared engine, K LoRA experts, a step router, sampling settings and the
/// per-episode history (DESIGN.md §1, §6). One thread at a time.
public final class Policy {
    /// The frozen base and tokenizer.
    public let engine: Engine
    /// The experts the router chooses among.
    public let experts: ExpertSet
    /// The router.
    public let router: StepRouter
    /// How each step's action is sampled (stop strings default to `</action>`).
    public var sampling: SamplingParameters
    /// How prompts are built.
    public var template: PromptTemplate
    /// The encoder routers read texts through (cached across steps).
    public let encoder: TextEncoder
    private(set) var episodes: [Int: EpisodeRecord] = [:]
    private var endedOrder: [Int] = []

    /// A policy over `engine` and `experts`, routed by `router` (whose expert count must match).
    public init(engine: Engine, experts: ExpertSet, router: StepRouter, sampling: SamplingParameters? = nil,
                template: PromptTemplate = PromptTemplate()) throws {
        guard router.expertCount == experts.count else {
            throw MoRAgentError.invalidArgument("the router chooses among \(router.expertCount) experts but the set has \(experts.count)")
        }
        _ = try engine.requireTokenizer()
        let model = engine.decoder.config
        guard experts.model.layerCount == model.layerCount,
              ProjectionKind.allCases.allSatisfy({ experts.model.projectionShape($0) == model.projectionShape($0) }) else {
            throw MoRAgentError.invalidArgument("the experts were made for a model of another shape than the engine's")
        }
        try router.validate(for: model)
        self.engine = engine
        self.experts = experts
        self.router = router
        var s = sampling ?? SamplingParameters()
        if sampling == nil { s.temperature = 1; s.maxNewTokens = 64; s.stopStrings = ["</action>"] }
        try s.validate()
        self.sampling = s
        self.template = template
        encoder = TextEncoder(engine: engine)
    }

    /// The record of `episode`, if the policy has seen it.
    public func episode(_ id: Int) -> EpisodeRecord? { episodes[id] }

    /// Routes, then generates the action for the next step of `episode` (created on first use).
    public func step(episode id: Int, observation: String, goal: String) throws -> StepResult {
        guard episodes[id]?.reward == nil else { throw MoRAgentError.invalidArgument("episode \(id) has ended") }
        var record = episodes[id] ?? EpisodeRecord(goal: goal)
        let history = record.steps.map { (observation: $0.observation, action: $0.action) }
        let t0 = Policy.now()
        let decision = try router.decide(StepContext(episode: id, step: record.steps.count, observation: observation,
                                                     goal: goal, history: history, encoder: encoder))
        let t1 = Policy.now()
        let prompt = template.render(goal: goal, observation: observation, history: history)
        let promptIDs = try engine.requireTokenizer().encode(prompt)
        guard !promptIDs.isEmpty else { throw MoRAgentError.invalidArgument("the prompt encodes to no tokens") }
        var parameters = sampling
        parameters.seed = sampling.seed &+ UInt64(truncatingIfNeeded: id) &* 0x2545_F491_4F6C_DD1D &+ UInt64(record.steps.count)
        let generated = try engine.generate(prompts: [promptIDs], parameters: parameters, experts: experts, routes: [decision.route])[0]
        let t2 = Policy.now()
        let (action, valid) = ActionExtractor.extract(generated.text)
        record.steps.append(StepRecord(observation: observation, action: action, decision: decision))
        episodes[id] = record
        return StepResult(response: generated.text, action: action, actionValid: valid, promptIDs: promptIDs, ids: generated.ids,
                          logProbabilities: generated.logProbabilities, decision: decision,
                          routingSeconds: t1 - t0, generationSeconds: t2 - t1)
    }

    /// Closes `episode` with its return and outcome; it can take no more steps.
    public func endEpisode(_ id: Int, reward: Double, success: Bool) throws {
        guard reward.isFinite else { throw MoRAgentError.invalidArgument("reward \(reward) is not finite") }
        guard var record = episodes[id] else { throw MoRAgentError.invalidArgument("episode \(id) has taken no step") }
        guard record.reward == nil else { throw MoRAgentError.invalidArgument("episode \(id) has already ended") }
        record.reward = reward
        record.success = success
        episodes[id] = record
        endedOrder.append(id)
        router.endEpisode(id)
    }

    /// One JSON object per ended episode, in the order they ended: `{"episode", "steps",
    /// "experts" (null for base/mixture steps), "switches", "reward", "success"}`.
    public func routingTraceJSONLines() -> String {
        endedOrder.compactMap { id -> String? in
            guard let r = episodes[id] else { return nil }
            return JSONValue.object([
                ("episode", .number(Double(id))), ("steps", .number(Double(r.steps.count))),
                ("experts", .array(r.experts.map { $0.map { .number(Double($0)) } ?? .null })),
                ("switches", .number(Double(r.switches))), ("reward", .number(r.reward ?? 0)), ("success", .bool(r.success ?? false)),
            ]).serialized
        }.joined(separator: "\n")
    }

    /// Forgets every ended episode (after an update has consumed them).
    public func clearEndedEpisodes() {
        for id in endedOrder { episodes[id] = nil }
        endedOrder.removeAll()
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
