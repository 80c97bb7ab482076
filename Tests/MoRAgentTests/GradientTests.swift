import XCTest
@testable import MoRAgent

/// Backward through the decoder against central finite differences of the loss.
///
/// Tolerances: the forward runs in f32 (loss rounding ~1e-6 relative), so differences use a
/// step of 1e-2 on a small model whose loss is O(1); truncation and rounding errors are then
/// O(1e-4) and a gradient entry must agree within 3% relative or 2e-4 absolute.
final class GradientTests: XCTestCase {
    static let config: ModelConfig = {
        var c = ModelConfig(architecture: .qwen2, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4,
                            keyValueHeadCount: 2, vocabularySize: 37, ropeTheta: 10000, tieWordEmbeddings: false)
        c.slidingWindow = 5
        return c
    }()
    let sequences: [[Int32]] = [[1, 5, 9, 2, 30, 7, 8], [3, 33, 12, 4]]

    func loss(_ decoder: Decoder, _ adapter: ExpertMixtureAdapter?, targets: [Int32]) throws -> Double {
        let tape = try decoder.trainingForward(sequences, adapter: adapter)
        return try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: decoder.weights.lmHead).loss
    }

    func assertClose(_ analytic: Float, _ numeric: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let err = abs(Double(analytic) - numeric)
        XCTAssertTrue(err <= 2e-4 || err <= 0.03 * abs(numeric), "\(what): analytic \(analytic), numeric \(numeric)", file: file, line: line)
    }

    /// Central difference of the loss with respect to one float.
    func numeric(_ p: UnsafeMutablePointer<Float>, _ f: () throws -> Double, step: Float = 1e-2) rethrows -> Double {
        let saved = p.pointee
        p.pointee = saved + step
        let up = try f()
        p.pointee = saved - step
        let down = try f()
        p.pointee = saved
        return (up - down) / (2 * Double(step))
    }

    func testTrainingForwardEqualsInferenceForward() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 1))
        let tape = try d.trainingForward(sequences)
        let inference = try d.forward(sequences.map { DecoderSequence(tokens: $0, cache: KVCache(config: Self.config)) }, logits: .none)
        for (a, b) in zip(tape.hidden.values, inference.hidden.values) { XCTAssertEqual(a, b, accuracy: 1e-5) }
    }

    /// LoRA A and B gradients in all seven projections, two experts mixed 0.6/0.4 on one
    /// sequence and one expert alone on the other, with a masked target set.
    func testLoRAGradientsMatchFiniteDifferences() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 2))
        let experts = try ExpertSet(model: Self.config, count: 2, configuration: LoRAConfiguration(rank: 3, alpha: 6, targetModules: Set(ProjectionKind.allCases)), seed: 3)
        var g = SeededGenerator(seed: 4)
        Fixtures.randomizeB(experts.experts, generator: &g, scale: 0.3)
        let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.mixture([(0, 0.6), (1, 0.4)]), .expert(1)],
                                               tokenCounts: sequences.map(\.count))
        let grads = ExpertGradients(experts: experts)
        adapter.gradients = grads
        let mask = sequences.map { s in s.indices.map { $0 % 3 != 1 } }
        let targets = try TokenCrossEntropy.nextTokenTargets(sequences, trainOn: mask)
        let tape = try d.trainingForward(sequences, adapter: adapter)
        let (_, dHidden, count) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
        XCTAssertEqual(count, targets.filter { $0 >= 0 }.count)
        try d.backward(tape, hiddenGradient: dHidden)
        let f = { try self.loss(d, adapter, targets: targets) }
        var checked = 0
        for (e, expert) in experts.experts.enumerated() {
            for kind in ProjectionKind.allCases {
                for layer in 0..<2 {
                    let key = LoRAModuleKey(layer: layer, kind: kind)
                    let m = expert.modules[key]!, gr = grads[e, key]!
                    for i in [0, m.a.count / 2, m.a.count - 1] {
                        assertClose(gr.a.pointer[i], try numeric(m.a.pointer + i, f), "expert \(e) \(kind) layer \(layer) dA[\(i)]")
                        checked += 1
                    }
                    for i in [1, m.b.count - 2] {
                        assertClose(gr.b.pointer[i], try numeric(m.b.pointer + i, f), "expert \(e) \(kind) layer \(layer) dB[\(i)]")
                        checked += 1
                    }
                }
            }
        }
        XCTAssertEqual(checked, 140)
        XCTAssertGreaterThan(grads[1, LoRAModuleKey(layer: 0, kind: .q)]!.a.values.map(abs).max()!, 1e-4)
    }

    /// Base-weight gradients (full fine-tuning), including norms, biases and the embeddings.
    func testBaseGradientsMatchFiniteDifferences() throws {
        let w = DecoderWeights.random(config: Self.config, seed: 5)
        // Embeddings of O(1) (the default std 0.02 is small next to the finite-difference step).
        Kernels.scale(w.embedding.pointer, by: 1 / (0.02 * Float(3).squareRoot()), count: w.embedding.count)
        var g = SeededGenerator(seed: 6)
        for l in w.layers { for t in [l.inputNorm, l.postAttentionNorm] { for i in 0..<t.count { t.pointer[i] = 1 + (g.nextUnitFloat() - 0.5) * 0.4 } } }
        let d = Decoder(weights: w)
        let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
        let grads = DecoderGradients(config: Self.config)
        let tape = try d.trainingForward(sequences)
        let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: w.lmHead, lmHeadGradient: grads.weights.lmHead)
        try d.backward(tape, hiddenGradient: dHidden, baseGradients: grads)
        let f = { try self.loss(d, nil, targets: targets) }
        let gw = grads.weights
        let probes: [(String, Tensor, Tensor, [Int])] = [
            ("qkv", w.layers[0].qkv, gw.layers[0].qkv, [0, 100, 16 * 16 + 3, 16 * 24 + 5, w.layers[0].qkv.count - 1]),
            ("qkv bias", w.layers[1].qkvBias!, gw.layers[1].qkvBias!, [0, 17, 31]),
            ("output", w.layers[1].output, gw.layers[1].output, [0, 77, 255]),
            ("gateUp", w.layers[0].gateUp, gw.layers[0].gateUp, [5, 400, 767]),
            ("down", w.layers[1].down, gw.layers[1].down, [0, 200, 383]),
            ("input norm", w.layers[1].inputNorm, gw.layers[1].inputNorm, [0, 7, 15]),
            ("post-attention norm", w.layers[0].postAttentionNorm, gw.layers[0].postAttentionNorm, [3, 12]),
            ("final norm", w.finalNorm, gw.finalNorm, [0, 9]),
            ("embedding", w.embedding, gw.embedding, [5 * 16 + 2, 33 * 16 + 15]),
            ("lm head", w.lmHead, gw.lmHead, [9 * 16 + 1, 36 * 16]),
        ]
        for (name, weight, grad, indices) in probes {
            for i in indices { assertClose(grad.pointer[i], try numeric(weight.pointer + i, f), "\(name)[\(i)]") }
        }
    }

    /// The blocked attention backward (query blocks of `Attention.queryBlock`, keys up to each
    /// block's last position, probabilities rebuilt from the forward's normalisers) against the
    /// dense gradient computed in Double, over three blocks with and without a sliding window
    /// that cuts into them, GQA heads sharing dK and dV; and the forward's normalisers against
    /// `log Σ e^s` in Double.
    func testBlockedAttentionBackwardMatchesDenseReference() throws {
        for window in [nil, 70] {
            var c = ModelConfig(hiddenSize: 32, intermediateSize: 8, layerCount: 1, headCount: 4, keyValueHeadCount: 2, vocabularySize: 8)
            c.slidingWindow = window
            let n = 2 * Attention.queryBlock + 22, d = c.headDimension, stride = c.qkvWidth, hd = c.headCount * d
            var g = SeededGenerator(seed: 11)
            let qkv = (0..<(n * stride)).map { _ in g.nextUnitFloat() * 2 - 1 }
            let dOut = (0..<(n * hd)).map { _ in g.nextUnitFloat() * 2 - 1 }
            var dQKV = [Float](repeating: 0, count: n * stride)
            var output = [Float](repeating: 0, count: n * hd), logSumExp = [Float](repeating: 0, count: n * c.headCount)
            var scores = [Float](repeating: 0, count: Attention.scoreCapacity(n: n, length: n))
            qkv.withUnsafeBufferPointer { q in
                let q = q.baseAddress!
                Attention.forward(config: c, queries: q, qStride: stride, count: n, firstPosition: 0, keys: q + hd, values: q + hd + c.keyValueWidth,
                                  kvStride: stride, scores: &scores, into: &output, outStride: hd, logSumExp: &logSumExp)
                dOut.withUnsafeBufferPointer { o in
                    dQKV.withUnsafeMutableBufferPointer {
                        Attention.backward(config: c, qkv: q, ranges: [0..<n], output: output, logSumExp: logSumExp, outputGradient: o.baseAddress!,
                                           qkvGradient: $0.baseAddress!)
                    }
                }
            }
            var reference = [Double](repeating: 0, count: n * stride)
            let scale = 1 / Double(d).squareRoot()
            for h in 0..<c.headCount {
                let kv = h / (c.headCount / c.keyValueHeadCount)
                let qo = h * d, ko = hd + kv * d, vo = hd + c.keyValueWidth + kv * d
                for i in 0..<n {
                    let keys = Attention.windowStart(position: i, config: c)...i
                    let s = keys.map { j in (0..<d).reduce(0.0) { $0 + Double(qkv[i * stride + qo + $1]) * Double(qkv[j * stride + ko + $1]) } * scale }
                    let top = s.max()!, e = s.map { exp($0 - top) }, total = e.reduce(0, +), p = e.map { $0 / total }
                    XCTAssertEqual(Double(logSumExp[i * c.headCount + h]), top + log(total), accuracy: 1e-5 * max(1, abs(top + log(total))),
                                   "normaliser of row \(i), head \(h)")
                    let dp = keys.map { j in (0..<d).reduce(0.0) { $0 + Double(dOut[i * hd + qo + $1]) * Double(qkv[j * stride + vo + $1]) } }
                    let sum = zip(p, dp).reduce(0.0) { $0 + $1.0 * $1.1 }
                    for (t, j) in keys.enumerated() {
                        let ds = p[t] * (dp[t] - sum) * scale
                        for x in 0..<d {
                            reference[j * stride + vo + x] += p[t] * Double(dOut[i * hd + qo + x])
                            reference[i * stride + qo + x] += ds * Double(qkv[j * stride + ko + x])
                            reference[j * stride + ko + x] += ds * Double(qkv[i * stride + qo + x])
                        }
                    }
                }
            }
            var worst = 0.0
            for (a, b) in zip(dQKV, reference) { worst = max(worst, abs(Double(a) - b) / max(1, abs(b))) }
            XCTAssertLessThan(worst, 1e-5, "window \(String(describing: window))")
        }
    }

    /// A LoRA step large enough for the two-thread paths (row kernels split in halves, the
    /// cross-entropy's rows shared, OpenBLAS on two threads) gives the one-thread gradients.
    func testTwoThreadsGiveTheOneThreadGradients() throws {
        let c = ModelConfig(hiddenSize: 128, intermediateSize: 256, layerCount: 2, headCount: 4, keyValueHeadCount: 2, vocabularySize: 512)
        let d = Decoder(weights: DecoderWeights.random(config: c, seed: 7))
        let experts = try ExpertSet(model: c, count: 1, configuration: LoRAConfiguration(rank: 8, alpha: 16, targetModules: [.q, .v]), seed: 8)
        var g = SeededGenerator(seed: 9)
        Fixtures.randomizeB(experts.experts, generator: &g, scale: 0.3)
        let sequences = (0..<3).map { _ in (0..<200).map { _ in Int32(g.next() % 512) } }
        XCTAssertGreaterThanOrEqual(600 * c.hiddenSize, Kernels.parallelElements)
        func gradients(threads: Int) throws -> (Double, [Float]) {
            let saved = BLAS.threads
            BLAS.threads = threads
            defer { BLAS.threads = saved }
            let grads = ExpertGradients(experts: experts)
            let adapter = try ExpertMixtureAdapter(experts: experts, routes: sequences.map { _ in .expert(0) }, tokenCounts: sequences.map(\.count))
            adapter.gradients = grads
            let tape = try d.trainingForward(sequences, adapter: adapter)
            let (loss, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: try TokenCrossEntropy.nextTokenTargets(sequences),
                                                                           lmHead: d.weights.lmHead)
            try d.backward(tape, hiddenGradient: dHidden)
            return (loss, grads.parameterPairs(experts).flatMap(\.gradient.values))
        }
        let (oneLoss, one) = try gradients(threads: 1), (twoLoss, two) = try gradients(threads: 2)
        XCTAssertEqual(oneLoss, twoLoss, accuracy: 1e-6 * oneLoss)
        var worst: Float = 0
        for (a, b) in zip(one, two) { worst = max(worst, abs(a - b)) }
        XCTAssertLessThan(worst, 1e-5 * (one.map(abs).max() ?? 0))
        XCTAssertGreaterThan(one.map(abs).max() ?? 0, 0)
    }

    func testCrossEntropyRejectsBadLabels() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 1))
        let tape = try d.trainingForward([[1, 2, 3]])
        XCTAssertThrowsError(try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: [2, 37, -1], lmHead: d.weights.lmHead))
        XCTAssertThrowsError(try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: [2, 3], lmHead: d.weights.lmHead))
        XCTAssertThrowsError(try TokenCrossEntropy.nextTokenTargets([[1, 2]], trainOn: [[true]]))
        XCTAssertThrowsError(try d.backward(tape, hiddenGradient: Tensor(zeros: [2, 16])))
        let empty = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: [-1, -1, -1], lmHead: d.weights.lmHead)
        XCTAssertEqual(empty.count, 0)
    }

    /// A tape's backward runs once (it writes gate/up gradients over the kept projections): a
    /// second call throws and leaves the gradients of the first as they were; a rejected first
    /// call (a hidden gradient of the wrong shape) does not use the tape up.
    func testBackwardRunsOncePerTape() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 1))
        let experts = try ExpertSet(model: Self.config, count: 1, configuration: LoRAConfiguration(rank: 4, alpha: 8, targetModules: [.q, .v]), seed: 2)
        var g = SeededGenerator(seed: 3)
        Fixtures.randomizeB(experts.experts, generator: &g, scale: 0.3)
        let grads = ExpertGradients(experts: experts)
        let sequences: [[Int32]] = [[1, 2, 3, 4, 5]]
        let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.expert(0)], tokenCounts: [5])
        adapter.gradients = grads
        let tape = try d.trainingForward(sequences, adapter: adapter)
        let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: try TokenCrossEntropy.nextTokenTargets(sequences),
                                                                    lmHead: d.weights.lmHead)
        XCTAssertThrowsError(try d.backward(tape, hiddenGradient: Tensor(zeros: [2, Self.config.hiddenSize])))
        XCTAssertFalse(tape.isConsumed)
        try d.backward(tape, hiddenGradient: dHidden)
        XCTAssertTrue(tape.isConsumed)
        let first = grads.parameterPairs(experts).map(\.gradient.values)
        XCTAssertGreaterThan(first.flatMap { $0 }.map(abs).max()!, 0)
        XCTAssertThrowsError(try d.backward(tape, hiddenGradient: dHidden)) { XCTAssertTrue("\($0)".contains("already run"), "\($0)") }
        XCTAssertEqual(grads.parameterPairs(experts).map(\.gradient.values), first)
    }
}
