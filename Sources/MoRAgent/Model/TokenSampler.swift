#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How to pick each next token, and when to stop.
public struct SamplingParameters: Equatable, Sendable {
    /// Softmax temperature; 0 means greedy (argmax).
    public var temperature: Float = 0
    /// Keep only the `topK` most likely tokens (0 = no limit).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose mass reaches `topP` (1 = no limit).
    public var topP: Float = 1
    /// Seed of the sampling RNG: the same seed gives the same tokens on every run.
    public var seed: UInt64 = 0
    /// Most tokens to generate per sequence.
    public var maxNewTokens: Int = 64
    /// Generation stops once the text contains any of these (the text keeps the stop string).
    public var stopStrings: [String] = []
    /// Token ids that end generation (kept in the ids); nil means the model's EOS tokens.
    public var stopTokenIDs: [Int32]? = nil

    /// Greedy decoding of up to 64 tokens.
    public init() {}

    /// Throws when a field is outside its meaningful range.
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0 else { throw MoRAgentError.invalidArgument("temperature must be finite and ≥ 0, got \(temperature)") }
        guard topK >= 0 else { throw MoRAgentError.invalidArgument("top_k must be ≥ 0, got \(topK)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw MoRAgentError.invalidArgument("top_p must be in (0, 1], got \(topP)") }
        guard maxNewTokens >= 0 else { throw MoRAgentError.invalidArgument("max_new_tokens must be ≥ 0, got \(maxNewTokens)") }
        guard !stopStrings.contains(where: \.isEmpty) else { throw MoRAgentError.invalidArgument("stop strings must not be empty") }
    }
}

/// One generated token with the statistics RL needs.
public struct SampledToken: Equatable, Sendable {
    /// The token id.
    public let id: Int32
    /// `log p(id)` under the model's unmodified distribution (temperature 1, no truncation):
    /// the quantity a policy-gradient update recomputes and compares against.
    public let logProbability: Float
    /// Entropy (nats) of that unmodified distribution.
    public let entropy: Float
}

/// Picks tokens from logits: greedy, or temperature → top-k → top-p (the order transformers'
/// logits warpers apply), then a draw from a seeded generator.
public struct TokenSampler: Sendable {
    /// The settings in force.
    public let parameters: SamplingParameters
    /// The generator; its state advances with every sampled (non-greedy) token.
    public var generator: SeededGenerator

    /// A sampler seeded with `parameters.seed`.
    public init(parameters: SamplingParameters) {
        self.parameters = parameters
        generator = SeededGenerator(seed: parameters.seed)
    }

    /// Samples one token from `logits[V]` (not modified).
    public mutating func sample(_ logits: UnsafePointer<Float>, count v: Int) -> SampledToken {
        // Log-softmax statistics of the raw distribution.
        let m = Kernels.max(logits, count: v)
        let (sum, weighted) = Kernels.exponentialMoments(logits, count: v, shift: m)
        let logZ = Double(m) + log(sum)
        let entropy = Float(logZ - Double(m) - weighted / sum)
        let id = parameters.temperature == 0 ? TokenSampler.argmax(logits, count: v) : draw(logits, count: v)
        return SampledToken(id: Int32(id), logProbability: Float(Double(logits[id]) - logZ), entropy: entropy)
    }

    /// The first index of the largest value (as `torch.argmax`).
    public static func argmax(_ x: UnsafePointer<Float>, count n: Int) -> Int {
        var best = 0
        for i in 1..<max(n, 1) where x[i] > x[best] { best = i }
        return best
    }

    private mutating func draw(_ logits: UnsafePointer<Float>, count v: Int) -> Int {
        let t = parameters.temperature
        var candidates: [(logit: Float, id: Int)] = (0..<v).map { (logits[$0] / t, $0) }
        if parameters.topK > 0 && parameters.topK < v {
            candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.id < $1.id) }
            // Ties with the k-th value are kept, as transformers' TopKLogitsWarper does.
            let kth = candidates[parameters.topK - 1].logit
            candidates = Array(candidates.prefix { $0.logit >= kth })
        }
        let top = candidates.map(\.logit).max() ?? 0
        var probabilities = candidates.map { Double(expf($0.logit - top)) }
        var total = probabilities.reduce(0, +)
        if parameters.topP < 1 {
            let order = candidates.indices.sorted {
                probabilities[$0] > probabilities[$1] || (probabilities[$0] == probabilities[$1] && candidates[$0].id < candidates[$1].id)
            }
            var kept: [Int] = []
            var mass = 0.0
            for i in order {
                kept.append(i)
                mass += probabilities[i] / total
                if mass >= Double(parameters.topP) { break }
            }
            candidates = kept.map { candidates[$0] }
            probabilities = kept.map { probabilities[$0] }
            total = probabilities.reduce(0, +)
        }
        var u = generator.nextUnitDouble() * total
        for (i, p) in probabilities.enumerated() {
            u -= p
            if u < 0 { return candidates[i].id }
        }
        return candidates[candidates.count - 1].id
    }
}
