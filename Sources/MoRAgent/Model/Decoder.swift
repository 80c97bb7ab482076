/// One sequence's part of a batched forward: its new tokens and the cache they extend.
public struct DecoderSequence {
    /// Token ids to process, in order (at least one).
    public var tokens: [Int32]
    /// The sequence's cache; the tokens take positions `cache.length ..< cache.length + tokens.count`.
    public var cache: KVCache

    /// Pairs `tokens` with `cache`.
    public init(tokens: [Int32], cache: KVCache) {
        self.tokens = tokens
        self.cache = cache
    }
}

/// Which rows of logits a forward computes (the LM head is the largest product at decode time,
/// and prefill rarely needs more than the last position's logits).
public enum LogitSelection: Sendable {
    /// Every new token's logits.
    case all
    /// Only each sequence's last new token.
    case last
    /// None (hidden states only).
    case none
}

/// What a forward returns.
public struct DecoderOutput {
    /// `[N, C]`: the final (normed) hidden state of every new token, sequences back to back.
    public let hidden: Tensor
    /// `[N, V]` for `.all`, `[B, V]` for `.last`, nil for `.none`.
    public let logits: Tensor?
    /// The rows of `hidden` (and of `.all` logits) that belong to each sequence.
    public let rowRanges: [Range<Int>]
}

/// A Llama-family decoder over f32 weights (DESIGN.md §2).
///
/// A batch is packed, not padded: the new tokens of every sequence are stacked into one
/// `[N, C]` matrix so each projection is one GEMM over real tokens only, and attention runs per
/// sequence against its own cache. A row's result therefore never depends on what else is in
/// the batch. The decoder is immutable and may be shared by threads; caches may not.
public final class Decoder: @unchecked Sendable {
    /// Shapes and options.
    public let config: ModelConfig
    /// The frozen weights.
    public let weights: DecoderWeights
    let rotary: RotaryEmbedding
    private let scratchPool = DecoderScratchPool()

    /// A decoder over `weights`.
    public init(weights: DecoderWeights) {
        config = weights.config
        self.weights = weights
        rotary = RotaryEmbedding(config: weights.config)
    }

    /// Loads `config.json` and the weights of a Hugging Face model folder.
    public convenience init(folder: String) throws {
        let config = try ModelConfig.load(folder: folder)
        self.init(weights: try DecoderWeights.load(folder: folder, config: config))
    }

    /// Runs the new tokens of `sequences` through the model, appending their keys and values to
    /// each sequence's cache; `adapter`, when given, adds its deltas to every projection (rows in
    /// the packed order of `sequences`). Throws (changing no cache) on an empty sequence, a token
    /// id outside the vocabulary, or one cache given twice.
    public func forward(_ sequences: [DecoderSequence], logits selection: LogitSelection = .last,
                        adapter: DecoderAdapter? = nil) throws -> DecoderOutput {
        let c = config
        guard !sequences.isEmpty else { throw MoRAgentError.invalidArgument("a forward needs at least one sequence") }
        var seen = Set<ObjectIdentifier>()
        var ranges: [Range<Int>] = []
        var n = 0
        for (s, seq) in sequences.enumerated() {
            guard !seq.tokens.isEmpty else { throw MoRAgentError.invalidArgument("sequence \(s) has no tokens") }
            guard seen.insert(ObjectIdentifier(seq.cache)).inserted else {
                throw MoRAgentError.invalidArgument("sequence \(s) shares its cache with an earlier sequence")
            }
            guard seq.cache.width == c.keyValueWidth, seq.cache.layerCount == c.layerCount else {
                throw MoRAgentError.invalidArgument("sequence \(s)'s cache was made for another model shape")
            }
            for t in seq.tokens where t < 0 || Int(t) >= c.vocabularySize {
                throw MoRAgentError.invalidArgument("token id \(t) is outside the vocabulary of \(c.vocabularySize)")
            }
            ranges.append(n..<(n + seq.tokens.count))
            n += seq.tokens.count
        }
        try adapter?.begin(rowCount: n)
        let width = c.hiddenSize, qkvWidth = c.qkvWidth, hd = c.headCount * c.headDimension
        let inter = c.intermediateSize, half = c.headDimension / 2

        // Activations, [rows, channels], borrowed for this call.
        let scratch = scratchPool.borrow()
        defer { scratchPool.giveBack(scratch) }
        let x = scratch.buffer(.residual, count: n * width)          // residual stream [N, C]
        let h = scratch.buffer(.normed, count: n * width)            // normed input of a sub-block [N, C]
        let qkv = scratch.buffer(.qkv, count: n * qkvWidth)          // [N, (H+2KVH)·D]
        let attention = scratch.buffer(.attention, count: n * hd)    // [N, H·D]
        let gateUp = scratch.buffer(.gateUp, count: n * 2 * inter)   // [N, 2I]
        let act = scratch.buffer(.activation, count: n * inter)      // [N, I]
        let cosines = scratch.buffer(.cosines, count: n * half), sines = scratch.buffer(.sines, count: n * half)
        var maxScores = 0
        for (s, seq) in sequences.enumerated() {
            let count = ranges[s].count
            seq.cache.reserve(count)
            maxScores = max(maxScores, Attention.scoreCapacity(n: count, length: seq.cache.length + count))
            for (i, t) in seq.tokens.enumerated() {
                let row = ranges[s].lowerBound + i
                (x + row * width).update(from: weights.embedding.pointer + Int(t) * width, count: width)
                rotary.angles(position: seq.cache.length + i, cos: cosines + row * half, sin: sines + row * half)
            }
        }
        let scores = scratch.buffer(.scores, count: maxScores)

        for (layerIndex, layer) in weights.layers.enumerated() {
            // Attention block: x += o_proj(attn(rope(qkv(norm(x))))).
            Kernels.rmsNorm(x, rows: n, columns: width, weight: layer.inputNorm.pointer, eps: c.rmsNormEps, into: h)
            BLAS.linear(h, rows: n, inFeatures: width, weight: layer.qkv.pointer, bias: layer.qkvBias?.pointer, outFeatures: qkvWidth, into: qkv)
            if let adapter {
                for kind in [ProjectionKind.q, .k, .v] {
                    let columns = layer.slice(of: kind, config: c).rows
                    adapter.addDelta(layer: layerIndex, kind: kind, input: h, inputStride: width,
                                     output: qkv + columns.lowerBound, outputStride: qkvWidth, rows: n)
                }
            }
            for r in 0..<n {
                let row = qkv + r * qkvWidth
                Kernels.rotary(row, heads: c.headCount, headDimension: c.headDimension,
                               cos: cosines + r * half, sin: sines + r * half)
                Kernels.rotary(row + hd, heads: c.keyValueHeadCount, headDimension: c.headDimension,
                               cos: cosines + r * half, sin: sines + r * half)
            }
            for (s, seq) in sequences.enumerated() {
                let r0 = ranges[s].lowerBound, count = ranges[s].count, l0 = seq.cache.length
                let keys = seq.cache.keys(layer: layerIndex), values = seq.cache.values(layer: layerIndex)
                let kvw = c.keyValueWidth
                for i in 0..<count {
                    let src = qkv + (r0 + i) * qkvWidth
                    (keys + (l0 + i) * kvw).update(from: src + hd, count: kvw)
                    (values + (l0 + i) * kvw).update(from: src + hd + kvw, count: kvw)
                }
                Attention.forward(config: c, queries: qkv + r0 * qkvWidth, qStride: qkvWidth, count: count,
                                  firstPosition: l0, keys: keys, values: values, scores: scores,
                                  into: attention + r0 * hd, outStride: hd)
            }
            BLAS.linear(attention, rows: n, inFeatures: hd, weight: layer.output.pointer, outFeatures: width,
                        into: x, accumulate: true)
            if let b = layer.outputBias { for r in 0..<n { Kernels.add(b.pointer, into: x + r * width, count: width) } }
            adapter?.addDelta(layer: layerIndex, kind: .o, input: attention, inputStride: hd, output: x, outputStride: width, rows: n)

            // MLP block: x += down(silu(gate(norm(x))) ⊙ up(norm(x))).
            Kernels.rmsNorm(x, rows: n, columns: width, weight: layer.postAttentionNorm.pointer, eps: c.rmsNormEps, into: h)
            BLAS.linear(h, rows: n, inFeatures: width, weight: layer.gateUp.pointer, bias: layer.gateUpBias?.pointer, outFeatures: 2 * inter, into: gateUp)
            if let adapter {
                adapter.addDelta(layer: layerIndex, kind: .gate, input: h, inputStride: width, output: gateUp, outputStride: 2 * inter, rows: n)
                adapter.addDelta(layer: layerIndex, kind: .up, input: h, inputStride: width, output: gateUp + inter, outputStride: 2 * inter, rows: n)
            }
            Kernels.siluMultiply(rows: n, gateUp: gateUp, into: act, width: inter)
            BLAS.linear(act, rows: n, inFeatures: inter, weight: layer.down.pointer, outFeatures: width,
                        into: x, accumulate: true)
            if let b = layer.downBias { for r in 0..<n { Kernels.add(b.pointer, into: x + r * width, count: width) } }
            adapter?.addDelta(layer: layerIndex, kind: .down, input: act, inputStride: inter, output: x, outputStride: width, rows: n)
        }
        for (s, seq) in sequences.enumerated() { seq.cache.advance(by: ranges[s].count) }

        let hidden = Tensor(uninitialized: [n, width])
        Kernels.rmsNorm(x, rows: n, columns: width, weight: weights.finalNorm.pointer, eps: c.rmsNormEps, into: hidden.pointer)
        let logits: Tensor?
        switch selection {
        case .none:
            logits = nil
        case .all:
            let l = Tensor(uninitialized: [n, c.vocabularySize])
            BLAS.linear(hidden.pointer, rows: n, inFeatures: width, weight: weights.lmHead.pointer, outFeatures: c.vocabularySize, into: l.pointer)
            logits = l
        case .last:
            let b = sequences.count
            let l = Tensor(uninitialized: [b, c.vocabularySize])
            var rows = hidden.pointer
            if b != n {
                rows = scratch.buffer(.lastRows, count: b * width)
                for (s, r) in ranges.enumerated() { (rows + s * width).update(from: hidden.pointer + (r.upperBound - 1) * width, count: width) }
            }
            BLAS.linear(rows, rows: b, inFeatures: width, weight: weights.lmHead.pointer, outFeatures: c.vocabularySize, into: l.pointer)
            logits = l
        }
        return DecoderOutput(hidden: hidden, logits: logits, rowRanges: ranges)
    }
}
