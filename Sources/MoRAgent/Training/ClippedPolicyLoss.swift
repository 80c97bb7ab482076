#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The tokens a policy-gradient loss is taken over: rows of a training tape and what happened
/// at them during the rollout.
public struct ActionTokens: Sendable {
    /// The tape row whose hidden state predicted each token.
    public var rows: [Int]
    /// The sampled token ids.
    public var tokens: [Int32]
    /// `log π_old(token)` recorded at rollout time.
    public var oldLogProbabilities: [Float]
    /// The advantage of each token (a step's advantage repeated over its tokens).
    public var advantages: [Float]
    /// Which sequence (trajectory step) each token belongs to, for sequence-mean aggregation.
    public var sequences: [Int]
    /// `log π_ref(token)` of the reference policy (LoRA off) for the KL term, when used.
    public var referenceLogProbabilities: [Float]?

    /// Action tokens; every array has one entry per token.
    public init(rows: [Int], tokens: [Int32], oldLogProbabilities: [Float], advantages: [Float], sequences: [Int],
                referenceLogProbabilities: [Float]? = nil) {
        self.rows = rows
        self.tokens = tokens
        self.oldLogProbabilities = oldLogProbabilities
        self.advantages = advantages
        self.sequences = sequences
        self.referenceLogProbabilities = referenceLogProbabilities
    }
}

/// What one evaluation of the policy loss reports.
public struct PolicyLossStatistics: Equatable, Sendable {
    /// The total loss (surrogate + KL term).
    public var loss: Double
    /// The clipped-surrogate part.
    public var policyLoss: Double
    /// `KL(π_new ‖ π_ref)` (k3 estimator), aggregated like the surrogate; 0 without a reference.
    public var referenceKL: Double
    /// Mean `log π_old − log π_new` over tokens (verl's `ppo_kl`).
    public var approximateKL: Double
    /// Fraction of tokens whose upper/lower clip was active.
    public var clipFraction: Double
    /// Mean entropy (nats) of the new policy at the action positions.
    public var entropy: Double
    /// Tokens counted.
    public var tokenCount: Int
}

/// The PPO clipped surrogate on action tokens, as verl's `compute_policy_loss` computes it
/// (DESIGN.md §6): `r = exp(log π − log π_old)`, per token `max(−A·r, −A·clip(r, 1−ε_l, 1+ε_h))`,
/// and with dual clip, for `A < 0`, `min(that, −A·c)`; aggregated as a token mean over the batch
/// or a mean over sequences of per-sequence token means; plus `β·KL(π ‖ π_ref)` with the k3
/// estimator `e^(ref−logp) − (ref−logp) − 1` when reference log-probabilities are given.
public struct ClippedPolicyLoss: Equatable, Sendable {
    /// How per-token losses become one number.
    public enum Aggregation: String, Sendable { case tokenMean = "token-mean", sequenceMeanTokenMean = "seq-mean-token-mean" }
    /// `ε_low`.
    public var clipLow: Float = 0.2
    /// `ε_high`.
    public var clipHigh: Float = 0.2
    /// Dual-clip constant `c` (> 1), or nil for none.
    public var dualClip: Float? = 3
    /// Aggregation mode.
    public var aggregation: Aggregation = .tokenMean
    /// `β` of the KL to the reference policy.
    public var klCoefficient: Float = 0

    /// verl's defaults.
    public init() {}

    /// The loss over `actions` and its gradient with respect to the tape's hidden states.
    public func lossAndGradient(hidden: Tensor, lmHead: Tensor, actions a: ActionTokens) throws -> (PolicyLossStatistics, Tensor) {
        let n = a.rows.count, c = hidden.rowLength, v = lmHead.rows
        guard n > 0 else { throw MoRAgentError.invalidArgument("no action tokens") }
        guard a.tokens.count == n, a.oldLogProbabilities.count == n, a.advantages.count == n, a.sequences.count == n,
              a.referenceLogProbabilities.map({ $0.count == n }) ?? true else {
            throw MoRAgentError.invalidArgument("action token arrays differ in length")
        }
        for i in 0..<n {
            guard (0..<hidden.rows).contains(a.rows[i]) else { throw MoRAgentError.invalidArgument("action row \(a.rows[i]) is outside the tape") }
            guard (0..<Int32(v)).contains(a.tokens[i]) else { throw MoRAgentError.invalidArgument("action token \(a.tokens[i]) is outside the vocabulary") }
            guard a.advantages[i].isFinite else { throw MoRAgentError.invalidArgument("advantage \(i) is \(a.advantages[i])") }
            guard a.oldLogProbabilities[i].isFinite, a.oldLogProbabilities[i] <= 0 else {
                throw MoRAgentError.invalidArgument("old log-probability \(i) is \(a.oldLogProbabilities[i])")
            }
            if let r = a.referenceLogProbabilities, !r[i].isFinite { throw MoRAgentError.invalidArgument("reference log-probability \(i) is \(r[i])") }
        }
        guard clipLow >= 0, clipHigh >= 0, klCoefficient >= 0, dualClip.map({ $0 > 1 }) ?? true else {
            throw MoRAgentError.invalidArgument("clip ranges and the KL coefficient must be ≥ 0, the dual clip > 1")
        }
        // Weight of each token's loss in the aggregate.
        var weight = [Double](repeating: 1 / Double(n), count: n)
        if aggregation == .sequenceMeanTokenMean {
            var counts: [Int: Int] = [:]
            for s in a.sequences { counts[s, default: 0] += 1 }
            for i in 0..<n { weight[i] = 1 / Double(counts.count) / Double(counts[a.sequences[i]]!) }
        }
        var stats = PolicyLossStatistics(loss: 0, policyLoss: 0, referenceKL: 0, approximateKL: 0, clipFraction: 0, entropy: 0, tokenCount: n)
        let dHidden = Tensor(zeros: [hidden.rows, c])
        let chunk = TokenCrossEntropy.chunkRows(vocabulary: v)
        let logits = Tensor(uninitialized: [chunk, v]), x = Tensor(uninitialized: [chunk, c]), dx = Tensor(uninitialized: [chunk, c])
        var start = 0
        while start < n {
            let end = min(n, start + chunk), m = end - start
            for i in 0..<m { (x.pointer + i * c).update(from: hidden.pointer + a.rows[start + i] * c, count: c) }
            BLAS.linear(x.pointer, rows: m, inFeatures: c, weight: lmHead.pointer, outFeatures: v, into: logits.pointer)
            for i in 0..<m {
                let t = start + i, row = logits.pointer + i * v, token = Int(a.tokens[t])
                let raw = row[token]
                let logZ = Kernels.softmax(row, count: v)           // row holds probabilities now
                var entropy = 0.0
                for j in 0..<v where row[j] > 0 { entropy -= Double(row[j]) * Double(logf(row[j])) }
                stats.entropy += entropy / Double(n)
                let logp = raw - logZ
                let advantage = a.advantages[t], ratio = expf(logp - a.oldLogProbabilities[t])
                stats.approximateKL += Double(a.oldLogProbabilities[t] - logp) / Double(n)
                // Per-token surrogate and d(loss)/d(log p).
                let unclipped = -advantage * ratio
                let clipped = -advantage * min(max(ratio, 1 - clipLow), 1 + clipHigh)
                var tokenLoss = max(unclipped, clipped)
                var slope: Float = unclipped >= clipped ? -advantage * ratio : 0
                if clipped > unclipped { stats.clipFraction += 1 / Double(n) }
                if let c3 = dualClip, advantage < 0, -advantage * c3 < tokenLoss {
                    tokenLoss = -advantage * c3
                    slope = 0
                }
                stats.policyLoss += weight[t] * Double(tokenLoss)
                if let ref = a.referenceLogProbabilities?[t] {
                    // k3: e^δ − δ − 1 with δ = ref − log p; d/d(log p) = 1 − e^δ. Aggregated like the surrogate.
                    let delta = ref - logp
                    stats.referenceKL += weight[t] * Double(expf(delta) - delta - 1)
                    slope += klCoefficient * (1 - expf(delta))
                }
                // d(log p_token)/d(logits) = onehot − p, so d(loss)/d(logits) = slope·weight·(onehot − p).
                let g = Float(weight[t]) * slope
                Kernels.scale(row, by: -g, count: v)
                row[token] += g
            }
            BLAS.gemm(transposeA: false, transposeB: false, m: m, n: c, k: v, a: logits.pointer, lda: v, b: lmHead.pointer, ldb: c, c: dx.pointer, ldc: c)
            for i in 0..<m { Kernels.add(dx.pointer + i * c, into: dHidden.pointer + a.rows[start + i] * c, count: c) }
            start = end
        }
        stats.loss = stats.policyLoss + Double(klCoefficient) * stats.referenceKL
        return (stats, dHidden)
    }
}
