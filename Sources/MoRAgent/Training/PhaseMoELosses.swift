/// PA-MoE's routing regularisers on router distributions (paper §Temporal Consistency, Eq. 7-8,
/// appendix Eq. 11; DESIGN.md §4). Each returns its value and `dL/dp` for every step, which the
/// phase router's backward takes.
public enum PhaseMoELosses {
    /// Balance: `Σ_k (f_k − 1/K)²` with `f_k` the mean router probability over the batch's steps
    /// (a hard count has no gradient); the hard frequencies of the chosen experts are reported.
    public static func balance(probabilities p: [[Float]], chosen: [Int]) throws -> (loss: Double, gradients: [[Float]], hardFrequencies: [Double]) {
        guard let k = p.first?.count, k > 0, p.allSatisfy({ $0.count == k }), chosen.count == p.count else {
            throw MoRAgentError.invalidArgument("balance loss needs one K-vector and one choice per step")
        }
        let t = Double(p.count)
        let f = (0..<k).map { j in p.reduce(0.0) { $0 + Double($1[j]) } / t }
        let loss = f.reduce(0.0) { $0 + ($1 - 1 / Double(k)) * ($1 - 1 / Double(k)) }
        let grad = (0..<k).map { Float(2 * (f[$0] - 1 / Double(k)) / t) }
        var hard = [Double](repeating: 0, count: k)
        for c in chosen where (0..<k).contains(c) { hard[c] += 1 / t }
        return (loss, Array(repeating: grad, count: p.count), hard)
    }

    /// Switching penalty per episode, averaged over episodes: the forward value is the hard
    /// `λ/(T−1) · Σ_t 1[z_t ≠ z_{t+1}]`; the gradient is that of the soft surrogate
    /// `λ/(T−1) · Σ_t (1 − Σ_k p_t,k p_t+1,k)`, i.e. `−λ/(T−1)·(p_{t−1} + p_{t+1})` at step t.
    /// Episodes of one step contribute nothing.
    public static func switching(episodes: [[(probabilities: [Float], chosen: Int)]], coefficient lambda: Float = 0.05) -> (loss: Double, gradients: [[[Float]]]) {
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
            gradients.append(g)
        }
        return (loss, gradients)
    }
}
