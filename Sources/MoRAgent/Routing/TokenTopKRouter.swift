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

    /// An adapter for one forward; it records the experts chosen for every row at every layer.
    public func adapter() -> TokenRoutedAdapter { TokenRoutedAdapter(router: self) }
}

/// The per-forward side of `TokenTopKRouter`: routes at each layer's first projection (q,
/// whose input is the layer's normed hidden state), then applies the chosen experts to all of
/// that layer's projections.
public final class TokenRoutedAdapter: DecoderAdapter {
    let router: TokenTopKRouter
    private var current: ExpertMixtureAdapter?
    /// `choices[layer][row]`: the experts and weights used (one entry for a shared router).
    public private(set) var choices: [[[(expert: Int, weight: Float)]]] = []

    init(router: TokenTopKRouter) { self.router = router }

    public func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        if kind == .q && (router.perLayer || layer == 0) {
            let gate = router.gates[router.perLayer ? layer : 0]
            let k = router.experts.count
            let logits = Tensor(uninitialized: [rows, k])
            BLAS.linear(input, rows: rows, inFeatures: gate.inFeatures, xStride: inputStride, weight: gate.weight.pointer,
                        outFeatures: k, into: logits.pointer, yStride: k)
            let weights = (0..<rows).map { r in TokenTopKRouter.topK(Array(UnsafeBufferPointer(start: logits.pointer + r * k, count: k)), k: router.topK) }
            choices.append(weights)
            current = ExpertMixtureAdapter(experts: router.experts, checkedRowWeights: weights)
        }
        current?.addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
    }
}
