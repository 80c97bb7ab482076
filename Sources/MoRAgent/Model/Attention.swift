import Dispatch

/// Causal grouped-query attention of one sequence's new tokens against its KV cache.
///
/// Shapes: `n` new tokens at positions `L0 ..< L0+n`, the cache holding `L = L0 + n` positions
/// after this step's keys were appended; `H` query heads share `KVH` key/value heads in groups
/// of `H/KVH`. Scores go through BLAS (`sgemm` for a block of queries, `sgemv` for one).
enum Attention {
    /// Queries are processed in blocks of this many rows, each against only the keys it may see,
    /// so a long causal prefill computes about half of the `n × L` score square (at 256 tokens,
    /// blocks of 64 touch 5/8 of it, blocks of 128 3/4; in the training backward, blocks of 64
    /// were faster than 32 or 128).
    static let queryBlock = 64
    /// Above this many score entries in all, the heads are split over two threads (when the
    /// caller's thread budget, `BLAS.threads`, is more than one: callers already running on
    /// several threads set it to 1); below, they run one after another. Either way each BLAS
    /// call inside attention is single-threaded:
    /// the per-head products are small (at decode, 2·H products of a few KB per layer, 672 per
    /// step on a 0.5B model), and waking OpenBLAS's worker thread for each costs more than it saves.
    static let parallelThreshold = 64 * 1024

    /// Writes the attention output of `n` queries into `out` (`[n, H·D]`, row stride `outStride`).
    ///
    /// - `q`: `[n, H·D]` rotated queries with row stride `qStride`.
    /// - `keys`, `values`: `[L, KVH·D]` for this layer, rotated keys, rows `kvStride` apart
    ///   (`KVH·D` in a cache; the fused q/k/v row width when read in place during training).
    /// - `scores`: scratch of at least `scoreCapacity(n:length:)` floats.
    /// - `logSumExp`: when given, `[n, H]`: each query row's and head's softmax normaliser
    ///   `log Σ_j e^(s_j)` over the keys it sees, which `backward` turns scores back into
    ///   probabilities with (training keeps it; inference passes nil).
    static func forward(config c: ModelConfig, queries q: UnsafePointer<Float>, qStride: Int, count n: Int,
                        firstPosition l0: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int? = nil,
                        scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>, outStride: Int,
                        logSumExp: UnsafeMutablePointer<Float>? = nil) {
        let kvw = kvStride ?? c.keyValueWidth
        let perHead = min(n, queryBlock) * (l0 + n)
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        if saved > 1 && n > 1 && perHead * c.headCount >= parallelThreshold && c.headCount > 1 {
            DispatchQueue.concurrentPerform(iterations: 2) { part in
                let heads = part == 0 ? 0..<(c.headCount / 2) : (c.headCount / 2)..<c.headCount
                for h in heads {
                    head(h, config: c, queries: q, qStride: qStride, count: n, firstPosition: l0, keys: keys, values: values,
                         kvStride: kvw, scores: scores + part * perHead, into: out, outStride: outStride, logSumExp: logSumExp)
                }
            }
        } else {
            for h in 0..<c.headCount {
                head(h, config: c, queries: q, qStride: qStride, count: n, firstPosition: l0, keys: keys, values: values,
                     kvStride: kvw, scores: scores, into: out, outStride: outStride, logSumExp: logSumExp)
            }
        }
    }

    /// Floats of score scratch `forward` needs for `n` queries over `length` positions.
    static func scoreCapacity(n: Int, length: Int) -> Int { 2 * min(n, queryBlock) * length }

    /// One query head `h`.
    private static func head(_ h: Int, config c: ModelConfig, queries q: UnsafePointer<Float>, qStride: Int, count n: Int,
                             firstPosition l0: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride kvw: Int,
                             scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>, outStride: Int,
                             logSumExp: UnsafeMutablePointer<Float>?) {
        let d = c.headDimension, heads = c.headCount
        let g = h / (c.headCount / c.keyValueHeadCount)
        let scale = 1 / Float(d).squareRoot()
        let kg = keys + g * d, vg = values + g * d
        if n == 1 {
            let length = l0 + 1, lo = windowStart(position: l0, config: c)
            BLAS.gemv(transpose: false, rows: length - lo, columns: d, alpha: scale, a: kg + lo * kvw, lda: kvw, x: q + h * d, y: scores)
            let normalizer = Kernels.softmax(scores, count: length - lo)
            logSumExp?[h] = normalizer
            BLAS.gemv(transpose: true, rows: length - lo, columns: d, a: vg + lo * kvw, lda: kvw, x: scores, y: out + h * d)
            return
        }
        var i0 = 0
        while i0 < n {
            let i1 = min(n, i0 + queryBlock), m = i1 - i0
            // Keys visible to any query of the block: [lo, hi) with lo from the first query's
            // window (sliding-window models) and hi after the last query's own position.
            let lo = windowStart(position: l0 + i0, config: c), hi = l0 + i1, span = hi - lo
            BLAS.gemm(transposeA: false, transposeB: true, m: m, n: span, k: d, alpha: scale,
                      a: q + i0 * qStride + h * d, lda: qStride, b: kg + lo * kvw, ldb: kvw, c: scores, ldc: span)
            // Rows of e^(s − max); each output row is divided by its sum after P·V (D values
            // per row instead of the span), the row's normaliser kept when asked.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: m) { sums in
                for i in 0..<m {
                    let row = scores + i * span
                    let first = windowStart(position: l0 + i0 + i, config: c) - lo, end = l0 + i0 + i + 1 - lo
                    if first > 0 { row.update(repeating: 0, count: first) }
                    let (sum, normalizer) = Kernels.exponentiate(row + first, count: end - first)
                    sums[i] = sum
                    logSumExp?[(i0 + i) * heads + h] = normalizer
                    if end < span { (row + end).update(repeating: 0, count: span - end) }
                }
                let o = out + i0 * outStride + h * d
                BLAS.gemm(transposeA: false, transposeB: false, m: m, n: d, k: span,
                          a: scores, lda: span, b: vg + lo * kvw, ldb: kvw, c: o, ldc: outStride)
                for i in 0..<m { Kernels.scale(o + i * outStride, by: 1 / sums[i], count: d) }
            }
            i0 = i1
        }
    }

    /// Floats of scratch one thread of `backward` needs for sequences of up to `length` tokens.
    static func backwardScratch(length: Int) -> Int { 2 * min(length, queryBlock) * length + length }

    /// Gradients of causal attention over one whole sequence (positions `0..<n`, keys and values
    /// read from the fused rows `qkv[n, (H+2·KVH)·D]`) for the query heads of key/value group `g`,
    /// given the forward's output `output[n, H·D]` and normalisers `logSumExp[n, H]` and the
    /// output gradient `outputGradient[n, H·D]`; adds `dQ`, `dK`, `dV` into `qkvGradient` (same
    /// layout as `qkv`). A block of query rows `i0..<i1` at a time against the keys `lo..<i1` it
    /// may see (as in `forward`; the products skip the blocks above the diagonal):
    /// `P = exp(Q Kᵀ/√D − L)`, `dV += Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ⊙ (dP − δ)`, `dQ = dS K/√D`,
    /// `dK += dSᵀ Q/√D`; a group's heads add into its shared dK and dV. `δ_i = Σ_j P_ij dP_ij`
    /// equals `dO_i · O_i` (as `O_i = Σ_j P_ij V_j`), so with the forward's `L` and `O` each
    /// row of probabilities and score gradients is one pass (FlashAttention-2's backward, Dao
    /// 2023, §3.1) instead of a softmax's three. `scratch` holds `backwardScratch(length: n)` floats.
    static func backward(config c: ModelConfig, qkv: UnsafePointer<Float>, count n: Int, output: UnsafePointer<Float>,
                         logSumExp: UnsafePointer<Float>, outputGradient dOut: UnsafePointer<Float>,
                         qkvGradient dQKV: UnsafeMutablePointer<Float>, group g: Int, scratch: UnsafeMutablePointer<Float>) {
        let d = c.headDimension, hd = c.headCount * d, stride = c.qkvWidth, heads = c.headCount
        let perGroup = c.headCount / c.keyValueHeadCount, scale = 1 / Float(d).squareRoot()
        let block = min(n, queryBlock)
        let p = scratch, dp = scratch + block * n, delta = scratch + 2 * block * n  // P, dP then dS: [m, span] each; δ: [n]
        let k = qkv + hd + g * d, v = k + c.keyValueWidth
        let dk = dQKV + hd + g * d, dv = dk + c.keyValueWidth
        for h in (g * perGroup)..<((g + 1) * perGroup) {
            let q = qkv + h * d, dq = dQKV + h * d, dO = dOut + h * d
            for i in 0..<n { delta[i] = Kernels.dot(dO + i * hd, output + i * hd + h * d, count: d) }
            var i0 = 0
            while i0 < n {
                let i1 = min(n, i0 + block), m = i1 - i0
                let lo = windowStart(position: i0, config: c), span = i1 - lo
                BLAS.gemm(transposeA: false, transposeB: true, m: m, n: span, k: d, alpha: scale,
                          a: q + i0 * stride, lda: stride, b: k + lo * stride, ldb: stride, c: p, ldc: span)
                BLAS.gemm(transposeA: false, transposeB: true, m: m, n: span, k: d,
                          a: dO + i0 * hd, lda: hd, b: v + lo * stride, ldb: stride, c: dp, ldc: span)
                for i in 0..<m {
                    // Row i sees keys first..<end of the span; P and dS are zero elsewhere.
                    let pr = p + i * span, dr = dp + i * span
                    let first = windowStart(position: i0 + i, config: c) - lo, end = i0 + i + 1 - lo
                    if first > 0 { pr.update(repeating: 0, count: first); dr.update(repeating: 0, count: first) }
                    if end < span { (pr + end).update(repeating: 0, count: span - end); (dr + end).update(repeating: 0, count: span - end) }
                    Kernels.softmaxBackward(scores: pr + first, logSumExp: logSumExp[(i0 + i) * heads + h],
                                            outputGradient: dr + first, outputDot: delta[i0 + i], count: end - first)
                }
                BLAS.gemm(transposeA: true, transposeB: false, m: span, n: d, k: m, a: p, lda: span, b: dO + i0 * hd, ldb: hd,
                          beta: 1, c: dv + lo * stride, ldc: stride)
                BLAS.gemm(transposeA: false, transposeB: false, m: m, n: d, k: span, alpha: scale, a: dp, lda: span,
                          b: k + lo * stride, ldb: stride, beta: 1, c: dq + i0 * stride, ldc: stride)
                BLAS.gemm(transposeA: true, transposeB: false, m: span, n: d, k: m, alpha: scale, a: dp, lda: span,
                          b: q + i0 * stride, ldb: stride, beta: 1, c: dk + lo * stride, ldc: stride)
                i0 = i1
            }
        }
    }

    /// `backward` for every sequence of a packed batch (rows `ranges` of `qkv`, `output`,
    /// `logSumExp`, `outputGradient`, `qkvGradient`), with the (sequence, key/value group) pieces
    /// shared by two threads calling single-threaded BLAS when `BLAS.threads` allows more than
    /// one: the pieces write disjoint parts of the gradient (a group's heads are the only writers
    /// of its dK and dV), and the per-head products are too small for OpenBLAS's own threads to
    /// pay (as in `forward`).
    static func backward(config c: ModelConfig, qkv: UnsafePointer<Float>, ranges: [Range<Int>], output: UnsafePointer<Float>,
                         logSumExp: UnsafePointer<Float>, outputGradient dOut: UnsafePointer<Float>,
                         qkvGradient dQKV: UnsafeMutablePointer<Float>) {
        let hd = c.headCount * c.headDimension, stride = c.qkvWidth
        let pieces = ranges.flatMap { r in (0..<c.keyValueHeadCount).map { (r, $0) } }
        let perThread = backwardScratch(length: ranges.map(\.count).max() ?? 0)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * perThread)
        defer { scratch.deallocate() }
        let saved = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        let parts = saved > 1 ? 2 : 1
        let work = { (part: Int) in
            for (i, (range, g)) in pieces.enumerated() where i % parts == part {
                let r0 = range.lowerBound
                backward(config: c, qkv: qkv + r0 * stride, count: range.count, output: output + r0 * hd,
                         logSumExp: logSumExp + r0 * c.headCount, outputGradient: dOut + r0 * hd,
                         qkvGradient: dQKV + r0 * stride, group: g, scratch: scratch + part * perThread)
            }
        }
        if parts > 1 { DispatchQueue.concurrentPerform(iterations: parts, execute: work) } else { work(0) }
    }

    /// First key position a query at `position` may see (sliding-window models see the last
    /// `window` positions, transformers' `q − k < window`; others see from 0).
    @inline(__always) static func windowStart(position: Int, config c: ModelConfig) -> Int {
        guard let w = c.slidingWindow else { return 0 }
        return max(0, position - w + 1)
    }
}
