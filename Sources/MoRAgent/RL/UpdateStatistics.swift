/// What one `PolicyTrainer.update` did (DESIGN.md §6's metrics), also written as a JSON line.
public struct UpdateStatistics {
    /// Updates done, this one included.
    public var update = 0
    /// Episodes, steps and action tokens learned from.
    public var episodes = 0, steps = 0, tokens = 0
    /// Share of episodes that ended with success.
    public var successRate = 0.0
    /// Mean episode return (step rewards plus the final return) and length.
    public var meanReturn = 0.0, meanLength = 0.0
    /// Mean count of consecutive steps routed differently, per episode.
    public var switchesPerEpisode = 0.0
    /// Share of steps served by each expert (hard choices).
    public var expertUtilisation: [Double] = []
    /// Mean router probability of each expert over the steps (soft utilisation).
    public var expertProbability: [Double] = []
    /// Mean entropy (bits) of the sampling distribution over the action tokens each expert
    /// produced; nil for an expert that served no step.
    public var expertEntropyBits: [Double?] = []
    /// The total loss and its terms (each already multiplied by its coefficient except
    /// `policyLoss`, which has none).
    public var loss = 0.0, policyLoss = 0.0, balanceLoss = 0.0, switchLoss = 0.0, diversityLoss = 0.0, valueLoss = 0.0
    /// KL to the base (k3, when the KL coefficient is set), the old-to-new approximate KL, and
    /// the clipped share of tokens.
    public var referenceKL = 0.0, approximateKL = 0.0, clipFraction = 0.0
    /// Mean entropy (nats) of the new policy at the action tokens.
    public var entropy = 0.0
    /// Global gradient norm before clipping (of the last optimiser step).
    public var gradientNorm = 0.0
    /// Mean and standard deviation of the step advantages.
    public var advantageMean = 0.0, advantageStd = 0.0
    /// The router temperature the rollouts were sampled with, and the learning rate used.
    public var temperature = 0.0, learningRate = 0.0
    /// Wall-clock seconds of the update.
    public var seconds = 0.0

    /// One JSON object.
    public var json: JSONValue {
        func n(_ x: Double) -> JSONValue { x.isFinite ? .number(x) : .null }
        return .object([
            ("update", .number(Double(update))), ("episodes", .number(Double(episodes))), ("steps", .number(Double(steps))),
            ("tokens", .number(Double(tokens))), ("success_rate", n(successRate)), ("mean_return", n(meanReturn)),
            ("mean_length", n(meanLength)), ("switches_per_episode", n(switchesPerEpisode)),
            ("expert_utilisation", .array(expertUtilisation.map(n))), ("expert_probability", .array(expertProbability.map(n))),
            ("expert_entropy_bits", .array(expertEntropyBits.map { $0.map(n) ?? .null })),
            ("loss", n(loss)), ("policy_loss", n(policyLoss)), ("balance_loss", n(balanceLoss)), ("switch_loss", n(switchLoss)),
            ("diversity_loss", n(diversityLoss)), ("value_loss", n(valueLoss)), ("reference_kl", n(referenceKL)),
            ("approx_kl", n(approximateKL)), ("clip_fraction", n(clipFraction)), ("entropy", n(entropy)),
            ("grad_norm", n(gradientNorm)), ("advantage_mean", n(advantageMean)), ("advantage_std", n(advantageStd)),
            ("temperature", n(temperature)), ("learning_rate", n(learningRate)), ("seconds", n(seconds)),
        ])
    }
}
