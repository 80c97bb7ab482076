/// The objective of Mixture-of-Roles SFT (MoRAgent Eq. 8, DESIGN.md §4):
/// `L = L_CE + α₁·L_aux + α₂·L_orth` with α₁ = 1e-3 and α₂ = 1e-4. `L_CE` is `TokenCrossEntropy`
/// on the agent tokens, with weight 1 and no settings; each other term carries its coefficient,
/// and a coefficient of 0 switches that term off (no value in `L`, no gradient).
public struct MixtureOfRolesObjective: Equatable, Sendable {
    /// `α₁·L_aux`, per role (1e-3).
    public var loadBalancing = RoleLoadBalancingLoss()
    /// `α₂·L_orth`, between a role's LoRAs (1e-4).
    public var orthogonality = OrthogonalityLoss()

    /// The paper's coefficients.
    public init() {}

    /// `L` from its terms' unweighted values.
    public func loss(crossEntropy: Double, loadBalancing aux: Double, orthogonality orth: Double) -> Double {
        crossEntropy + Double(loadBalancing.coefficient) * aux + Double(orthogonality.coefficient) * orth
    }
}
