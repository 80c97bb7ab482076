import COpenBLAS

/// Every matrix product of the engine, through OpenBLAS (DESIGN.md §2).
///
/// Weights keep Hugging Face's `[out, in]` layout, so a linear layer is `y = x Wᵀ`. A single
/// row goes through `sgemv`: on this machine's OpenBLAS an M = 1 `sgemm` is several times slower
/// (shared/bench/README.md), and batch-1 decode is nothing but such products.
public enum BLAS {
    /// `y[M, N] = x[M, K] · W[N, K]ᵀ (+ y if accumulate)`; row strides are the natural ones.
    public static func linear(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int,
                              weight w: UnsafePointer<Float>, outFeatures n: Int,
                              into y: UnsafeMutablePointer<Float>, accumulate: Bool = false) {
        linear(x, rows: m, inFeatures: k, xStride: k, weight: w, outFeatures: n, into: y, yStride: n,
               accumulate: accumulate)
    }

    /// `y[M, N] = x[M, K] · W[N, K]ᵀ + bias[N]` (no bias: `linear`). The bias is written into
    /// `y` first and the product added onto it (`beta = 1`): one pass over `y` instead of
    /// OpenBLAS zeroing it for `beta = 0` and a second pass adding the bias.
    public static func linear(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int,
                              weight w: UnsafePointer<Float>, bias: UnsafePointer<Float>?, outFeatures n: Int,
                              into y: UnsafeMutablePointer<Float>) {
        guard let bias else { return linear(x, rows: m, inFeatures: k, weight: w, outFeatures: n, into: y) }
        for r in 0..<m { (y + r * n).update(from: bias, count: n) }
        linear(x, rows: m, inFeatures: k, weight: w, outFeatures: n, into: y, accumulate: true)
    }

    /// `linear` with explicit row strides for `x` and `y` (to read or write column slices).
    public static func linear(_ x: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, xStride: Int,
                              weight w: UnsafePointer<Float>, outFeatures n: Int,
                              into y: UnsafeMutablePointer<Float>, yStride: Int, accumulate: Bool = false) {
        guard m > 0, n > 0 else { return }
        let beta: Float = accumulate ? 1 : 0
        if k == 0 {
            if !accumulate { for r in 0..<m { (y + r * yStride).update(repeating: 0, count: n) } }
            return
        }
        if m == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), 1, w, Int32(k), x, 1, beta, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1,
                        x, Int32(xStride), w, Int32(k), beta, y, Int32(yStride))
        }
    }

    /// General `C[M, N] = alpha · op(A) · op(B) + beta · C`, row-major with explicit leading dimensions.
    public static func gemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        guard m > 0, n > 0 else { return }
        cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y[M] = alpha · op(A[rows, cols]) · x + beta · y`, row-major with leading dimension `lda`.
    public static func gemv(transpose: Bool, rows: Int, columns: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, x: UnsafePointer<Float>, incx: Int = 1,
                            beta: Float = 0, y: UnsafeMutablePointer<Float>, incy: Int = 1) {
        guard rows > 0, columns > 0 else { return }
        cblas_sgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, Int32(rows), Int32(columns), alpha,
                    a, Int32(lda), x, Int32(incx), beta, y, Int32(incy))
    }

    /// The number of threads OpenBLAS uses for one call.
    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(max(1, newValue))) }
    }
}
