/// Causal grouped-query attention of one sequence's new tokens against its KV cache.
///
/// Shapes: `n` new tokens at positions `L0 ..< L0+n`, the cache holding `L = L0 + n` positions
/// after this step's keys were appended; `H` query heads share `KVH` key/value heads in groups
/// of `H/KVH`. Scores go through BLAS (`sgemm` for a block of queries, `sgemv` for one).
enum Attention {
    /// Writes the attention output of `n` queries into `out` (`[n, H·D]`, row stride `outStride`).
    ///
    /// - `q`: `[n, H·D]` rotated queries with row stride `qStride`.
    /// - `keys`, `values`: `[L, KVH·D]` for this layer, rotated keys.
    /// - `scores`: scratch of at least `n·L` floats.
    static func forward(config c: ModelConfig, queries q: UnsafePointer<Float>, qStride: Int, count n: Int,
                        firstPosition l0: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                        scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>, outStride: Int) {
        let d = c.headDimension, kvw = c.keyValueWidth, groups = c.headCount / c.keyValueHeadCount
        let length = l0 + n
        let scale = 1 / Float(d).squareRoot()
        for h in 0..<c.headCount {
            let g = h / groups
            let qh = q + h * d, kg = keys + g * d, vg = values + g * d, oh = out + h * d
            if n == 1 {
                BLAS.gemv(transpose: false, rows: length, columns: d, alpha: scale, a: kg, lda: kvw, x: qh, y: scores)
                let lo = windowStart(position: l0, config: c)
                if lo > 0 { scores.update(repeating: 0, count: lo) }
                Kernels.softmax(scores + lo, count: length - lo)
                BLAS.gemv(transpose: true, rows: length - lo, columns: d, a: vg + lo * kvw, lda: kvw,
                          x: scores + lo, y: oh)
            } else {
                BLAS.gemm(transposeA: false, transposeB: true, m: n, n: length, k: d, alpha: scale,
                          a: qh, lda: qStride, b: kg, ldb: kvw, c: scores, ldc: length)
                for i in 0..<n {
                    let row = scores + i * length
                    let hi = l0 + i + 1
                    let lo = windowStart(position: l0 + i, config: c)
                    if lo > 0 { row.update(repeating: 0, count: lo) }
                    Kernels.softmax(row + lo, count: hi - lo)
                    if hi < length { (row + hi).update(repeating: 0, count: length - hi) }
                }
                BLAS.gemm(transposeA: false, transposeB: false, m: n, n: d, k: length,
                          a: scores, lda: length, b: vg, ldb: kvw, c: oh, ldc: outStride)
            }
        }
    }

    /// First key position a query at `position` may see (sliding-window models see the last
    /// `window` positions, transformers' `q − k < window`; others see from 0).
    @inline(__always) static func windowStart(position: Int, config c: ModelConfig) -> Int {
        guard let w = c.slidingWindow else { return 0 }
        return max(0, position - w + 1)
    }
}
