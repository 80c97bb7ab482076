/// What a policy step recorded for the update that will learn from it (DESIGN.md §6): the
/// tokens the policy saw and produced, how likely they were when sampled, and how the step
/// was routed, including what the router read, so the update can re-run the router's forward
/// and send the straight-through gradient into it.
public struct RolloutStep {
    /// The step's position in its episode (0 first).
    public var step: Int
    /// The observation the action was taken at (GiGPO's anchor state).
    public var observation: String
    /// The rendered prompt's token ids.
    public var promptIDs: [Int32]
    /// The generated token ids (the response, a final stop token included).
    public var actionIDs: [Int32]
    /// `log π_old` of each generated id, from the sampling forward.
    public var oldLogProbabilities: [Float]
    /// Entropy (nats) of the sampling distribution at each generated id.
    public var entropies: [Float]
    /// Whether the response held a well-formed `<action>…</action>`.
    public var actionValid: Bool
    /// The router's decision.
    public var decision: StepDecision
    /// Reward the environment gave for this step (`Policy.addStepReward`), beside the episode's
    /// final return, which belongs to its last step.
    public var reward: Double = 0
    /// For a phase router (also inside a trajectory router): the inputs of the router forward
    /// that made this step's decision, when this step made it; nil otherwise.
    public var routerInputs: PhaseRouter.Inputs?
    /// For a trainable step router: the step of this episode whose router forward made the
    /// decision (this step for a phase router, step 0 for a trajectory router); nil otherwise.
    public var routerStep: Int?
}

/// An ended episode's recorded steps, as an update consumes them.
public struct RolloutEpisode {
    /// The episode id.
    public var episode: Int
    /// Its group (same task instance).
    public var group: Int
    /// The return given to `endEpisode`.
    public var reward: Double
    /// The outcome given to `endEpisode`.
    public var success: Bool
    /// Every recorded step, in order.
    public var steps: [RolloutStep]
}
