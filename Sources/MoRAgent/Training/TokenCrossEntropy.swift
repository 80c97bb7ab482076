#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Token-level cross-entropy through the LM head, the SFT objective and the building block of
/// every policy loss (DESIGN.md §5).
///
/// Rows are processed in chunks, so the `[N, V]` logits never exist at once (for a 152k
/// vocabulary, 1,024 rows would need 622 MB); each chunk's logits turn into `softmax − onehot`
/// in place and go back through the LM head into the hidden-state gradient.
public enum TokenCrossEntropy {
    /// Rows per chunk for a vocabulary of `v`: the logits of a chunk stay within 64 MB, and a
    /// chunk has at least 64 rows (each chunk repacks the whole LM head inside BLAS, so small
    /// vocabularies want large chunks).
    static func chunkRows(vocabulary v: Int) -> Int { max(64, min(512, (16 << 20) / max(v, 1))) }

    /// Next-token targets for packed whole sequences: row `i` of a sequence predicts token
    /// `i + 1`; its last row predicts nothing (-1). `trainOn[s][j]`, when given, says whether
    /// token `j` of sequence `s` is a target (e.g. only assistant/action tokens).
    public static func nextTokenTargets(_ sequences: [[Int32]], trainOn: [[Bool]]? = nil) throws -> [Int32] {
        if let m = trainOn {
            guard m.count == sequences.count, zip(m, sequences).allSatisfy({ $0.count == $1.count }) else {
                throw MoRAgentError.invalidArgument("the target mask does not match the sequences' lengths")
            }
        }
        var targets: [Int32] = []
        for (s, seq) in sequences.enumerated() {
            for i in 0..<seq.count {
                let j = i + 1
                targets.append(j < seq.count && (trainOn?[s][j] ?? true) ? seq[j] : -1)
            }
        }
        return targets
    }

    /// The mean cross-entropy over rows with a target (`targets[row] ≥ 0`), or the sum divided by
    /// `normalizer` when given, and its gradient with respect to `hidden[N, C]`; with
    /// `lmHeadGradient[V, C]`, the LM head's gradient is accumulated there too.
    public static func lossAndGradient(hidden: Tensor, targets: [Int32], lmHead: Tensor, normalizer: Double? = nil,
                                       lmHeadGradient: Tensor? = nil) throws -> (loss: Double, hiddenGradient: Tensor, count: Int) {
        let n = hidden.rows, c = hidden.rowLength, v = lmHead.rows
        guard targets.count == n else { throw MoRAgentError.invalidArgument("\(targets.count) targets for \(n) rows") }
        for t in targets where t >= Int32(v) { throw MoRAgentError.invalidArgument("label \(t) is outside the vocabulary of \(v)") }
        let count = targets.filter { $0 >= 0 }.count
        let dHidden = Tensor(zeros: [n, c])
        guard count > 0 else { return (0, dHidden, 0) }
        let scale = 1 / (normalizer ?? Double(count))
        guard scale.isFinite, scale > 0 else { throw MoRAgentError.invalidArgument("the loss normalizer must be positive") }
        var total = 0.0
        let chunk = min(n, chunkRows(vocabulary: v))
        let logits = Tensor(uninitialized: [chunk, v])
        let x = Tensor(uninitialized: [chunk, c]), dx = Tensor(uninitialized: [chunk, c])
        var losses = [Float](repeating: 0, count: chunk)
        var start = 0
        while start < n {
            let rows = (start..<min(n, start + chunk)).filter { targets[$0] >= 0 }
            start += chunk
            guard !rows.isEmpty else { continue }
            for (i, r) in rows.enumerated() { (x.pointer + i * c).update(from: hidden.pointer + r * c, count: c) }
            BLAS.linear(x.pointer, rows: rows.count, inFeatures: c, weight: lmHead.pointer, outFeatures: v, into: logits.pointer)
            losses.withUnsafeMutableBufferPointer { out in
                Kernels.forEachRowRange(rows.count, elements: rows.count * v) { range in
                    for i in range {
                        out[i] = gradient(logits: logits.pointer + i * v, count: v, target: Int(targets[rows[i]]), scale: Float(scale))
                    }
                }
            }
            for i in 0..<rows.count { total += Double(losses[i]) }
            BLAS.gemm(transposeA: false, transposeB: false, m: rows.count, n: c, k: v, a: logits.pointer, lda: v,
                      b: lmHead.pointer, ldb: c, c: dx.pointer, ldc: c)
            for (i, r) in rows.enumerated() { (dHidden.pointer + r * c).update(from: dx.pointer + i * c, count: c) }
            if let dW = lmHeadGradient {
                BLAS.gemm(transposeA: true, transposeB: false, m: v, n: c, k: rows.count, a: logits.pointer, lda: v,
                          b: x.pointer, ldb: c, beta: 1, c: dW.pointer, ldc: c)
            }
        }
        return (total * scale, dHidden, count)
    }

    /// Turns one row of `n` logits into `scale · (softmax − onehot(target))` in place and returns
    /// the row's loss `log Σ e^x − x_target`: the softmax of `Kernels.softmax` with the scale
    /// folded into its normalisation (three passes over the row instead of four). Entries
    /// below f32's smallest normal number are flushed to zero after scaling, for the reason
    /// `Kernels.softmax` gives (sub-normal operands slow the LM-head product that follows).
    static func gradient(logits x: UnsafeMutablePointer<Float>, count n: Int, target: Int, scale: Float) -> Float {
        typealias V8 = SIMD8<Float>
        let logTarget = x[target]
        let (sum, logSumExp) = Kernels.exponentiate(x, count: n)
        let factor = scale / sum, vf = V8(repeating: factor), smallest = V8(repeating: Float.leastNormalMagnitude)
        var i = 0
        while i + 8 <= n {
            var p = Kernels.load(x + i) * vf
            p.replace(with: 0, where: p .< smallest)
            Kernels.store(p, x + i)
            i += 8
        }
        while i < n { let p = x[i] * factor; x[i] = p < Float.leastNormalMagnitude ? 0 : p; i += 1 }
        x[target] -= scale
        return logSumExp - logTarget
    }
}
