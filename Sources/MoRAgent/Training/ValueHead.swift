/// PPO's critic (DESIGN.md §6): a linear value head on the frozen base's pooled hidden state,
/// `V(s) = w·pool(h) + b`, trained by regression on returns. The base stays frozen, so the
/// gradient stops at the pooled state.
public final class ValueHead: @unchecked Sendable {
    /// `[1, C]` weights and `[1]` bias.
    public let layer: LinearLayer
    /// Their gradients.
    public let weightGradient: Tensor, biasGradient: Tensor

    /// A seeded head for a model of width `hiddenSize` (PyTorch's uniform init).
    public init(hiddenSize: Int, seed: UInt64) {
        var g = SeededGenerator(seed: seed)
        layer = LinearLayer(inFeatures: hiddenSize, outFeatures: 1, generator: &g)
        weightGradient = Tensor(zeros: [1, hiddenSize])
        biasGradient = Tensor(zeros: [1])
    }

    /// `V` for each pooled state (rows of `states[N, C]`).
    public func values(_ states: [[Float]]) -> [Float] { states.map { layer.apply($0)[0] } }

    /// Mean of `½(V − target)²` over the states; its gradient is added into the head's gradients.
    /// Throws on a mismatch or a non-finite target.
    public func regress(states: [[Float]], targets: [Float]) throws -> Double {
        guard states.count == targets.count, !states.isEmpty else { throw MoRAgentError.invalidArgument("\(states.count) states for \(targets.count) value targets") }
        guard targets.allSatisfy(\.isFinite) else { throw MoRAgentError.invalidArgument("a value target is not finite") }
        let v = values(states)
        var loss = 0.0
        let n = Float(states.count)
        for (i, s) in states.enumerated() {
            let e = v[i] - targets[i]
            loss += 0.5 * Double(e * e) / Double(n)
            Kernels.addScaled(s, scale: e / n, into: weightGradient.pointer, count: s.count)
            biasGradient.pointer[0] += e / n
        }
        return loss
    }

    /// `(parameter, gradient)` pairs for an optimiser.
    public var parameterPairs: [(value: Tensor, gradient: Tensor)] { [(layer.weight, weightGradient), (layer.bias!, biasGradient)] }

    /// Sets the gradients to zero.
    public func zeroGradients() {
        weightGradient.pointer.update(repeating: 0, count: weightGradient.count)
        biasGradient.pointer[0] = 0
    }
}
