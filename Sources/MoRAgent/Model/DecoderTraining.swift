/// What a training forward keeps for the backward (DESIGN.md §5: store only the activations the
/// backward needs; recompute where memory says so).
public enum ActivationMemory: Sendable {
    /// Keep each layer's input, q/k/v, attention output and softmax normalisers, post-attention
    /// residual and gate/up projections: the backward reads them and nothing is computed twice.
    case store
    /// Keep only each layer's input; the backward recomputes the layer's other activations from
    /// it right before that layer's backward, the adapter replaying the decisions it recorded
    /// (`TrainableAdapter.replayDelta`). Per layer and row that keeps `C` floats instead of
    /// `2C + 2(H+KVH)·D + H + 2I` (a fifteenth on Qwen2.5-0.5B's shape), for about one more forward
    /// (without the down projections) per backward. Gradients are bit-identical to `.store`: the
    /// recompute runs the same kernels on the same inputs.
    case recompute
}

/// The activations of one layer that `Decoder.backward` reads (shapes `[N, ·]` over the packed
/// rows). Norm outputs, attention probabilities and LoRA intermediates are recomputed instead:
/// they are cheap next to the products that produce these.
struct LayerActivations {
    /// `[N, (H+2·KVH)·D]` q, k, v after the adapter and RoPE.
    let qkv: Tensor
    /// `[N, H·D]` attention output (the input of o_proj).
    let attention: Tensor
    /// `[N, H]` each row's and head's attention softmax normaliser (`Attention.forward`).
    let logSumExp: Tensor
    /// `[N, C]` residual stream after the attention block.
    let middle: Tensor
    /// `[N, 2I]` gate and up projections before SwiGLU.
    let gateUp: Tensor

    /// Buffers for `n` rows of a model of `config`, for `Decoder.layerActivations` to fill.
    init(rows n: Int, config c: ModelConfig) {
        qkv = Tensor(uninitialized: [n, c.qkvWidth])
        attention = Tensor(uninitialized: [n, c.headCount * c.headDimension])
        logSumExp = Tensor(uninitialized: [n, c.headCount])
        middle = Tensor(uninitialized: [n, c.hiddenSize])
        gateUp = Tensor(uninitialized: [n, 2 * c.intermediateSize])
    }

    /// Floats held.
    var count: Int { qkv.count + attention.count + logSumExp.count + middle.count + gateUp.count }
}

/// What a training forward keeps of one layer.
struct LayerTape {
    /// `[N, C]` residual stream entering the layer.
    let input: Tensor
    /// The rest of what the backward reads; nil under `ActivationMemory.recompute`.
    let activations: LayerActivations?
}

/// A training forward's record: enough to run `Decoder.backward`.
public final class TrainingTape {
    /// The sequences, each starting at position 0.
    public let sequences: [[Int32]]
    /// Rows of each sequence in the packed batch.
    public let rowRanges: [Range<Int>]
    /// `[N, C]` final normed hidden states (the LM head's input).
    public let hidden: Tensor
    /// The adapter the forward ran with.
    public let adapter: TrainableAdapter?
    /// What the forward kept, and so what the backward recomputes.
    public let activationMemory: ActivationMemory
    /// Whether `Decoder.backward` has run on this tape: it runs once, because it writes the
    /// MLP's gate/up gradients over the kept projections (as PyTorch frees a graph after its
    /// backward unless told to retain it).
    public fileprivate(set) var isConsumed = false
    let layers: [LayerTape]
    /// `[N, C]` residual stream before the final norm.
    let final: Tensor

    init(sequences: [[Int32]], rowRanges: [Range<Int>], hidden: Tensor, adapter: TrainableAdapter?, activationMemory: ActivationMemory,
         layers: [LayerTape], final: Tensor) {
        self.sequences = sequences
        self.rowRanges = rowRanges
        self.hidden = hidden
        self.adapter = adapter
        self.activationMemory = activationMemory
        self.layers = layers
        self.final = final
    }

    /// Number of packed rows `N`.
    public var rowCount: Int { hidden.rows }

    /// Bytes of the decoder activations the tape holds (every layer's kept tensors, `final` and
    /// `hidden`; not what the adapter records): the memory `ActivationMemory` trades for compute.
    public var byteCount: Int {
        let floats = layers.reduce(hidden.count + final.count) { $0 + $1.input.count + ($1.activations?.count ?? 0) }
        return floats * MemoryLayout<Float>.stride
    }
}

/// How a layer's forward applies the adapter.
enum AdapterPass {
    /// The training forward: the adapter decides and records (`addDelta`).
    case record
    /// The backward's recompute: the adapter reuses what it recorded (`replayDelta`).
    case replay
}

extension TrainableAdapter {
    /// `addDelta` or `replayDelta`, as `pass` says.
    func delta(_ pass: AdapterPass, layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
               output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        switch pass {
        case .record: addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
        case .replay: replayDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
        }
    }
}

/// Gradients of base weights, for full fine-tuning (DESIGN.md §5: a baseline, and training tiny
/// base models from scratch). Same shapes as `DecoderWeights`.
public final class DecoderGradients: @unchecked Sendable {
    /// `dW` in the layout of `weights` (tied embeddings share one gradient).
    public let weights: DecoderWeights

    /// Zero gradients for a model of `config`.
    public init(config: ModelConfig) { weights = DecoderWeights(config: config) }

    /// Sets every gradient to zero (`backward` accumulates, so once before each step).
    public func zero() {
        for (_, t) in weights.huggingFaceTensors { t.pointer.update(repeating: 0, count: t.count) }
    }

    /// `(name, parameter, gradient)` for every tensor of `parameters` (a model of the same
    /// configuration), by Hugging Face name, fused matrices split as in `huggingFaceTensors`:
    /// what an optimiser takes, grouped by name (e.g. no weight decay on norms).
    public func parameterPairs(_ parameters: DecoderWeights) -> [(name: String, value: Tensor, gradient: Tensor)] {
        zip(parameters.huggingFaceTensors, weights.huggingFaceTensors).map { ($0.name, $0.tensor, $1.tensor) }
    }
}

extension Decoder {
    /// A forward over whole sequences (positions from 0, no cache reuse) that records what the
    /// backward needs; `adapter` deltas are applied as in inference. Returns the tape, whose
    /// `hidden` equals `forward(...).hidden` for the same sequences. `activationMemory` chooses
    /// between keeping every layer's activations and recomputing them in the backward.
    public func trainingForward(_ sequences: [[Int32]], adapter: TrainableAdapter? = nil,
                                activationMemory: ActivationMemory = .store) throws -> TrainingTape {
        let c = config
        guard !sequences.isEmpty, sequences.allSatisfy({ !$0.isEmpty }) else { throw MoRAgentError.invalidArgument("training needs non-empty sequences") }
        var ranges: [Range<Int>] = []
        var n = 0
        for s in sequences {
            for t in s where t < 0 || Int(t) >= c.vocabularySize { throw MoRAgentError.invalidArgument("token id \(t) is outside the vocabulary of \(c.vocabularySize)") }
            ranges.append(n..<(n + s.count))
            n += s.count
        }
        try adapter?.begin(rowCount: n)
        let width = c.hiddenSize
        let (cosines, sines) = rotaryTables(ranges)
        var x = Tensor(uninitialized: [n, width])
        for (s, seq) in sequences.enumerated() {
            for (i, t) in seq.enumerated() { (x.pointer + (ranges[s].lowerBound + i) * width).update(from: weights.embedding.pointer + Int(t) * width, count: width) }
        }
        let h = Tensor(uninitialized: [n, width])
        let act = Tensor(uninitialized: [n, c.intermediateSize])
        let scores = attentionScores(ranges)
        // Recomputing: one set of buffers serves every layer, the tape keeps only the inputs.
        let reused = activationMemory == .recompute ? LayerActivations(rows: n, config: c) : nil
        var tapes: [LayerTape] = []
        for layerIndex in weights.layers.indices {
            let a = reused ?? LayerActivations(rows: n, config: c)
            layerActivations(layerIndex, input: x, ranges: ranges, cosines: cosines, sines: sines, adapter: adapter, pass: .record,
                             normed: h, scores: scores, into: a)
            let out = layerOutput(layerIndex, a, adapter: adapter, act: act)
            tapes.append(LayerTape(input: x, activations: reused == nil ? a : nil))
            x = out
        }
        let hidden = Tensor(uninitialized: [n, width])
        Kernels.rmsNorm(x.pointer, rows: n, columns: width, weight: weights.finalNorm.pointer, eps: c.rmsNormEps, into: hidden.pointer)
        return TrainingTape(sequences: sequences, rowRanges: ranges, hidden: hidden, adapter: adapter, activationMemory: activationMemory,
                            layers: tapes, final: x)
    }

    /// Layer `layerIndex` of a training forward from `input[N, C]` up to the MLP's gate and up
    /// projections, written into `a`: the forward and the backward's recompute both run this, so
    /// a recomputed layer is the forward's bit for bit. `pass` says whether the adapter decides
    /// (the forward) or replays its decisions (the recompute). `normed[N, C]` is scratch (it ends
    /// holding the MLP's normed input); `scores` is `attentionScores(ranges)`.
    func layerActivations(_ layerIndex: Int, input x: Tensor, ranges: [Range<Int>], cosines: Tensor, sines: Tensor,
                          adapter: TrainableAdapter?, pass: AdapterPass, normed h: Tensor, scores: Tensor, into a: LayerActivations) {
        let c = config, layer = weights.layers[layerIndex], n = x.rows
        let width = c.hiddenSize, qkvWidth = c.qkvWidth, hd = c.headCount * c.headDimension, inter = c.intermediateSize, half = c.headDimension / 2
        let qkv = a.qkv.pointer, attention = a.attention.pointer, middle = a.middle.pointer, gateUp = a.gateUp.pointer
        Kernels.rmsNorm(x.pointer, rows: n, columns: width, weight: layer.inputNorm.pointer, eps: c.rmsNormEps, into: h.pointer)
        BLAS.linear(h.pointer, rows: n, inFeatures: width, weight: layer.qkv.pointer, bias: layer.qkvBias?.pointer, outFeatures: qkvWidth, into: qkv)
        if let adapter {
            for kind in [ProjectionKind.q, .k, .v] {
                adapter.delta(pass, layer: layerIndex, kind: kind, input: h.pointer, inputStride: width,
                              output: qkv + layer.slice(of: kind, config: c).rows.lowerBound, outputStride: qkvWidth, rows: n)
            }
        }
        for r in 0..<n {
            Kernels.rotary(qkv + r * qkvWidth, heads: c.headCount, headDimension: c.headDimension, cos: cosines.pointer + r * half, sin: sines.pointer + r * half)
            Kernels.rotary(qkv + r * qkvWidth + hd, heads: c.keyValueHeadCount, headDimension: c.headDimension, cos: cosines.pointer + r * half, sin: sines.pointer + r * half)
        }
        for range in ranges {
            let base = qkv + range.lowerBound * qkvWidth
            // Keys and values are read in place from the fused rows (row stride qkvWidth).
            Attention.forward(config: c, queries: base, qStride: qkvWidth, count: range.count, firstPosition: 0,
                              keys: base + hd, values: base + hd + c.keyValueWidth, kvStride: qkvWidth, scores: scores.pointer,
                              into: attention + range.lowerBound * hd, outStride: hd,
                              logSumExp: a.logSumExp.pointer + range.lowerBound * c.headCount)
        }
        middle.update(from: x.pointer, count: n * width)
        BLAS.linear(attention, rows: n, inFeatures: hd, weight: layer.output.pointer, outFeatures: width, into: middle, accumulate: true)
        if let b = layer.outputBias { for r in 0..<n { Kernels.add(b.pointer, into: middle + r * width, count: width) } }
        adapter?.delta(pass, layer: layerIndex, kind: .o, input: attention, inputStride: hd, output: middle, outputStride: width, rows: n)
        Kernels.rmsNorm(middle, rows: n, columns: width, weight: layer.postAttentionNorm.pointer, eps: c.rmsNormEps, into: h.pointer)
        BLAS.linear(h.pointer, rows: n, inFeatures: width, weight: layer.gateUp.pointer, bias: layer.gateUpBias?.pointer, outFeatures: 2 * inter, into: gateUp)
        if let adapter {
            adapter.delta(pass, layer: layerIndex, kind: .gate, input: h.pointer, inputStride: width, output: gateUp, outputStride: 2 * inter, rows: n)
            adapter.delta(pass, layer: layerIndex, kind: .up, input: h.pointer, inputStride: width, output: gateUp + inter, outputStride: 2 * inter, rows: n)
        }
    }

    /// The rest of layer `layerIndex`'s forward, `a.middle + down(silu(gate)·up)` (+ bias and the
    /// adapter's delta): the next layer's input `[N, C]`. Only the forward runs it (the backward
    /// needs nothing it computes). `act[N, I]` is scratch.
    func layerOutput(_ layerIndex: Int, _ a: LayerActivations, adapter: TrainableAdapter?, act: Tensor) -> Tensor {
        let c = config, layer = weights.layers[layerIndex], n = a.middle.rows, width = c.hiddenSize, inter = c.intermediateSize
        Kernels.siluMultiply(rows: n, gateUp: a.gateUp.pointer, into: act.pointer, width: inter)
        let out = a.middle.copy()
        BLAS.linear(act.pointer, rows: n, inFeatures: inter, weight: layer.down.pointer, outFeatures: width, into: out.pointer, accumulate: true)
        if let b = layer.downBias { for r in 0..<n { Kernels.add(b.pointer, into: out.pointer + r * width, count: width) } }
        adapter?.addDelta(layer: layerIndex, kind: .down, input: act.pointer, inputStride: inter, output: out.pointer, outputStride: width, rows: n)
        return out
    }

    /// The attention score scratch for packed sequences `ranges` (each attends only to itself).
    func attentionScores(_ ranges: [Range<Int>]) -> Tensor {
        let longest = ranges.map(\.count).max()!
        return Tensor(uninitialized: [Attention.scoreCapacity(n: longest, length: longest)])
    }

    /// RoPE tables `[N, D/2]` for packed sequences that each start at position 0. Each position's
    /// angles are computed once and copied to every sequence (`cos`/`sin` calls were 1.5% of a
    /// small model's training step).
    func rotaryTables(_ ranges: [Range<Int>]) -> (Tensor, Tensor) {
        let half = config.headDimension / 2, n = ranges.last!.upperBound
        let longest = ranges.map(\.count).max()!
        let cosines = Tensor(uninitialized: [n, half]), sines = Tensor(uninitialized: [n, half])
        let first = ranges.first { $0.count == longest }!.lowerBound
        for i in 0..<longest { rotary.angles(position: i, cos: cosines.pointer + (first + i) * half, sin: sines.pointer + (first + i) * half) }
        for range in ranges where range.lowerBound != first {
            (cosines.pointer + range.lowerBound * half).update(from: cosines.pointer + first * half, count: range.count * half)
            (sines.pointer + range.lowerBound * half).update(from: sines.pointer + first * half, count: range.count * half)
        }
        return (cosines, sines)
    }

    /// Backpropagates `hiddenGradient[N, C]` (the gradient of the loss with respect to the tape's
    /// final hidden states) through the decoder: the adapter accumulates its parameter gradients;
    /// with `baseGradients`, the base weights' gradients are accumulated too (full fine-tuning).
    /// A tape recorded with `ActivationMemory.recompute` has each layer's activations recomputed
    /// (the adapter replaying) right before that layer's backward.
    ///
    /// A tape's backward runs once (it overwrites kept activations; see `TrainingTape.isConsumed`)
    /// and a second call throws. The backward is linear in `hiddenGradient`: for several losses
    /// on one forward, add their hidden-state gradients and run it once.
    public func backward(_ tape: TrainingTape, hiddenGradient: Tensor, baseGradients: DecoderGradients? = nil) throws {
        let c = config, n = tape.rowCount
        guard hiddenGradient.shape == [n, c.hiddenSize] else {
            throw MoRAgentError.invalidArgument("hidden gradient of shape \(hiddenGradient.shape) for a tape of \(n) rows")
        }
        guard !tape.isConsumed else {
            throw MoRAgentError.invalidArgument("this tape's backward has already run (it reuses the tape's buffers): run a new training forward")
        }
        tape.isConsumed = true
        let width = c.hiddenSize, qkvWidth = c.qkvWidth, hd = c.headCount * c.headDimension, inter = c.intermediateSize, half = c.headDimension / 2
        let (cosines, sines) = rotaryTables(tape.rowRanges)
        let base = baseGradients?.weights
        // `.recompute`: one set of buffers, refilled from each layer's kept input before its backward.
        lazy var recomputed = LayerActivations(rows: n, config: c)
        lazy var scores = attentionScores(tape.rowRanges)
        // dx: gradient with respect to the residual stream, walked from the top down.
        let dx = Tensor(zeros: [n, width])
        Kernels.rmsNormBackward(tape.final.pointer, rows: n, columns: width, weight: weights.finalNorm.pointer, eps: c.rmsNormEps,
                                outputGradient: hiddenGradient.pointer, addingInto: dx.pointer, weightGradient: base?.finalNorm.pointer)
        let h = Tensor(uninitialized: [n, width]), act = Tensor(uninitialized: [n, inter])
        let dAct = Tensor(uninitialized: [n, inter])
        let dh = Tensor(uninitialized: [n, width]), dAttention = Tensor(uninitialized: [n, hd]), dQKV = Tensor(uninitialized: [n, qkvWidth])
        for (layerIndex, layer) in weights.layers.enumerated().reversed() {
            let kept = tape.layers[layerIndex]
            let t: LayerActivations
            if let activations = kept.activations {
                t = activations
            } else {
                t = recomputed
                layerActivations(layerIndex, input: kept.input, ranges: tape.rowRanges, cosines: cosines, sines: sines, adapter: tape.adapter,
                                 pass: .replay, normed: h, scores: scores, into: t)
            }
            let lb = base?.layers[layerIndex]
            // MLP block: out = middle + down(silu(gate)·up) (+ adapter deltas).
            if lb != nil || tape.adapter?.adapts(layer: layerIndex, kind: .down) == true {
                Kernels.siluMultiply(rows: n, gateUp: t.gateUp.pointer, into: act.pointer, width: inter)
            }
            BLAS.gemm(transposeA: false, transposeB: false, m: n, n: inter, k: width, a: dx.pointer, lda: width,
                      b: layer.down.pointer, ldb: inter, c: dAct.pointer, ldc: inter)
            if let lb {
                BLAS.gemm(transposeA: true, transposeB: false, m: width, n: inter, k: n, a: dx.pointer, lda: width, b: act.pointer, ldb: inter,
                          beta: 1, c: lb.down.pointer, ldc: inter)
                if let db = lb.downBias { for r in 0..<n { Kernels.add(dx.pointer + r * width, into: db.pointer, count: width) } }
            }
            tape.adapter?.backward(layer: layerIndex, kind: .down, input: act.pointer, inputStride: inter, outputGradient: dx.pointer,
                                   outputGradientStride: width, inputGradient: dAct.pointer, inputGradientStride: inter, rows: n)
            // In place: the gate/up projections become their gradient (nothing reads them after,
            // and writing a fresh buffer would first read it into cache).
            let dGateUp = t.gateUp
            Kernels.siluMultiplyBackward(rows: n, gateUp: t.gateUp.pointer, outputGradient: dAct.pointer, gateUpGradient: dGateUp.pointer, width: inter)
            // gate/up's input, for their weights' gradients alone (as `act` for down's).
            if lb != nil || tape.adapter.map({ $0.adapts(layer: layerIndex, kind: .gate) || $0.adapts(layer: layerIndex, kind: .up) }) == true {
                Kernels.rmsNorm(t.middle.pointer, rows: n, columns: width, weight: layer.postAttentionNorm.pointer, eps: c.rmsNormEps, into: h.pointer)
            }
            BLAS.gemm(transposeA: false, transposeB: false, m: n, n: width, k: 2 * inter, a: dGateUp.pointer, lda: 2 * inter,
                      b: layer.gateUp.pointer, ldb: width, c: dh.pointer, ldc: width)
            if let lb {
                BLAS.gemm(transposeA: true, transposeB: false, m: 2 * inter, n: width, k: n, a: dGateUp.pointer, lda: 2 * inter,
                          b: h.pointer, ldb: width, beta: 1, c: lb.gateUp.pointer, ldc: width)
                if let db = lb.gateUpBias { for r in 0..<n { Kernels.add(dGateUp.pointer + r * 2 * inter, into: db.pointer, count: 2 * inter) } }
            }
            if let adapter = tape.adapter {
                adapter.backward(layer: layerIndex, kind: .gate, input: h.pointer, inputStride: width, outputGradient: dGateUp.pointer,
                                 outputGradientStride: 2 * inter, inputGradient: dh.pointer, inputGradientStride: width, rows: n)
                adapter.backward(layer: layerIndex, kind: .up, input: h.pointer, inputStride: width, outputGradient: dGateUp.pointer + inter,
                                 outputGradientStride: 2 * inter, inputGradient: dh.pointer, inputGradientStride: width, rows: n)
            }
            Kernels.rmsNormBackward(t.middle.pointer, rows: n, columns: width, weight: layer.postAttentionNorm.pointer, eps: c.rmsNormEps,
                                    outputGradient: dh.pointer, addingInto: dx.pointer, weightGradient: lb?.postAttentionNorm.pointer)
            // Attention block: middle = input + o(attention(rope(qkv(norm(input))))) (+ deltas).
            BLAS.gemm(transposeA: false, transposeB: false, m: n, n: hd, k: width, a: dx.pointer, lda: width,
                      b: layer.output.pointer, ldb: hd, c: dAttention.pointer, ldc: hd)
            if let lb {
                BLAS.gemm(transposeA: true, transposeB: false, m: width, n: hd, k: n, a: dx.pointer, lda: width, b: t.attention.pointer, ldb: hd,
                          beta: 1, c: lb.output.pointer, ldc: hd)
                if let db = lb.outputBias { for r in 0..<n { Kernels.add(dx.pointer + r * width, into: db.pointer, count: width) } }
            }
            tape.adapter?.backward(layer: layerIndex, kind: .o, input: t.attention.pointer, inputStride: hd, outputGradient: dx.pointer,
                                   outputGradientStride: width, inputGradient: dAttention.pointer, inputGradientStride: hd, rows: n)
            dQKV.pointer.update(repeating: 0, count: n * qkvWidth)
            Attention.backward(config: c, qkv: t.qkv.pointer, ranges: tape.rowRanges, output: t.attention.pointer, logSumExp: t.logSumExp.pointer,
                               outputGradient: dAttention.pointer, qkvGradient: dQKV.pointer)
            for r in 0..<n {
                Kernels.rotaryBackward(dQKV.pointer + r * qkvWidth, heads: c.headCount, headDimension: c.headDimension, cos: cosines.pointer + r * half, sin: sines.pointer + r * half)
                Kernels.rotaryBackward(dQKV.pointer + r * qkvWidth + hd, heads: c.keyValueHeadCount, headDimension: c.headDimension, cos: cosines.pointer + r * half, sin: sines.pointer + r * half)
            }
            Kernels.rmsNorm(kept.input.pointer, rows: n, columns: width, weight: layer.inputNorm.pointer, eps: c.rmsNormEps, into: h.pointer)
            // Below layer 0 only the embeddings' gradient reads dx: without it, skip dx's last product.
            let needsInputGradient = layerIndex > 0 || base != nil
            if needsInputGradient {
                BLAS.gemm(transposeA: false, transposeB: false, m: n, n: width, k: qkvWidth, a: dQKV.pointer, lda: qkvWidth,
                          b: layer.qkv.pointer, ldb: width, c: dh.pointer, ldc: width)
            }
            if let lb {
                BLAS.gemm(transposeA: true, transposeB: false, m: qkvWidth, n: width, k: n, a: dQKV.pointer, lda: qkvWidth,
                          b: h.pointer, ldb: width, beta: 1, c: lb.qkv.pointer, ldc: width)
                if let db = lb.qkvBias { for r in 0..<n { Kernels.add(dQKV.pointer + r * qkvWidth, into: db.pointer, count: qkvWidth) } }
            }
            if let adapter = tape.adapter {
                // Reverse forward order (v, k, q): adapters may rely on q coming last in a layer.
                for kind in [ProjectionKind.v, .k, .q] {
                    let offset = layer.slice(of: kind, config: c).rows.lowerBound
                    adapter.backward(layer: layerIndex, kind: kind, input: h.pointer, inputStride: width, outputGradient: dQKV.pointer + offset,
                                     outputGradientStride: qkvWidth, inputGradient: dh.pointer, inputGradientStride: width, rows: n)
                }
            }
            if needsInputGradient {
                Kernels.rmsNormBackward(kept.input.pointer, rows: n, columns: width, weight: layer.inputNorm.pointer, eps: c.rmsNormEps,
                                        outputGradient: dh.pointer, addingInto: dx.pointer, weightGradient: lb?.inputNorm.pointer)
            }
        }
        if let base {
            for (s, seq) in tape.sequences.enumerated() {
                for (i, id) in seq.enumerated() {
                    Kernels.add(dx.pointer + (tape.rowRanges[s].lowerBound + i) * width, into: base.embedding.pointer + Int(id) * width, count: width)
                }
            }
        }
    }
}
