/// One adapted projection: `y = W x (+ b) + s · B (A x)` with `A[r, in]`, `B[out, r]` in PEFT's
/// shapes (so they save and load as PEFT's `lora_A.weight` / `lora_B.weight` unchanged).
public final class LoRAModule: @unchecked Sendable {
    /// `[r, in]`.
    public let a: Tensor
    /// `[out, r]`.
    public let b: Tensor
    /// `s`.
    public var scale: Float

    /// The rank `r`.
    public var rank: Int { a.shape[0] }
    /// Input features.
    public var inFeatures: Int { a.shape[1] }
    /// Output features.
    public var outFeatures: Int { b.shape[0] }

    /// A module from existing matrices; shapes must agree.
    public init(a: Tensor, b: Tensor, scale: Float) throws {
        guard a.shape.count == 2, b.shape.count == 2, b.shape[1] == a.shape[0], a.shape[0] > 0 else {
            throw MoRAgentError.invalidArgument("LoRA shapes A \(a.shape) and B \(b.shape) do not form [r, in] and [out, r]")
        }
        self.a = a
        self.b = b
        self.scale = scale
    }

    /// PEFT's initialisation: A Kaiming-uniform with a = √5 (uniform in ±1/√in), B zero, so a
    /// new expert starts as the base model exactly.
    public init(rank: Int, inFeatures: Int, outFeatures: Int, scale: Float, generator: inout SeededGenerator) {
        a = Tensor(zeros: [rank, inFeatures])
        b = Tensor(zeros: [outFeatures, rank])
        self.scale = scale
        let bound = 1 / Float(inFeatures).squareRoot()
        for i in 0..<a.count { a.pointer[i] = (generator.nextUnitFloat() * 2 - 1) * bound }
    }

    /// `dL/dw` for each of `rows` when this module's delta is scaled by a weight `w` per row:
    /// `s·⟨X Aᵀ, dY B⟩` row by row, from the projection's input `X[N, in]` and output gradient
    /// `dY[N, out]` (rows gathered, two small GEMMs). Routers differentiate through it.
    public func weightGradients(rows: [Int], input: UnsafePointer<Float>, inputStride: Int,
                                outputGradient: UnsafePointer<Float>, outputGradientStride: Int) -> [Float] {
        guard !rows.isEmpty else { return [] }
        let m = rows.count, r = rank
        let x = Tensor(uninitialized: [m, inFeatures]), dy = Tensor(uninitialized: [m, outFeatures])
        for (i, row) in rows.enumerated() {
            (x.pointer + i * inFeatures).update(from: input + row * inputStride, count: inFeatures)
            (dy.pointer + i * outFeatures).update(from: outputGradient + row * outputGradientStride, count: outFeatures)
        }
        let t = Tensor(uninitialized: [m, r]), u = Tensor(uninitialized: [m, r])
        BLAS.linear(x.pointer, rows: m, inFeatures: inFeatures, weight: a.pointer, outFeatures: r, into: t.pointer)
        BLAS.gemm(transposeA: false, transposeB: false, m: m, n: r, k: outFeatures, a: dy.pointer, lda: outFeatures,
                  b: b.pointer, ldb: r, c: u.pointer, ldc: r)
        return (0..<m).map { i in scale * Kernels.dot(t.pointer + i * r, u.pointer + i * r, count: r) }
    }
}
