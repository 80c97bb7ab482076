/// PA-MoE's balance term (appendix Eq. 11; DESIGN.md §4): `L_bal = Σ_k (f_k − 1/K)²` with `f_k`
/// the mean router probability of expert k over the batch's deciding steps (a hard count has no
/// gradient; the hard frequencies of the chosen experts are reported beside it). It enters
/// `L = L_RL + 0.01·L_div + 0.001·L_bal + 1.0·L_switch` with weight `coefficient`.
public struct ExpertBalanceLoss: Equatable, Sendable {
    /// Its weight in the total (0.001); 0 switches it off.
    public var coefficient: Float = 0.001

    /// The term with weight `coefficient`.
    public init(coefficient: Float = 0.001) {
        self.coefficient = coefficient
    }

    /// `coefficient·L_bal` over the router distributions `p[step][K]`, `coefficient·dL_bal/dp`
    /// for every step (what the phase router's backward takes), and the share of steps that
    /// chose each expert (unweighted).
    public func lossAndGradients(probabilities p: [[Float]], chosen: [Int]) throws -> (loss: Double, gradients: [[Float]], hardFrequencies: [Double]) {
        guard let k = p.first?.count, k > 0, p.allSatisfy({ $0.count == k }), chosen.count == p.count else {
            throw MoRAgentError.invalidArgument("balance loss needs one K-vector and one choice per step")
        }
        let t = Double(p.count)
        let f = (0..<k).map { j in p.reduce(0.0) { $0 + Double($1[j]) } / t }
        let loss = f.reduce(0.0) { $0 + ($1 - 1 / Double(k)) * ($1 - 1 / Double(k)) }
        let grad = (0..<k).map { coefficient * Float(2 * (f[$0] - 1 / Double(k)) / t) }
        var hard = [Double](repeating: 0, count: k)
        for c in chosen where (0..<k).contains(c) { hard[c] += 1 / t }
        return (Double(coefficient) * loss, Array(repeating: grad, count: p.count), hard)
    }
}
