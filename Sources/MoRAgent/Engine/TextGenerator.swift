/// Why a sequence stopped generating.
public enum StopReason: String, Sendable {
    /// It reached `maxNewTokens`.
    case maxNewTokens = "max_new_tokens"
    /// It produced a stop token (kept as its last id).
    case stopToken = "stop_token"
    /// Its text came to contain a stop string.
    case stopString = "stop_string"
}

/// One sequence's generated continuation.
public struct GenerationResult: Equatable, Sendable {
    /// The new token ids (a final stop token included).
    public var ids: [Int32]
    /// Their text (special tokens skipped), cut right after a stop string when one ended it.
    public var text: String
    /// `log p` of each id under the unmodified distribution.
    public var logProbabilities: [Float]
    /// Entropy (nats) of the unmodified distribution at each step.
    public var entropies: [Float]
    /// Why generation ended.
    public var stopReason: StopReason
}

/// Observes a generation: called with `(stepsDone, stepsTotal)`, where `stepsTotal` is
/// `maxNewTokens`, once before the prompts are processed (0 steps) and after every decoding step
/// (one new token per live sequence). Throwing stops generation and `generate` rethrows the
/// error: this is how a host cancels a long call (the C layer's progress/abort callback).
public typealias GenerationProgress = (_ stepsDone: Int, _ stepsTotal: Int) throws -> Void

/// Prefill-then-decode generation for a batch of prompts.
///
/// Every prompt gets its own cache and its own sampler seeded with `seed + index·φ` (φ the
/// 64-bit golden ratio), so prompt 0 with seed S gives the same tokens alone or in a batch.
/// Finished sequences leave the batch; the others go on decoding together.
struct TextGenerator {
    let engine: Engine

    /// Caches start with room for the prompt and at most this many new tokens, then grow by
    /// doubling. Reserving all of `maxNewTokens` up front would overflow or exhaust memory for
    /// the large bounds callers pass when they expect a stop token to end generation early.
    static let initialDecodeReserve = 4096

    /// Builds the adapter of one forward from the indices of the prompts in it, their new token
    /// counts and the tokens each has generated so far (nil: base model).
    typealias AdapterFactory = (_ prompts: [Int], _ tokenCounts: [Int], _ generated: [[Int32]]) throws -> DecoderAdapter?

    /// `seeds`, when given, seeds each prompt's sampler (one per prompt) instead of
    /// `seed + index·φ`: a policy's batch of episodes samples each as it would alone.
    func generate(prompts: [[Int32]], parameters p: SamplingParameters, seeds: [UInt64]? = nil, adapter: AdapterFactory? = nil,
                  progress: GenerationProgress? = nil) throws -> [GenerationResult] {
        try p.validate()
        guard !prompts.isEmpty else { throw MoRAgentError.invalidArgument("no prompts") }
        if let seeds, seeds.count != prompts.count { throw MoRAgentError.invalidArgument("\(seeds.count) seeds for \(prompts.count) prompts") }
        let decoder = engine.decoder, c = decoder.config
        let tokenizer = p.stopStrings.isEmpty ? engine.tokenizer : try engine.requireTokenizer()
        let stopTokens = Set(p.stopTokenIDs ?? c.eosTokenIDs)
        let stopBytes = p.stopStrings.map { Array($0.utf8) }
        var results = prompts.map { _ in GenerationResult(ids: [], text: "", logProbabilities: [], entropies: [], stopReason: .maxNewTokens) }
        var samplers = prompts.indices.map { i -> TokenSampler in
            var q = p
            q.seed = seeds?[i] ?? p.seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15
            return TokenSampler(parameters: q)
        }
        let caches = prompts.map { KVCache(config: c, capacity: $0.count + min(p.maxNewTokens, Self.initialDecodeReserve) + 1) }
        var active = Array(prompts.indices)
        var pending = prompts
        var stopEnds = prompts.map { _ in 0 }
        var steps = 0
        try progress?(0, p.maxNewTokens)
        while !active.isEmpty {
            if results[active[0]].ids.count >= p.maxNewTokens { break }
            let stepAdapter = try adapter?(active, active.map { pending[$0].count }, active.map { results[$0].ids })
            let out = try decoder.forward(active.map { DecoderSequence(tokens: pending[$0], cache: caches[$0]) }, logits: .last,
                                          adapter: stepAdapter)
            var still: [Int] = []
            for (row, s) in active.enumerated() {
                let token = samplers[s].sample(out.logits!.pointer + row * c.vocabularySize, count: c.vocabularySize)
                results[s].ids.append(token.id)
                results[s].logProbabilities.append(token.logProbability)
                results[s].entropies.append(token.entropy)
                pending[s] = [token.id]
                if stopTokens.contains(token.id) {
                    results[s].stopReason = .stopToken
                } else if let tokenizer, !stopBytes.isEmpty,
                          let end = Self.firstStop(stopBytes, in: tokenizer.decodedBytes(results[s].ids, skipSpecialTokens: true)) {
                    results[s].stopReason = .stopString
                    stopEnds[s] = end
                } else if results[s].ids.count < p.maxNewTokens {
                    still.append(s)
                }
            }
            active = still
            steps += 1
            try progress?(steps, p.maxNewTokens)
        }
        if let tokenizer {
            for s in results.indices {
                var bytes = tokenizer.decodedBytes(results[s].ids, skipSpecialTokens: true)
                if results[s].stopReason == .stopString { bytes.removeSubrange(stopEnds[s]...) }
                results[s].text = String(decoding: bytes, as: UTF8.self)
            }
        }
        return results
    }

    /// The end offset of the earliest-ending stop string found in `text`, if any.
    static func firstStop(_ stops: [[UInt8]], in text: [UInt8]) -> Int? {
        var best: Int?
        for stop in stops where stop.count <= text.count {
            var i = 0
            while i + stop.count <= text.count {
                if text[i] == stop[0] && Array(text[i..<(i + stop.count)]) == stop {
                    if best == nil || i + stop.count < best! { best = i + stop.count }
                    break
                }
                i += 1
            }
        }
        return best
    }
}
