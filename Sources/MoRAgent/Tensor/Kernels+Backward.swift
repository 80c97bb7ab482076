#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Gradients of the element-wise and row-wise kernels, each beside the forward it inverts.
extension Kernels {
    /// RMSNorm backward for rows `x[N, C]`: with `r = 1/sqrt(mean(x²) + eps)` and `y = w ⊙ x · r`,
    /// `dx_i = r·w_i·dy_i − (r³/C)·x_i·Σ_j w_j·dy_j·x_j`, added into `dx`; when `dWeight` is
    /// given, `dw_j += Σ_rows dy_j·x_j·r` is added too. Without `dWeight`, large matrices are
    /// split over two threads (with it, the rows' sum keeps one order, so results stay bit-exact).
    public static func rmsNormBackward(_ x: UnsafePointer<Float>, rows: Int, columns c: Int, weight: UnsafePointer<Float>, eps: Float,
                                       outputGradient dy: UnsafePointer<Float>, addingInto dx: UnsafeMutablePointer<Float>,
                                       weightGradient dWeight: UnsafeMutablePointer<Float>? = nil) {
        guard let dWeight else {
            forEachRowRange(rows, elements: rows * c) { range in
                rmsNormBackward(x, rows: range, columns: c, weight: weight, eps: eps, outputGradient: dy, addingInto: dx, weightGradient: nil)
            }
            return
        }
        rmsNormBackward(x, rows: 0..<rows, columns: c, weight: weight, eps: eps, outputGradient: dy, addingInto: dx, weightGradient: dWeight)
    }

    private static func rmsNormBackward(_ x: UnsafePointer<Float>, rows: Range<Int>, columns c: Int, weight: UnsafePointer<Float>, eps: Float,
                                        outputGradient dy: UnsafePointer<Float>, addingInto dx: UnsafeMutablePointer<Float>,
                                        weightGradient dWeight: UnsafeMutablePointer<Float>?) {
        for row in rows {
            let xr = x + row * c, dyr = dy + row * c, dxr = dx + row * c
            let meanSquare = dot(xr, xr, count: c) / Float(c)
            let r = 1 / (meanSquare + eps).squareRoot()
            var acc = V8.zero
            var j = 0
            while j + 8 <= c { acc = multiplyAdd(load(weight + j) * load(dyr + j), load(xr + j), acc); j += 8 }
            var s = acc.sum()
            while j < c { s += weight[j] * dyr[j] * xr[j]; j += 1 }
            let k = r * r * r * s / Float(c)
            let vr = V8(repeating: r), vk = V8(repeating: k)
            j = 0
            while j + 8 <= c { store(multiplyAdd(vr * load(weight + j), load(dyr + j), load(dxr + j)) - vk * load(xr + j), dxr + j); j += 8 }
            while j < c { dxr[j] += r * weight[j] * dyr[j] - k * xr[j]; j += 1 }
            if let dWeight {
                j = 0
                while j + 8 <= c { store(load(dWeight + j) + load(dyr + j) * load(xr + j) * vr, dWeight + j); j += 8 }
                while j < c { dWeight[j] += dyr[j] * xr[j] * r; j += 1 }
            }
        }
    }

    /// SwiGLU backward: for `a = silu(g)·u`, `du = da·silu(g)` and
    /// `dg = da·u·σ(g)·(1 + g·(1 − σ(g)))`, written (not added) into `dGate`, `dUp`, which may
    /// be `gate` and `up` themselves (each element is read before it is written).
    public static func siluMultiplyBackward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, outputGradient da: UnsafePointer<Float>,
                                            gateGradient dGate: UnsafeMutablePointer<Float>, upGradient dUp: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 8 <= n {
            let g = load(gate + i), u = load(up + i), a = load(da + i)
            let s = 1 / (1 + exp(-g))
            store(a * g * s, dUp + i)
            store(a * u * s * multiplyAdd(g, 1 - s, V8(repeating: 1)), dGate + i)
            i += 8
        }
        while i < n {
            let g = gate[i], u = up[i], s = 1 / (1 + expf(-g))
            dUp[i] = da[i] * g * s
            dGate[i] = da[i] * u * s * (1 + g * (1 - s))
            i += 1
        }
    }

    /// One row of a softmax's backward from its normaliser: scores `x[n]` become the
    /// probabilities `p_j = e^(x_j − logSumExp)` and the probabilities' gradient `dy[n]` becomes
    /// the scores' gradient `p ⊙ (dy − outputDot)`, both in place, where `outputDot` is
    /// `Σ_j p_j·dy_j` (attention knows it beforehand as `dO·O`). One pass, where recomputing the
    /// softmax takes three. Probabilities below f32's smallest normal number are zero, as
    /// `softmax` flushes them (sub-normal operands slow the products that follow).
    public static func softmaxBackward(scores x: UnsafeMutablePointer<Float>, logSumExp: Float, outputGradient dy: UnsafeMutablePointer<Float>,
                                       outputDot: Float, count n: Int) {
        // Below this exponent e^t is sub-normal (log of Float.leastNormalMagnitude).
        let cutoff: Float = -87.336_54
        let vl = V8(repeating: logSumExp), vd = V8(repeating: outputDot), vc = V8(repeating: cutoff)
        var i = 0
        while i + 8 <= n {
            let t = load(x + i) - vl
            var p = exp(t)
            p.replace(with: 0, where: t .< vc)
            store(p, x + i)
            store(p * (load(dy + i) - vd), dy + i)
            i += 8
        }
        while i < n {
            let t = x[i] - logSumExp, p = t < cutoff ? 0 : expf(t)
            x[i] = p
            dy[i] = p * (dy[i] - outputDot)
            i += 1
        }
    }

    /// The inverse rotation of `rotary` (rotation by −θ), which is also its gradient: RoPE is
    /// orthogonal, so `dx = Rᵀ dy`.
    public static func rotaryBackward(_ x: UnsafeMutablePointer<Float>, heads: Int, headDimension d: Int,
                                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = d / 2
        for h in 0..<heads {
            let a = x + h * d, b = a + half
            for i in 0..<half {
                let y1 = a[i], y2 = b[i]
                a[i] = y1 * cos[i] + y2 * sin[i]
                b[i] = y2 * cos[i] - y1 * sin[i]
            }
        }
    }
}
