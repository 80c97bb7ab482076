/// PA-MoE's switching penalty (§Temporal Consistency, Eq. 7-8; DESIGN.md §4), per episode and
/// averaged over episodes: the forward value is the hard `λ_s/(T−1)·Σ_t 1[z_t ≠ z_{t+1}]`; the
/// gradient is that of the soft surrogate `λ_s/(T−1)·Σ_t (1 − Σ_k p_t,k·p_t+1,k)`, i.e.
/// `−λ_s/(T−1)·(p_{t−1} + p_{t+1})` at step t. Episodes of one step contribute nothing. It
/// enters `L = L_RL + 0.01·L_div + 0.001·L_bal + 1.0·L_switch` with weight `coefficient`.
public struct SwitchingLoss: Equatable, Sendable {
    /// Its weight in the total (1); 0 switches it off.
    public var coefficient: Float = 1
    /// `λ_s` inside it (0.05).
    public var lambda: Float = 0.05

    /// The term with weight `coefficient` and `λ_s = lambda`.
    public init(coefficient: Float = 1, lambda: Float = 0.05) {
        self.coefficient = coefficient
        self.lambda = lambda
    }

    /// `coefficient·L_switch` over the episodes' deciding steps in order, and
    /// `coefficient·dL_switch/dp` for every step of every episode.
    public func lossAndGradients(episodes: [[(probabilities: [Float], chosen: Int)]]) -> (loss: Double, gradients: [[[Float]]]) {
        guard !episodes.isEmpty else { return (0, []) }
        var loss = 0.0
        var gradients: [[[Float]]] = []
        let perEpisode = 1 / Float(episodes.count)
        for steps in episodes {
            var g = steps.map { [Float](repeating: 0, count: $0.probabilities.count) }
            if steps.count > 1 {
                let scale = lambda / Float(steps.count - 1)
                for t in 0..<(steps.count - 1) {
                    if steps[t].chosen != steps[t + 1].chosen { loss += Double(scale * perEpisode) }
                    for j in g[t].indices {
                        g[t][j] -= scale * perEpisode * steps[t + 1].probabilities[j]
                        g[t + 1][j] -= scale * perEpisode * steps[t].probabilities[j]
                    }
                }
            }
            gradients.append(g.map { $0.map { coefficient * $0 } })
        }
        return (Double(coefficient) * loss, gradients)
    }
}
