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
    /// Token routing only: per generated token, the experts (top-k order) layer 0's gate chose
    /// at the position whose logits sampled that token; nil for other routings.
    public var tokenExperts: [[Int]]? = nil
    /// Mixture-of-Roles only: the role of every generated token (`RoleGate.roles(of:)` over
    /// prompt and response, so a marker's own tokens belong to the role that wrote it); nil
    /// for other routings.
    public var roles: [AgentRole]? = nil
}

/// One step for `Policy.step(_:)` to take: the episode, what it observes, and its goal.
public struct StepRequest: Sendable {
    /// The episode (any number; its first step starts it).
    public var episode: Int
    /// The observation.
    public var observation: String
    /// The goal.
    public var goal: String

    /// A step of `episode`.
    public init(episode: Int, observation: String, goal: String) {
        self.episode = episode
        self.observation = observation
        self.goal = goal
    }
}

/// How a policy routes its experts.
public enum PolicyRouting {
    /// A step router chooses once per step among `experts`; every token of the step's forward
    /// goes through that route (the behaviour of `Policy(engine:experts:router:)`).
    case step(StepRouter, experts: ExpertSet)
    /// Every token of a step's forward is routed by the token router over its own experts. The
    /// step's decision: `probabilities` are the experts' mean layer-0 routing weights over the
    /// step's generated tokens (zero outside each token's top-k), `route` is `.expert(k)` for
    /// the expert layer 0 chose most often (ties: the larger mean weight, then the lower id),
    /// `.base` when nothing was generated. `StepResult.tokenExperts` has the per-token choices.
    case tokens(TokenTopKRouter)
    /// Mixture-of-Roles: the step's generation runs `MixtureOfRoles.generate` with `gate`, so
    /// role hand-overs happen inside one step. The mixture owns its LoRAs (they are the
    /// policy's `experts`). The step's decision is over the three roles: `probabilities` are
    /// the shares of the generated tokens each role wrote (reasoner, executor, summarizer), and
    /// `route` is `.expert(role.rawValue)` for the role that wrote the most (ties: the lower
    /// role), `.base` when nothing was generated. `StepResult.roles` has the per-token roles.
    case roles(MixtureOfRoles, RoleGate)
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
    /// The group it belongs to (rollouts of one task instance; `beginEpisode`), by default its
    /// own id.
    public var group: Int
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

/// A policy: a shared engine, K LoRA experts, a router (per step, per token or per role),
/// sampling settings and the per-episode history (DESIGN.md §1, §6). One thread at a time.
public final class Policy {
    /// The frozen base and tokenizer.
    public let engine: Engine
    /// The experts the router chooses among (a token router's own set, a Mixture-of-Roles'
    /// LoRAs).
    public let experts: ExpertSet
    /// How the experts are routed.
    public let routing: PolicyRouting
    /// The step router, nil for token or Mixture-of-Roles routing.
    public var router: StepRouter? { if case .step(let r, _) = routing { return r }; return nil }
    /// How each step's action is sampled (stop strings default to `</action>`).
    public var sampling: SamplingParameters
    /// How prompts are built.
    public var template: PromptTemplate
    /// The encoder routers read texts through (cached across steps).
    public let encoder: TextEncoder
    private(set) var episodes: [Int: EpisodeRecord] = [:]
    private var endedOrder: [Int] = []
    /// Whether steps record what an update needs (`RolloutStep`). On by default; an inference-only
    /// host may switch it off to save the memory.
    public var recordsRollouts = true
    /// The most steps the rollout record holds before `step` refuses more (memory stays bounded:
    /// an update releases the steps it consumes).
    public var rolloutCapacity = 1 << 16
    private var rollouts: [Int: [RolloutStep]] = [:]
    /// Steps recorded and not yet consumed by an update.
    public private(set) var recordedStepCount = 0

    /// A policy over `engine` and `experts`, routed by `router` (whose expert count must match).
    public convenience init(engine: Engine, experts: ExpertSet, router: StepRouter, sampling: SamplingParameters? = nil,
                            template: PromptTemplate = PromptTemplate()) throws {
        try self.init(engine: engine, routing: .step(router, experts: experts), sampling: sampling, template: template)
    }

    /// A policy over `engine` routed as `routing` says (each case carries the experts it routes).
    public init(engine: Engine, routing: PolicyRouting, sampling: SamplingParameters? = nil,
                template: PromptTemplate = PromptTemplate()) throws {
        let experts: ExpertSet
        switch routing {
        case .step(let router, let set):
            guard router.expertCount == set.count else {
                throw MoRAgentError.invalidArgument("the router chooses among \(router.expertCount) experts but the set has \(set.count)")
            }
            experts = set
        case .tokens(let router): experts = router.experts
        case .roles(let mor, _): experts = mor.loras
        }
        _ = try engine.requireTokenizer()
        let model = engine.decoder.config
        guard experts.model.layerCount == model.layerCount, experts.model.hiddenSize == model.hiddenSize,
              ProjectionKind.allCases.allSatisfy({ experts.model.projectionShape($0) == model.projectionShape($0) }) else {
            throw MoRAgentError.invalidArgument("the experts were made for a model of another shape than the engine's")
        }
        if case .step(let router, _) = routing { try router.validate(for: model) }
        self.engine = engine
        self.experts = experts
        self.routing = routing
        var s = sampling ?? SamplingParameters()
        if sampling == nil { s.temperature = 1; s.maxNewTokens = 64; s.stopStrings = ["</action>"] }
        try s.validate()
        self.sampling = s
        self.template = template
        encoder = TextEncoder(engine: engine)
    }

    /// The record of `episode`, if the policy has seen it.
    public func episode(_ id: Int) -> EpisodeRecord? { episodes[id] }

    /// Starts `episode` as a member of `group` (the rollouts of one task instance, which grouped
    /// advantage estimators compare). An episode started by `step` alone is its own group.
    public func beginEpisode(_ id: Int, group: Int) throws {
        guard episodes[id] == nil else { throw MoRAgentError.invalidArgument("episode \(id) has already begun") }
        episodes[id] = EpisodeRecord(goal: "", group: group)
    }

    /// Routes, then generates the action for the next step of `episode` (created on first use).
    /// Throws, leaving the episode unchanged, for an ended episode, a full rollout record, a
    /// prompt that encodes to no tokens, or a routing or generation failure.
    public func step(episode id: Int, observation: String, goal: String) throws -> StepResult {
        try step([StepRequest(episode: id, observation: observation, goal: goal)])[0]
    }

    /// The next step of several episodes at once: each is routed as `step(episode:…)` routes it
    /// (in the given order), then all prompts are prefilled and decoded as one batch, each with
    /// its own route (or token router, or role gate), stop strings and sampling seed. The seed is
    /// the one the episode's step has alone, so a batch gives the same steps as one call per
    /// episode, up to the float rounding of the batched products. A host running many
    /// environments (a group of rollouts, or every group of an update) gets the batch's better
    /// use of the products (`tools/bench_rollout.py` measures it).
    ///
    /// Every result's `generationSeconds` is the whole batch's. Throws, changing no episode, for
    /// an empty batch, an episode named twice, an ended episode, a rollout record without room
    /// for every step, an empty prompt, or a routing or generation failure.
    public func step(_ requests: [StepRequest]) throws -> [StepResult] {
        guard !requests.isEmpty else { throw MoRAgentError.invalidArgument("no steps to take") }
        var named = Set<Int>()
        for r in requests {
            guard named.insert(r.episode).inserted else { throw MoRAgentError.invalidArgument("episode \(r.episode) appears twice in one batch") }
            guard episodes[r.episode]?.reward == nil else { throw MoRAgentError.invalidArgument("episode \(r.episode) has ended") }
        }
        if recordsRollouts, recordedStepCount + requests.count > rolloutCapacity {
            throw MoRAgentError.invalidArgument("the rollout record is full (\(recordedStepCount) of \(rolloutCapacity) steps, \(requests.count) more asked): run an update or raise the capacity")
        }
        var records = requests.map { r -> EpisodeRecord in
            var record = episodes[r.episode] ?? EpisodeRecord(goal: r.goal, group: r.episode)
            if record.steps.isEmpty { record.goal = r.goal }
            return record
        }
        let histories = records.map { $0.steps.map { (observation: $0.observation, action: $0.action) } }
        let tokenizer = try engine.requireTokenizer()
        let prompts = try zip(requests, histories).map { r, history -> [Int32] in
            let ids = tokenizer.encode(template.render(goal: r.goal, observation: r.observation, history: history))
            guard !ids.isEmpty else { throw MoRAgentError.invalidArgument("the prompt of episode \(r.episode) encodes to no tokens") }
            return ids
        }
        let seeds = zip(requests, records).map { r, record in
            sampling.seed &+ UInt64(truncatingIfNeeded: r.episode) &* 0x2545_F491_4F6C_DD1D &+ UInt64(record.steps.count)
        }

        var decisions = [StepDecision?](repeating: nil, count: requests.count)
        var routerInputs = [PhaseRouter.Inputs?](repeating: nil, count: requests.count)
        var routerSteps = [Int?](repeating: nil, count: requests.count)
        var routingSeconds = [Double](repeating: 0, count: requests.count)
        if case .step(let router, _) = routing {
            // A phase router reads the base model's encodings of observations and goals (cached
            // by text): the batch's new ones in one batched forward, before routing one by one.
            let encoding = requests.indices.filter { i in
                if router.unwrapped is PhaseRouter { return true }
                if let t = router.unwrapped as? TrajectoryRouter, t.inner.unwrapped is PhaseRouter { return records[i].steps.isEmpty }
                return false
            }
            if encoding.count > 1 { try encoder.prefetch(encoding.flatMap { [requests[$0].observation, requests[$0].goal] }) }
            for (i, r) in requests.enumerated() {
                let t0 = Policy.now()
                let context = StepContext(episode: r.episode, step: records[i].steps.count, observation: r.observation, goal: r.goal,
                                          history: histories[i], encoder: encoder)
                decisions[i] = try router.decide(context)
                // A phase router's inputs are kept for the update's straight-through gradient
                // (they are cached encodings, so gathering them again is cheap). A trajectory
                // router decides at step 0 and keeps that decision for the episode.
                if recordsRollouts {
                    if let phase = router.unwrapped as? PhaseRouter {
                        (routerInputs[i], routerSteps[i]) = (try phase.inputs(context), records[i].steps.count)
                    } else if let trajectory = router.unwrapped as? TrajectoryRouter, let phase = trajectory.inner.unwrapped as? PhaseRouter {
                        routerSteps[i] = 0
                        if records[i].steps.isEmpty { routerInputs[i] = try phase.inputs(context) }
                    }
                }
                routingSeconds[i] = Policy.now() - t0
            }
        }

        let t1 = Policy.now()
        let generated: [GenerationResult]
        var tokenExperts: [[[Int]]]?, roles: [[AgentRole]]?
        switch routing {
        case .step:
            generated = try engine.generate(prompts: prompts, parameters: sampling, experts: experts, routes: decisions.map { $0!.route }, seeds: seeds)
        case .tokens(let router):
            // One adapter per forward; the last row of each prompt's rows in it is the position
            // whose logits sampled that prompt's next token.
            var chosen = prompts.map { _ in [[(expert: Int, weight: Float)]]() }
            var last: (active: [Int], counts: [Int], adapter: TokenRoutedAdapter)?
            func collect() {
                if let (active, counts, a) = last, let rows = a.choices.first {
                    var end = 0
                    for (i, s) in active.enumerated() {
                        end += counts[i]
                        chosen[s].append(rows[end - 1])
                    }
                }
                last = nil
            }
            generated = try TextGenerator(engine: engine).generate(prompts: prompts, parameters: sampling, seeds: seeds) { active, counts, _ in
                collect()
                let a = router.adapter()
                last = (active, counts, a)
                return a
            }
            collect()
            let kept = requests.indices.map { Array(chosen[$0].prefix(generated[$0].ids.count)) }
            tokenExperts = kept.map { $0.map { $0.map(\.expert) } }
            for i in requests.indices { decisions[i] = Policy.tokenDecision(kept[i], expertCount: experts.count) }
        case .roles(let mor, let gate):
            generated = try mor.generate(engine: engine, prompts: prompts, parameters: sampling, gate: gate, seeds: seeds)
            roles = requests.indices.map { i in
                Array(gate.roles(of: prompts[i] + generated[i].ids, tokenizer: tokenizer).suffix(generated[i].ids.count))
            }
            for i in requests.indices { decisions[i] = Policy.roleDecision(roles![i]) }
        }
        let t2 = Policy.now()

        var results: [StepResult] = []
        for (i, r) in requests.enumerated() {
            let g = generated[i], decision = decisions[i]!
            let (action, valid) = ActionExtractor.extract(g.text)
            if recordsRollouts {
                rollouts[r.episode, default: []].append(RolloutStep(
                    step: records[i].steps.count, observation: r.observation, promptIDs: prompts[i], actionIDs: g.ids,
                    oldLogProbabilities: g.logProbabilities, entropies: g.entropies, actionValid: valid,
                    decision: decision, routerInputs: routerInputs[i], routerStep: routerSteps[i]))
                recordedStepCount += 1
            }
            records[i].steps.append(StepRecord(observation: r.observation, action: action, decision: decision))
            episodes[r.episode] = records[i]
            results.append(StepResult(response: g.text, action: action, actionValid: valid, promptIDs: prompts[i], ids: g.ids,
                                      logProbabilities: g.logProbabilities, decision: decision,
                                      routingSeconds: routingSeconds[i], generationSeconds: t2 - t1,
                                      tokenExperts: tokenExperts?[i], roles: roles?[i]))
        }
        return results
    }

    /// A token-routed step's decision (see `PolicyRouting.tokens`).
    static func tokenDecision(_ chosen: [[(expert: Int, weight: Float)]], expertCount k: Int) -> StepDecision {
        var mean = [Float](repeating: 0, count: k), uses = [Int](repeating: 0, count: k)
        for row in chosen {
            for (e, w) in row { mean[e] += w / Float(chosen.count); uses[e] += 1 }
        }
        guard !chosen.isEmpty else { return StepDecision(route: .base, probabilities: mean) }
        let best = (0..<k).max { a, b in (uses[a], mean[a], -a) < (uses[b], mean[b], -b) }!
        return StepDecision(route: .expert(best), probabilities: mean)
    }

    /// A Mixture-of-Roles step's decision (see `PolicyRouting.roles`).
    static func roleDecision(_ roles: [AgentRole]) -> StepDecision {
        var share = [Float](repeating: 0, count: AgentRole.allCases.count)
        for r in roles { share[r.rawValue] += 1 / Float(roles.count) }
        guard !roles.isEmpty else { return StepDecision(route: .base, probabilities: share) }
        let counts = AgentRole.allCases.map { r in roles.filter { $0 == r }.count }
        let best = (0..<counts.count).max { a, b in (counts[a], -a) < (counts[b], -b) }!
        return StepDecision(route: .expert(best), probabilities: share)
    }

    /// Adds `reward` to the latest step of `episode` (a reward the environment gave for that step;
    /// GiGPO discounts step rewards into its step returns). The episode's final return still goes
    /// to `endEpisode`.
    public func addStepReward(_ id: Int, reward: Double) throws {
        guard reward.isFinite else { throw MoRAgentError.invalidArgument("reward \(reward) is not finite") }
        guard let record = episodes[id], !record.steps.isEmpty else { throw MoRAgentError.invalidArgument("episode \(id) has taken no step") }
        guard record.reward == nil else { throw MoRAgentError.invalidArgument("episode \(id) has ended") }
        guard recordsRollouts, var steps = rollouts[id], !steps.isEmpty else { return }
        steps[steps.count - 1].reward += reward
        rollouts[id] = steps
    }

    /// Closes `episode` with its return and outcome; it can take no more steps.
    public func endEpisode(_ id: Int, reward: Double, success: Bool) throws {
        guard reward.isFinite else { throw MoRAgentError.invalidArgument("reward \(reward) is not finite") }
        guard var record = episodes[id], !record.steps.isEmpty else { throw MoRAgentError.invalidArgument("episode \(id) has taken no step") }
        guard record.reward == nil else { throw MoRAgentError.invalidArgument("episode \(id) has already ended") }
        record.reward = reward
        record.success = success
        episodes[id] = record
        endedOrder.append(id)
        router?.endEpisode(id)
    }

    /// One JSON object per ended episode, in the order they ended: `{"episode", "steps",
    /// "experts" (null for base/mixture steps; for token routing the most used expert, for
    /// Mixture-of-Roles the role id 0/1/2 that wrote the most tokens), "switches", "reward", "success"}`.
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

    /// Forgets every ended episode and its recorded steps (what an update does after consuming
    /// them).
    public func clearEndedEpisodes() {
        for id in endedOrder {
            episodes[id] = nil
            recordedStepCount -= rollouts.removeValue(forKey: id)?.count ?? 0
        }
        endedOrder.removeAll()
    }

    /// The recorded steps of every ended episode, in the order they ended (episodes that
    /// recorded no step are left out). Nothing is removed: `clearEndedEpisodes` does that once
    /// an update has succeeded, so a rejected update loses nothing.
    public func endedRollouts() -> [RolloutEpisode] {
        endedOrder.compactMap { id in
            guard let r = episodes[id], let steps = rollouts[id], !steps.isEmpty else { return nil }
            return RolloutEpisode(episode: id, group: r.group, reward: r.reward ?? 0, success: r.success ?? false, steps: steps)
        }
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
