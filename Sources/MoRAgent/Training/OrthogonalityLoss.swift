/// MoRAgent's orthogonality loss between different LoRAs of the same role (§3.3, Eq. 7, the
/// `L_orth` of Eq. 8; DESIGN.md §4): `Σ_{i<j} ‖A_i A_jᵀ‖²_F + ‖B_iᵀ B_j‖²_F` in PEFT's shapes
/// (A: r×in, B: out×r, so both products are r×r), summed over each role's pairs (shared LoRA
/// included) and averaged over modules. It enters `L = L_CE + 1e-3·L_aux + 1e-4·L_orth` with
/// weight `coefficient`.
public struct OrthogonalityLoss: Equatable, Sendable {
    /// Its weight in the total (α₂ = 1e-4); 0 switches it off (no gradient is computed).
    public var coefficient: Float = 1e-4

    /// The term with weight `coefficient`.
    public init(coefficient: Float = 1e-4) {
        self.coefficient = coefficient
    }

    /// `L_orth` of `mor`, unweighted (as the SFT statistics report it); with `gradients`,
    /// `coefficient·dL_orth/dθ` is added to the LoRAs' buffers there.
    @discardableResult
    public func lossAndGradients(_ mor: MixtureOfRoles, addingGradientsTo gradients: ExpertGradients? = nil) -> Double {
        let loras = mor.loras, configuration = mor.configuration
        let modules = Double(loras.model.layerCount * configuration.targetModules.count)
        var loss = 0.0
        for role in AgentRole.allCases {
            let members = (0...configuration.routedCounts[role.rawValue]).map { mor.loraIndex(role: role, $0) }
            for (x, i) in members.enumerated() {
                for j in members[(x + 1)...] {
                    for key in loras.experts[i].modules.keys.sorted() {
                        let mi = loras.experts[i].modules[key]!, mj = loras.experts[j].modules[key]!
                        let r = mi.rank, inF = mi.inFeatures, outF = mi.outFeatures
                        let aa = Tensor(zeros: [r, r]), bb = Tensor(zeros: [r, r])     // M = A_i A_jᵀ, N = B_iᵀ B_j
                        BLAS.gemm(transposeA: false, transposeB: true, m: r, n: r, k: inF, a: mi.a.pointer, lda: inF, b: mj.a.pointer, ldb: inF, c: aa.pointer, ldc: r)
                        BLAS.gemm(transposeA: true, transposeB: false, m: r, n: r, k: outF, a: mi.b.pointer, lda: r, b: mj.b.pointer, ldb: r, c: bb.pointer, ldc: r)
                        loss += Double(Kernels.dot(aa.pointer, aa.pointer, count: r * r) + Kernels.dot(bb.pointer, bb.pointer, count: r * r)) / modules
                        guard coefficient != 0, let gi = gradients?[i, key], let gj = gradients?[j, key] else { continue }
                        let f = 2 * coefficient / Float(modules)
                        // d‖A_i A_jᵀ‖² = 2·M·A_j for A_i and 2·Mᵀ·A_i for A_j.
                        BLAS.gemm(transposeA: false, transposeB: false, m: r, n: inF, k: r, alpha: f, a: aa.pointer, lda: r, b: mj.a.pointer, ldb: inF, beta: 1, c: gi.a.pointer, ldc: inF)
                        BLAS.gemm(transposeA: true, transposeB: false, m: r, n: inF, k: r, alpha: f, a: aa.pointer, lda: r, b: mi.a.pointer, ldb: inF, beta: 1, c: gj.a.pointer, ldc: inF)
                        // d‖B_iᵀ B_j‖² = 2·B_j·Nᵀ for B_i and 2·B_i·N for B_j.
                        BLAS.gemm(transposeA: false, transposeB: true, m: outF, n: r, k: r, alpha: f, a: mj.b.pointer, lda: r, b: bb.pointer, ldb: r, beta: 1, c: gi.b.pointer, ldc: r)
                        BLAS.gemm(transposeA: false, transposeB: false, m: outF, n: r, k: r, alpha: f, a: mi.b.pointer, lda: r, b: bb.pointer, ldb: r, beta: 1, c: gj.b.pointer, ldc: r)
                    }
                }
            }
        }
        return loss
    }
}
