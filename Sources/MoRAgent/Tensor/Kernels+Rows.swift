import Dispatch

/// Row-wise kernels over whole matrices, split over two threads when the matrix is large.
///
/// Why: between two multi-threaded products, a single-threaded element-wise pass leaves the
/// second core idle. In the tiny LoRA training step (1,024 rows), SwiGLU, its gradient, RMSNorm
/// and the cross-entropy's softmax are an eighth of the single-threaded work.
extension Kernels {
    /// Below this many elements a pass stays on the calling thread: waking a worker thread
    /// costs tens of microseconds, as long as a pass over ~64k floats.
    static let parallelElements = 1 << 16

    /// Calls `body` with ranges that together cover `0..<rows` exactly once: two halves on two
    /// threads when OpenBLAS may use more than one (`BLAS.threads`, the caller's thread budget:
    /// callers already running on several threads set it to 1) and the pass touches at least
    /// `parallelElements` elements, else the whole range on the calling thread.
    static func forEachRowRange(_ rows: Int, elements: Int, _ body: (Range<Int>) -> Void) {
        guard rows > 1, elements >= parallelElements, BLAS.threads > 1 else {
            body(0..<rows)
            return
        }
        let half = (rows + 1) / 2
        DispatchQueue.concurrentPerform(iterations: 2) { part in body(part == 0 ? 0..<half : half..<rows) }
    }

    /// `siluMultiply` on every row of `gateUp[N, 2I]` (each row the gate projection, then the up
    /// projection), into `out[N, I]`.
    public static func siluMultiply(rows n: Int, gateUp: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, width i: Int) {
        forEachRowRange(n, elements: n * i) { range in
            for r in range { siluMultiply(gate: gateUp + r * 2 * i, up: gateUp + r * 2 * i + i, into: out + r * i, count: i) }
        }
    }

    /// `siluMultiplyBackward` on every row: from `gateUp[N, 2I]` and `outputGradient[N, I]`,
    /// writes `gateUpGradient[N, 2I]` (gate then up gradients in each row), which may be
    /// `gateUp` itself.
    public static func siluMultiplyBackward(rows n: Int, gateUp: UnsafePointer<Float>, outputGradient da: UnsafePointer<Float>,
                                            gateUpGradient dGateUp: UnsafeMutablePointer<Float>, width i: Int) {
        forEachRowRange(n, elements: n * i) { range in
            for r in range {
                let g = gateUp + r * 2 * i, dg = dGateUp + r * 2 * i
                siluMultiplyBackward(gate: g, up: g + i, outputGradient: da + r * i, gateGradient: dg, upGradient: dg + i, count: i)
            }
        }
    }
}
