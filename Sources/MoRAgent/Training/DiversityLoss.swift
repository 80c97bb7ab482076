#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A recent (state, action) pair an expert produced: the prompt and action token ids.
public struct ExpertSample: Equatable, Sendable {
    /// Prompt ids.
    public var prompt: [Int32]
    /// Action ids (at least one).
    public var action: [Int32]

    /// A sample.
    public init(prompt: [Int32], action: [Int32]) {
        self.prompt = prompt
        self.action = action
    }
}

/// Per-expert ring buffers of recent samples (PA-MoE §Regularization: the last 1,000 pairs per
/// expert), from which the diversity loss draws its states.
public struct ExpertSampleBuffer: Sendable {
    /// Samples kept per expert.
    public let capacity: Int
    /// `[expert]` samples, oldest first.
    public private(set) var samples: [[ExpertSample]]

    /// Empty buffers for `experts` experts.
    public init(experts: Int, capacity: Int = 1000) {
        self.capacity = max(1, capacity)
        samples = Array(repeating: [], count: experts)
    }

    /// Records a sample of `expert` (the oldest goes when full).
    public mutating func record(_ sample: ExpertSample, expert: Int) throws {
        guard samples.indices.contains(expert) else { throw MoRAgentError.invalidArgument("expert \(expert) is outside 0..<\(samples.count)") }
        guard !sample.action.isEmpty, !sample.prompt.isEmpty else { throw MoRAgentError.invalidArgument("a sample needs prompt and action tokens") }
        samples[expert].append(sample)
        if samples[expert].count > capacity { samples[expert].removeFirst(samples[expert].count - capacity) }
    }

    /// `count` samples drawn uniformly (with replacement) from all buffers together.
    public func draw(_ count: Int, generator: inout SeededGenerator) -> [ExpertSample] {
        let all = samples.flatMap { $0 }
        guard !all.isEmpty else { return [] }
        return (0..<count).map { _ in all[Int(generator.next() % UInt64(all.count))] }
    }
}

/// PA-MoE's diversity loss (Eq. 6): `L_div = Σ_{i≠j} max(0, τ_div − KL(π_i ‖ π_j))` with margin
/// 0.1, where `π_k` is expert k's next-token distribution at each action token of a sampled
/// state, averaged over the states' action tokens. Every `interval` updates it draws `samples`
/// states from per-expert buffers of the last `bufferCapacity` (state, action) pairs (PA-MoE
/// §Regularization). Gradients go to the experts only (the router is not involved,
/// "detached"). It enters `L = L_RL + 0.01·L_div + 0.001·L_bal + 1.0·L_switch` with weight
/// `coefficient`.
public struct DiversityLoss: Equatable, Sendable {
    /// Its weight in the total (0.01); 0 switches it off (nothing is computed).
    public var coefficient: Float = 0.01
    /// Updates between evaluations (100).
    public var interval = 100
    /// States drawn per evaluation (64).
    public var samples = 64
    /// Samples kept per expert (1,000).
    public var bufferCapacity = 1000
    /// `τ_div` (0.1).
    public var margin = 0.1

    /// The paper's settings, with weight `coefficient`.
    public init(coefficient: Float = 0.01) {
        self.coefficient = coefficient
    }

    /// `coefficient·L_div` over `states` and, with `gradients`, `coefficient·dL_div/dθ` added to
    /// every expert's buffers there. `activationMemory` is what the experts' forwards keep for
    /// the backward (the loss keeps one tape per expert).
    public func lossAndGradients(decoder: Decoder, experts: ExpertSet, states: [ExpertSample], activationMemory: ActivationMemory = .store,
                                 addingGradientsTo gradients: ExpertGradients?) throws -> Double {
        guard coefficient != 0 else { return 0 }
        let unweighted = gradients.map { _ in ExpertGradients(experts: experts) }
        let value = try unweightedLoss(decoder: decoder, experts: experts, states: states, activationMemory: activationMemory, gradients: unweighted)
        if let gradients, let unweighted {
            for (mine, theirs) in zip(gradients.parameterPairs(experts), unweighted.parameterPairs(experts)) {
                Kernels.addScaled(theirs.gradient.pointer, scale: coefficient, into: mine.gradient.pointer, count: mine.gradient.count)
            }
        }
        return Double(coefficient) * value
    }

    /// `L_div` and, into `gradients`, its gradient.
    func unweightedLoss(decoder: Decoder, experts: ExpertSet, states: [ExpertSample], activationMemory: ActivationMemory,
                        gradients: ExpertGradients?) throws -> Double {
        let k = experts.count, v = decoder.config.vocabularySize
        guard k >= 2, !states.isEmpty else { return 0 }
        var total = 0.0
        let tokenCount = Double(states.reduce(0) { $0 + $1.action.count })
        for state in states {
            let sequence = state.prompt + state.action
            let rows = (state.prompt.count - 1)..<(sequence.count - 1)           // rows predicting the action tokens
            var tapes: [TrainingTape] = [], adapters: [ExpertMixtureAdapter] = []
            var logProbs: [[[Double]]] = []                                      // [expert][row][V]
            for e in 0..<k {
                let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.expert(e)], tokenCounts: [sequence.count])
                adapter.gradients = gradients
                let tape = try decoder.trainingForward([sequence], adapter: adapter, activationMemory: activationMemory)
                let logits = Tensor(uninitialized: [rows.count, v])
                BLAS.linear(tape.hidden.pointer + rows.lowerBound * decoder.config.hiddenSize, rows: rows.count, inFeatures: decoder.config.hiddenSize,
                            weight: decoder.weights.lmHead.pointer, outFeatures: v, into: logits.pointer)
                logProbs.append((0..<rows.count).map { r in
                    let row = logits.pointer + r * v
                    let m = Kernels.max(row, count: v)
                    let lse = Double(m) + log((0..<v).reduce(0.0) { $0 + exp(Double(row[$1] - m)) })
                    return (0..<v).map { Double(row[$0]) - lse }
                })
                tapes.append(tape); adapters.append(adapter)
            }
            // dL/dlogits per expert and row, from every active hinge.
            var dLogits = Array(repeating: Array(repeating: [Double](repeating: 0, count: v), count: rows.count), count: k)
            for i in 0..<k {
                for j in 0..<k where i != j {
                    for r in 0..<rows.count {
                        let lp = logProbs[i][r], lq = logProbs[j][r]
                        var kl = 0.0
                        for t in 0..<v { kl += exp(lp[t]) * (lp[t] - lq[t]) }
                        guard kl < margin else { continue }
                        total += (margin - kl) / tokenCount
                        // −KL: d/da = −p⊙(log p − log q − KL); d/db = −(q − p).
                        for t in 0..<v {
                            let p = exp(lp[t]), q = exp(lq[t])
                            dLogits[i][r][t] -= p * (lp[t] - lq[t] - kl) / tokenCount
                            dLogits[j][r][t] -= (q - p) / tokenCount
                        }
                    }
                }
            }
            guard gradients != nil else { continue }
            for e in 0..<k {
                let dHidden = Tensor(zeros: [sequence.count, decoder.config.hiddenSize])
                let d = Tensor(shape: [rows.count, v], values: dLogits[e].flatMap { $0.map(Float.init) })
                BLAS.gemm(transposeA: false, transposeB: false, m: rows.count, n: decoder.config.hiddenSize, k: v, a: d.pointer, lda: v,
                          b: decoder.weights.lmHead.pointer, ldb: decoder.config.hiddenSize,
                          c: dHidden.pointer + rows.lowerBound * decoder.config.hiddenSize, ldc: decoder.config.hiddenSize)
                try decoder.backward(tapes[e], hiddenGradient: dHidden)
            }
        }
        return total
    }
}
