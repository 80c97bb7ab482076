/// Token-level routing (PA-MoE's token baseline, Switch/Mixtral style): each token's hidden
/// state goes through a bias-free linear gate `W[K, C]`, softmax, the top-k experts are kept
/// and their weights renormalised to sum to one. Either one gate per layer, reading that layer's
/// normed input, or a single gate at layer 0 whose choice every layer reuses.
public final class TokenTopKRouter: @unchecked Sendable {
    /// The experts routed among.
    public let experts: ExpertSet
    /// Experts kept per token.
    public let topK: Int
    /// One gate per layer (true) or one shared decision per token (false).
    public let perLayer: Bool
    /// The gates: `layerCount` of them, or one.
    public let gates: [LinearLayer]

    /// A seeded router over `experts` (PyTorch-style uniform init of the gates).
    public init(experts: ExpertSet, topK: Int, perLayer: Bool = true, seed: UInt64) throws {
        guard experts.count > 0, (1...experts.count).contains(topK) else {
            throw MoRAgentError.invalidArgument("top-k must be in 1...\(experts.count), got \(topK)")
        }
        self.experts = experts
        self.topK = topK
        self.perLayer = perLayer
        var g = SeededGenerator(seed: seed)
        gates = (0..<(perLayer ? experts.model.layerCount : 1)).map { _ in
            LinearLayer(inFeatures: experts.model.hiddenSize, outFeatures: experts.count, bias: false, generator: &g)
        }
    }

    /// The top-k of `softmax(logits)`, renormalised; ties keep the lower expert id.
    public static func topK(_ logits: [Float], k: Int) -> [(expert: Int, weight: Float)] {
        var p = logits
        p.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: $0.count) }
        let order = p.indices.sorted { p[$0] > p[$1] || (p[$0] == p[$1] && $0 < $1) }.prefix(k)
        let total = order.reduce(Float(0)) { $0 + p[$1] }
        return order.map { ($0, p[$0] / total) }
    }

    /// The gradient of the router logits `z` of one token, given `p = softmax(z)`, the kept
    /// top-k entries with their renormalised weights `w = p/S`, and `g[i] = dL/dw_i` for the kept
    /// ones (plus `extra[i]`, a direct `dL/dp_i` such as a load-balancing term):
    /// `dL/dp_i = (g_i − Σ_j w_j g_j)/S` for kept `i`, then `dz = p ⊙ (dp − ⟨dp, p⟩)`.
    static func logitGradient(probabilities p: [Float], kept: [(expert: Int, weight: Float)], weightGradient g: (Int) -> Float,
                              extra: [Float]? = nil) -> [Float] {
        let mass = kept.reduce(Float(0)) { $0 + p[$1.expert] }
        let mean = kept.reduce(Float(0)) { $0 + $1.weight * g($1.expert) }
        var dp = extra ?? [Float](repeating: 0, count: p.count)
        for (i, _) in kept { dp[i] += (g(i) - mean) / mass }
        let inner = zip(dp, p).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        return (0..<p.count).map { p[$0] * (dp[$0] - inner) }
    }

    /// An adapter for one forward; it records the experts chosen for every row at every layer.
    public func adapter() -> TokenRoutedAdapter { TokenRoutedAdapter(router: self) }
}

/// Gradients of a token router's gates (one per gate, shaped `[K, C]`).
public final class TokenRouterGradients: @unchecked Sendable {
    /// Per gate.
    public let gates: [Tensor]
    /// Zero gradients for `router`.
    public init(router: TokenTopKRouter) { gates = router.gates.map { Tensor(zeros: $0.weight.shape) } }
    /// `(parameter, gradient)` pairs.
    public func parameterPairs(_ router: TokenTopKRouter) -> [(value: Tensor, gradient: Tensor)] { zip(router.gates.map(\.weight), gates).map { ($0, $1) } }
}

/// The per-forward side of `TokenTopKRouter`: routes at each layer's first projection (q,
/// whose input is the layer's normed hidden state), then applies the chosen experts to all of
/// that layer's projections.
public final class TokenRoutedAdapter: TrainableAdapter {
    let router: TokenTopKRouter
    /// `choices[layer][row]`: the experts and weights used (one entry for a shared router).
    public private(set) var choices: [[[(expert: Int, weight: Float)]]] = []
    /// Where `backward` accumulates the experts' gradients.
    public var expertGradients: ExpertGradients?
    /// Where `backward` accumulates the gates' gradients.
    public var routerGradients: TokenRouterGradients?
    private var adapters: [ExpertMixtureAdapter] = []
    private var probabilities: [[[Float]]] = []                  // [decision][row][K]
    private var weightGradients: [[[Float]]] = []                // [decision][row][K]: dL/dw

    init(router: TokenTopKRouter) { self.router = router }

    private func decision(for layer: Int) -> Int { router.perLayer ? layer : 0 }

    public func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        if kind == .q && (router.perLayer || layer == 0) {
            let gate = router.gates[decision(for: layer)]
            let k = router.experts.count
            let logits = Tensor(uninitialized: [rows, k])
            BLAS.linear(input, rows: rows, inFeatures: gate.inFeatures, xStride: inputStride, weight: gate.weight.pointer,
                        outFeatures: k, into: logits.pointer, yStride: k)
            var probs: [[Float]] = []
            let weights = (0..<rows).map { r -> [(expert: Int, weight: Float)] in
                let z = Array(UnsafeBufferPointer(start: logits.pointer + r * k, count: k))
                var p = z
                p.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: k) }
                probs.append(p)
                return TokenTopKRouter.topK(z, k: router.topK)
            }
            choices.append(weights)
            probabilities.append(probs)
            weightGradients.append(Array(repeating: [Float](repeating: 0, count: k), count: rows))
            adapters.append(ExpertMixtureAdapter(experts: router.experts, checkedRowWeights: weights))
        }
        replayDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
    }

    /// Applies the mixture of the decision `addDelta` recorded for `layer`, without routing anew
    /// (so `choices` keeps one decision per layer, or one in all, however often a layer is
    /// recomputed).
    public func replayDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                            output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        adapters[decision(for: layer)].addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride,
                                                output: output, outputStride: outputStride, rows: rows)
    }

    /// Expert gradients as for a fixed mixture; `dL/dw` per row and chosen expert accumulates over
    /// the projections a decision covers, and at the decision's own q projection (visited last
    /// by the backward) it goes through the renormalised top-k and the softmax into the gate:
    /// `dL/dp_i = (g_i − Σ_j w_j g_j)/S` for kept `i`, `dz = p ⊙ (dp − ⟨dp, p⟩)`, `dW += dz ⊗ h`,
    /// `dh += Wᵀ dz`.
    public func backward(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         outputGradient: UnsafePointer<Float>, outputGradientStride: Int,
                         inputGradient: UnsafeMutablePointer<Float>, inputGradientStride: Int, rows: Int) {
        let d = decision(for: layer)
        let adapter = adapters[d]
        adapter.gradients = expertGradients
        adapter.backward(layer: layer, kind: kind, input: input, inputStride: inputStride, outputGradient: outputGradient,
                         outputGradientStride: outputGradientStride, inputGradient: inputGradient, inputGradientStride: inputGradientStride, rows: rows)
        let key = LoRAModuleKey(layer: layer, kind: kind)
        for (e, expert) in router.experts.experts.enumerated() {
            guard let m = expert.modules[key] else { continue }
            let users = (0..<rows).filter { row in choices[d][row].contains { $0.expert == e } }
            let values = m.weightGradients(rows: users, input: input, inputStride: inputStride,
                                           outputGradient: outputGradient, outputGradientStride: outputGradientStride)
            for (row, value) in zip(users, values) { weightGradients[d][row][e] += value }
        }
        guard kind == .q && (router.perLayer || layer == 0) else { return }
        let gate = router.gates[d], k = router.experts.count
        for row in 0..<rows {
            let g = weightGradients[d][row]
            let dzs = TokenTopKRouter.logitGradient(probabilities: probabilities[d][row], kept: choices[d][row], weightGradient: { g[$0] })
            for i in 0..<k {
                let dz = dzs[i]
                guard dz != 0 else { continue }
                Kernels.addScaled(gate.weight.pointer + i * gate.inFeatures, scale: dz, into: inputGradient + row * inputGradientStride, count: gate.inFeatures)
                if let dW = routerGradients?.gates[d] { Kernels.addScaled(input + row * inputStride, scale: dz, into: dW.pointer + i * gate.inFeatures, count: gate.inFeatures) }
            }
        }
    }
}
