/// Gradient buffers for the LoRA parameters of an expert set: `dA`, `dB` per expert and module,
/// shaped like `A` and `B`. Backward passes add into them; `zero()` clears them between steps.
public final class ExpertGradients: @unchecked Sendable {
    /// `[expert][module]`.
    public let gradients: [[LoRAModuleKey: (a: Tensor, b: Tensor)]]

    /// Zero gradients for every module of every expert of `experts`.
    public init(experts: ExpertSet) {
        gradients = experts.experts.map { e in
            e.modules.mapValues { (Tensor(zeros: $0.a.shape), Tensor(zeros: $0.b.shape)) }
        }
    }

    /// Sets every gradient to zero.
    public func zero() {
        for e in gradients { for (a, b) in e.values { a.pointer.update(repeating: 0, count: a.count); b.pointer.update(repeating: 0, count: b.count) } }
    }

    /// The gradients of expert `expert`'s module `key`.
    public subscript(expert: Int, key: LoRAModuleKey) -> (a: Tensor, b: Tensor)? { gradients[expert][key] }
}

extension ExpertGradients {
    /// `(parameter, gradient)` pairs of every expert in a fixed order (expert, module, A then B),
    /// for an optimiser.
    public func parameterPairs(_ experts: ExpertSet) -> [(value: Tensor, gradient: Tensor)] {
        var pairs: [(value: Tensor, gradient: Tensor)] = []
        for (e, expert) in experts.experts.enumerated() {
            for key in expert.modules.keys.sorted() {
                let m = expert.modules[key]!, g = gradients[e][key]!
                pairs.append((m.a, g.a))
                pairs.append((m.b, g.b))
            }
        }
        return pairs
    }
}
