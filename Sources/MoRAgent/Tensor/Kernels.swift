#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Element-wise and row-wise kernels: SIMD loops over raw buffers (the hot paths of every layer
/// that are not matrix products). Shapes: `x[N, C]` rows of `C` channels, contiguous.
public enum Kernels {
    typealias V8 = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V8 {
        UnsafeRawPointer(p).loadUnaligned(as: V8.self)
    }

    @inline(__always) static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
    }

    /// `a·b + c`, fused into one FMA when the module is built for a CPU with FMA
    /// (`MORAGENT_FMA`, set by `Package.swift` beside `-target-cpu haswell`). Swift never
    /// contracts `a * b + c` itself, and without FMA instructions a fused multiply-add is a
    /// library call per lane, so portable builds keep the separate multiply and add.
    @inline(__always) static func multiplyAdd(_ a: V8, _ b: V8, _ c: V8) -> V8 {
        #if MORAGENT_FMA
        return c.addingProduct(a, b)
        #else
        return a * b + c
        #endif
    }

    /// `e^x` for eight lanes: Cody–Waite range reduction `x = n·ln2 + r`, then a degree-6 Taylor
    /// polynomial on |r| ≤ ln2/2 (relative error below 2e-7, under f32's own rounding noise in
    /// a softmax). Inputs are clamped to f32's finite exponent range.
    ///
    /// Rounding and the float→int conversion use the 1.5·2²³ "magic number": adding it leaves
    /// round-to-nearest(x) in the low mantissa bits. Swift's generic `SIMD8<Int32>(_:)` and
    /// `rounded()` are not vectorised and cost more than the rest of the kernel together.
    /// Products and sums go through `multiplyAdd` (one FMA each where the build has FMA): the
    /// kernel is bound by its multiplies and adds, and the softmax rows of attention and of the
    /// loss, and SwiGLU, all run through it.
    @inline(__always) static func exp(_ x: V8) -> V8 {
        let magic = V8(repeating: 0x1.8p23)
        var clamped = x
        let lo = V8(repeating: -87.3), hi = V8(repeating: 88.7)
        clamped.replace(with: lo, where: clamped .< lo)
        clamped.replace(with: hi, where: clamped .> hi)
        let shifted = multiplyAdd(clamped, V8(repeating: 1.442_695_04), magic)
        let n = shifted - magic
        var r = multiplyAdd(n, V8(repeating: -0.693_359_375), clamped)
        r = multiplyAdd(n, V8(repeating: 2.121_944_4e-4), r)
        var p = V8(repeating: 1.0 / 720)
        p = multiplyAdd(p, r, V8(repeating: 1.0 / 120))
        p = multiplyAdd(p, r, V8(repeating: 1.0 / 24))
        p = multiplyAdd(p, r, V8(repeating: 1.0 / 6))
        p = multiplyAdd(p, r, V8(repeating: 0.5))
        p = multiplyAdd(p, r, V8(repeating: 1))
        p = multiplyAdd(p, r, V8(repeating: 1))
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
        let bits = (integer &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: V8.self)
    }

    /// `y[i] += x[i]` for `n` elements (residual connections).
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n { store(load(y + i) + load(x + i), y + i); i += 8 }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// `y[i] += a · x[i]`.
    public static func addScaled(_ x: UnsafePointer<Float>, scale a: Float, into y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        let va = V8(repeating: a)
        while i + 8 <= n { store(multiplyAdd(va, load(x + i), load(y + i)), y + i); i += 8 }
        while i < n { y[i] += a * x[i]; i += 1 }
    }

    /// RMSNorm of each row as transformers computes it: `w ⊙ x / sqrt(mean(x²) + eps)`.
    /// `x[N, C]`, `weight[C]`, `out[N, C]` (may alias `x`). Large matrices are split over two
    /// threads (`forEachRowRange`).
    public static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, columns c: Int, weight: UnsafePointer<Float>,
                               eps: Float, into out: UnsafeMutablePointer<Float>) {
        forEachRowRange(rows, elements: rows * c) { range in rmsNorm(x, rows: range, columns: c, weight: weight, eps: eps, into: out) }
    }

    private static func rmsNorm(_ x: UnsafePointer<Float>, rows: Range<Int>, columns c: Int, weight: UnsafePointer<Float>,
                                eps: Float, into out: UnsafeMutablePointer<Float>) {
        for r in rows {
            let xr = x + r * c, yr = out + r * c
            var acc = V8.zero
            var i = 0
            while i + 8 <= c { let v = load(xr + i); acc = multiplyAdd(v, v, acc); i += 8 }
            var sum = acc.sum()
            while i < c { sum += xr[i] * xr[i]; i += 1 }
            let inv = 1 / (sum / Float(c) + eps).squareRoot()
            let vinv = V8(repeating: inv)
            i = 0
            while i + 8 <= c { store(load(xr + i) * vinv * load(weight + i), yr + i); i += 8 }
            while i < c { yr[i] = xr[i] * inv * weight[i]; i += 1 }
        }
    }

    /// SwiGLU's gate: `out[i] = silu(gate[i]) · up[i]`, `silu(g) = g / (1 + e^-g)`.
    public static func siluMultiply(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                    into out: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n {
            let g = load(gate + i)
            store(g / (1 + exp(-g)) * load(up + i), out + i)
            i += 8
        }
        while i < n { let g = gate[i]; out[i] = g / (1 + expf(-g)) * up[i]; i += 1 }
    }

    /// In-place softmax of one row of `n` logits; returns the log of the normaliser
    /// (`max + log Σ e^(x - max)`), which turns the row into log-probabilities when subtracted.
    ///
    /// Probabilities below f32's smallest normal number are flushed to zero. They change nothing
    /// measurable, but as operands of the BLAS products that follow (attention's `P·V`, the loss
    /// gradient through the LM head) sub-normal floats take microcode assists: a cross-entropy
    /// over very confident logits ran 80 times slower before this.
    @discardableResult
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count n: Int) -> Float {
        guard n > 0 else { return 0 }
        let (sum, logSumExp) = exponentiate(x, count: n)
        let inv = 1 / sum, vinv = V8(repeating: inv), smallest = V8(repeating: Float.leastNormalMagnitude)
        var i = 0
        while i + 8 <= n {
            var v = load(x + i) * vinv
            v.replace(with: 0, where: v .< smallest)
            store(v, x + i)
            i += 8
        }
        while i < n { let v = x[i] * inv; x[i] = v < Float.leastNormalMagnitude ? 0 : v; i += 1 }
        return logSumExp
    }

    /// The unnormalised softmax of one row of `n > 0` logits in place, `x_i ← e^(x_i − max)`,
    /// returning `Σ_i e^(x_i − max)` and the log of the normaliser `max + log Σ`: what a
    /// softmax, a cross-entropy gradient or attention (which divides its output rows instead of
    /// the probabilities) each finish in their own way. Every value is in (0, 1] and none is
    /// sub-normal (`exp` clamps; the scalar tail flushes).
    public static func exponentiate(_ x: UnsafeMutablePointer<Float>, count n: Int) -> (sum: Float, logSumExp: Float) {
        let m = max(x, count: n)
        var i = 0
        var acc = V8.zero
        let vm = V8(repeating: m)
        while i + 8 <= n { let e = exp(load(x + i) - vm); store(e, x + i); acc += e; i += 8 }
        var sum = acc.sum()
        while i < n { let e = expf(x[i] - m); x[i] = e < Float.leastNormalMagnitude ? 0 : e; sum += x[i]; i += 1 }
        return (sum, m + logf(sum))
    }

    /// `(Σ e^(x_i − m), Σ e^(x_i − m)·(x_i − m))` over `n` values: the normaliser and the
    /// entropy term of a softmax, in one vectorised pass (each 8-lane block summed into a Double).
    public static func exponentialMoments(_ x: UnsafePointer<Float>, count n: Int, shift m: Float) -> (sum: Double, weighted: Double) {
        var i = 0
        var sum = 0.0, weighted = 0.0
        let vm = V8(repeating: m)
        while i + 8 <= n {
            let d = load(x + i) - vm
            let e = exp(d)
            sum += Double(e.sum())
            weighted += Double((e * d).sum())
            i += 8
        }
        while i < n {
            let d = x[i] - m, e = expf(d)
            sum += Double(e); weighted += Double(e * d)
            i += 1
        }
        return (sum, weighted)
    }

    /// The largest of `n` values (`-inf` for none). Four running maxima, so each compare waits
    /// on the one four blocks back rather than the last (one chain was 1.2% of a `tiny` training
    /// step: every softmax row of attention and of the loss starts here).
    public static func max(_ x: UnsafePointer<Float>, count n: Int) -> Float {
        var i = 0
        var m0 = V8(repeating: -.infinity), m1 = m0, m2 = m0, m3 = m0
        while i + 32 <= n {
            let v0 = load(x + i), v1 = load(x + i + 8), v2 = load(x + i + 16), v3 = load(x + i + 24)
            m0.replace(with: v0, where: v0 .> m0); m1.replace(with: v1, where: v1 .> m1)
            m2.replace(with: v2, where: v2 .> m2); m3.replace(with: v3, where: v3 .> m3)
            i += 32
        }
        while i + 8 <= n { let v = load(x + i); m0.replace(with: v, where: v .> m0); i += 8 }
        m0.replace(with: m1, where: m1 .> m0); m2.replace(with: m3, where: m3 .> m2); m0.replace(with: m2, where: m2 .> m0)
        var m = m0.max()
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// `x[i] *= a`.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by a: Float, count n: Int) {
        var i = 0
        let va = V8(repeating: a)
        while i + 8 <= n { store(load(x + i) * va, x + i); i += 8 }
        while i < n { x[i] *= a; i += 1 }
    }

    /// Rotary position embedding in transformers' rotate-half form, in place on `heads` heads of
    /// width `d` laid out back to back: for `i < d/2`,
    /// `(x_i, x_{i+d/2}) ← (x_i cos θ_i − x_{i+d/2} sin θ_i, x_{i+d/2} cos θ_i + x_i sin θ_i)`.
    /// `cos[d/2]`, `sin[d/2]` hold the angles of this token's position.
    public static func rotary(_ x: UnsafeMutablePointer<Float>, heads: Int, headDimension d: Int,
                              cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = d / 2
        for h in 0..<heads {
            let a = x + h * d, b = a + half
            var i = 0
            while i + 8 <= half {
                let x1 = load(a + i), x2 = load(b + i), c = load(cos + i), s = load(sin + i)
                store(x1 * c - x2 * s, a + i)
                store(x2 * c + x1 * s, b + i)
                i += 8
            }
            while i < half {
                let x1 = a[i], x2 = b[i]
                a[i] = x1 * cos[i] - x2 * sin[i]
                b[i] = x2 * cos[i] + x1 * sin[i]
                i += 1
            }
        }
    }

    /// `Σ x[i]·y[i]`.
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count n: Int) -> Float {
        var i = 0
        var acc = V8.zero
        while i + 8 <= n { acc = multiplyAdd(load(x + i), load(y + i), acc); i += 8 }
        var s = acc.sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }
}
