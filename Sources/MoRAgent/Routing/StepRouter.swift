/// What a step-level router is told about the decision at hand.
public struct StepContext {
    /// The episode.
    public var episode: Int
    /// The step index `t` within the episode (0 first).
    public var step: Int
    /// The current observation `o_t`.
    public var observation: String
    /// The task goal `g`.
    public var goal: String
    /// Earlier steps, oldest first: `(observation, action)` pairs.
    public var history: [(observation: String, action: String)]
    /// The base model's encodings of texts (cached).
    public var encoder: TextEncoder

    /// A context for step `step` of `episode`.
    public init(episode: Int, step: Int, observation: String, goal: String,
                history: [(observation: String, action: String)], encoder: TextEncoder) {
        self.episode = episode
        self.step = step
        self.observation = observation
        self.goal = goal
        self.history = history
        self.encoder = encoder
    }
}

/// A router's decision for one environment step.
public struct StepDecision: Equatable, Sendable {
    /// The experts every token of this step's forward goes through.
    public var route: ExpertRoute
    /// The router's distribution over the K experts (one-hot for fixed routers).
    public var probabilities: [Float]

    /// A decision.
    public init(route: ExpertRoute, probabilities: [Float]) {
        self.route = route
        self.probabilities = probabilities
    }

    /// The single expert a hard decision chose, nil for the base model or a mixture.
    public var expert: Int? { if case .expert(let k) = route { return k }; return nil }
}

/// A router that decides once per environment step (PA-MoE's phase router and its baselines,
/// user routers). Conform a Swift type to plug in your own; the C layer wraps callbacks and
/// plugin vtables in this protocol too.
public protocol StepRouter: AnyObject {
    /// Number of experts it chooses among (`K`).
    var expertCount: Int { get }
    /// The decision for `context`.
    func decide(_ context: StepContext) throws -> StepDecision
    /// Forgets whatever it kept about `episode` (called when the episode ends).
    func endEpisode(_ episode: Int)
    /// Throws unless the router can read the encodings of a model of `model` (a policy checks
    /// this once, so a mismatched router fails at creation instead of reading out of bounds).
    func validate(for model: ModelConfig) throws
    /// The router this one forwards every call to, if it only wraps one (adding a lock, say):
    /// trainers look through it to reach a phase router's parameters.
    var wrappedRouter: StepRouter? { get }
}

extension StepRouter {
    /// Not a wrapper by default.
    public var wrappedRouter: StepRouter? { nil }

    /// The router at the end of the `wrappedRouter` chain.
    public var unwrapped: StepRouter {
        var r: StepRouter = self
        while let inner = r.wrappedRouter { r = inner }
        return r
    }

    /// Nothing to forget by default.
    public func endEpisode(_ episode: Int) {}
    /// Routers that read no encodings fit any model.
    public func validate(for model: ModelConfig) throws {}
}

/// One expert for every step, or none (the base model; PA-MoE's K = 0 baseline uses one LoRA).
public final class FixedRouter: StepRouter {
    /// The expert, or nil for the base model.
    public let expert: Int?
    public let expertCount: Int

    /// Routes every step to `expert` (nil: base) among `expertCount` experts.
    public init(expert: Int?, expertCount: Int) throws {
        if let e = expert, !(0..<expertCount).contains(e) {
            throw MoRAgentError.invalidArgument("fixed expert \(e) is outside 0..<\(expertCount)")
        }
        self.expert = expert
        self.expertCount = expertCount
    }

    public func decide(_ context: StepContext) throws -> StepDecision {
        guard let e = expert else { return StepDecision(route: .base, probabilities: Array(repeating: 0, count: expertCount)) }
        return StepDecision(route: .expert(e), probabilities: (0..<expertCount).map { $0 == e ? 1 : 0 })
    }
}

/// A router written by the caller as a closure (the C layer passes a function pointer and a user
/// pointer through this): it returns one non-negative weight per expert. One positive weight
/// routes hard to that expert; several give a soft mixture with the weights normalised to sum to
/// one; all zero means the base model.
public final class CallbackRouter: StepRouter {
    public let expertCount: Int
    private let callback: (StepContext) throws -> [Float]

    /// A router calling `callback` for every step.
    public init(expertCount: Int, callback: @escaping (StepContext) throws -> [Float]) {
        self.expertCount = expertCount
        self.callback = callback
    }

    public func decide(_ context: StepContext) throws -> StepDecision {
        let w = try callback(context)
        guard w.count == expertCount else {
            throw MoRAgentError.invalidArgument("router callback returned \(w.count) weights for \(expertCount) experts")
        }
        guard w.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw MoRAgentError.invalidArgument("router callback returned a negative or non-finite weight")
        }
        let total = w.reduce(0, +)
        guard total > 0 else { return StepDecision(route: .base, probabilities: w) }
        let p = w.map { $0 / total }
        let chosen = p.enumerated().filter { $0.element > 0 }
        if chosen.count == 1 { return StepDecision(route: .expert(chosen[0].offset), probabilities: p) }
        return StepDecision(route: .mixture(chosen.map { ($0.offset, $0.element) }), probabilities: p)
    }
}

/// PA-MoE's trajectory-level baseline: the inner router decides at t = 0 and the choice is kept
/// for the whole episode.
public final class TrajectoryRouter: StepRouter {
    /// The router asked at each episode's first step.
    public let inner: StepRouter
    private var chosen: [Int: StepDecision] = [:]
    public var expertCount: Int { inner.expertCount }

    /// Keeps `inner`'s first decision per episode.
    public init(inner: StepRouter) { self.inner = inner }

    public func decide(_ context: StepContext) throws -> StepDecision {
        if let d = chosen[context.episode] { return d }
        let d = try inner.decide(context)
        chosen[context.episode] = d
        return d
    }

    public func endEpisode(_ episode: Int) {
        chosen[episode] = nil
        inner.endEpisode(episode)
    }

    public func validate(for model: ModelConfig) throws { try inner.validate(for: model) }
}
