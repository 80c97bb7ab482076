/// The objective of RL updates (PA-MoE's total loss, DESIGN.md §4):
/// `L = L_RL + 0.01·L_div + 0.001·L_bal + 1.0·L_switch` with `L_RL` the clipped surrogate (and
/// its optional KL to the base). Each routing term carries its coefficient and returns its
/// weighted value and gradient; a coefficient of 0 switches that term off (it adds nothing to
/// `L` or the gradients, and the diversity term is then not computed at all).
public struct PolicyObjective: Equatable, Sendable {
    /// `L_RL`: the clipped surrogate (ε 0.2, dual clip 3, token mean) and its KL to the base.
    public var surrogate = ClippedPolicyLoss()
    /// `0.001·L_bal` on the phase router's distributions.
    public var balance = ExpertBalanceLoss()
    /// `1.0·L_switch` (λ_s 0.05) on the phase router's consecutive decisions.
    public var switching = SwitchingLoss()
    /// `0.01·L_div` between the experts, every 100 updates.
    public var diversity = DiversityLoss()

    /// PA-MoE's coefficients and verl's surrogate.
    public init() {}

    /// Throws on out-of-range coefficients and diversity settings (the surrogate checks its own
    /// when evaluated).
    public func validate() throws {
        func check(_ ok: Bool, _ what: String) throws { if !ok { throw MoRAgentError.invalidArgument("trainer setting \(what) is out of range") } }
        for (v, n) in [(balance.coefficient, "balance_coefficient"), (switching.coefficient, "switch_coefficient"),
                       (switching.lambda, "switch_lambda"), (diversity.coefficient, "diversity_coefficient")] {
            try check(v >= 0 && v.isFinite, n)
        }
        try check(diversity.interval >= 1 && diversity.samples >= 1 && diversity.bufferCapacity >= 1, "diversity_interval/samples/buffer")
        try check(diversity.margin >= 0 && diversity.margin.isFinite, "diversity_margin")
    }
}
