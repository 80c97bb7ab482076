/// MoRAgent's per-role load-balancing loss (§3.3, the `L_aux` of Eq. 8; Switch Transformer's
/// auxiliary loss; DESIGN.md §4): per role and module, `E·Σ_i f_i·P_i` over the role's E routed
/// LoRAs, with `f_i` the share of the role's top-k slots given to LoRA i and `P_i` its mean
/// router probability over the role's tokens; summed over roles and averaged over modules. It
/// enters `L = L_CE + 1e-3·L_aux + 1e-4·L_orth` with weight `coefficient`.
///
/// A `MixtureOfRolesAdapter` evaluates it during its forward (`loadBalancingLoss`, unweighted,
/// as the SFT statistics report it) and adds its weighted gradient in its backward.
public struct RoleLoadBalancingLoss: Equatable, Sendable {
    /// Its weight in the total (α₁ = 1e-3); 0 switches it off.
    public var coefficient: Float = 1e-3

    /// The term with weight `coefficient`.
    public init(coefficient: Float = 1e-3) {
        self.coefficient = coefficient
    }

    /// The unweighted share of one role at one of `modules` modules: `E·Σ_i f_i·P_i / modules`.
    public func value(fractions f: [Double], meanProbabilities p: [Double], modules: Int) -> Double {
        Double(f.count) * zip(f, p).reduce(0) { $0 + $1.0 * $1.1 } / Double(modules)
    }

    /// `coefficient·∂/∂p_i` of that share for one of the role's `tokens` tokens (`f` is a hard
    /// count, held constant), i.e. `coefficient·E·f_i / tokens / modules`; nil when the
    /// coefficient is 0 or the role has no routed LoRA.
    public func probabilityGradient(fractions f: [Double], tokens: Int, modules: Int) -> [Float]? {
        guard coefficient != 0, !f.isEmpty else { return nil }
        return f.indices.map { coefficient * Float(Double(f.count) * f[$0] / Double(tokens) / Double(modules)) }
    }
}
