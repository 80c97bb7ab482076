/// How a `PolicyTrainer` turns recorded rollouts into parameter updates (DESIGN.md §4-§6).
/// Defaults follow verl-agent's ALFWorld GiGPO run and PA-MoE's loss weights (`PolicyObjective`).
public struct PolicyTrainerConfiguration {
    /// The advantage estimator.
    public enum Estimator {
        /// Group-normalised episode return.
        case grpo(GRPOAdvantage)
        /// Leave-one-out baseline within the group.
        case rloo(RLOOAdvantage)
        /// Episode-level group advantage plus step-level advantage over anchor states.
        case gigpo(GiGPOAdvantage)
        /// GAE with a value head on the base's pooled prompt state; advantages whitened over
        /// the batch as verl does.
        case ppo(GAEAdvantage)

        /// Its name in statistics and manifests.
        public var name: String {
            switch self {
            case .grpo: return "grpo"
            case .rloo: return "rloo"
            case .gigpo: return "gigpo"
            case .ppo: return "ppo"
            }
        }

        /// Whether it compares the rollouts of a group (and so needs at least two per group).
        var isGrouped: Bool { if case .ppo = self { return false }; return true }
    }

    /// The estimator (GiGPO by default).
    public var estimator: Estimator = .gigpo(GiGPOAdvantage())
    /// The loss: the clipped surrogate and PA-MoE's routing terms, each with its coefficient.
    public var objective = PolicyObjective()
    /// AdamW over the experts, the router and the value head.
    public var optimizer: AdamW.Configuration = {
        var c = AdamW.Configuration()
        c.learningRate = 1e-4
        c.weightDecay = 0
        return c
    }()
    /// Learning-rate schedule over updates.
    public var schedule = LearningRateSchedule()
    /// Clip the global gradient norm to this (verl's 1.0).
    public var maxGradientNorm: Float = 1
    /// Train the phase router (straight-through) and token-router gates; off keeps them frozen.
    public var trainRouter = true
    /// The router's learning rate relative to the experts'. The straight-through gradient
    /// reinforces whichever expert the router already prefers, so a router trained as fast as
    /// small experts tends to collapse onto one of them before they differ.
    public var routerLearningRateScale: Float = 1
    /// Optimiser steps per update: the batch's steps are split into this many mini-batches.
    public var miniBatches = 1
    /// Passes over the batch per update.
    public var epochs = 1
    /// Steps per forward/backward pass; gradients accumulate over the passes of a mini-batch, so
    /// this bounds activation memory without changing the result beyond float rounding. Each
    /// pass runs as two halves on two threads (`BatchHalves`).
    public var chunkSteps = 32
    /// What each forward keeps for its backward (the passes and the diversity term's):
    /// `.recompute` keeps only every layer's input and recomputes the rest in the backward, for
    /// about one more forward per pass, with bit-identical gradients (DESIGN.md §5).
    public var activationMemory = ActivationMemory.store
    /// Seeds the draws of the diversity states.
    public var seed: UInt64 = 0

    /// The defaults above.
    public init() {}

    /// Throws on out-of-range settings.
    public func validate() throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw MoRAgentError.invalidArgument("trainer setting \(what) is out of range") } }
        try check(maxGradientNorm > 0 && maxGradientNorm.isFinite, "max_grad_norm")
        try check(routerLearningRateScale >= 0 && routerLearningRateScale.isFinite, "router_learning_rate_scale")
        try objective.validate()
        try check(miniBatches >= 1 && epochs >= 1 && chunkSteps >= 1, "mini_batches/epochs/chunk_steps")
        try check(schedule.warmupSteps >= 0 && schedule.totalSteps >= 1, "schedule")
    }
}
