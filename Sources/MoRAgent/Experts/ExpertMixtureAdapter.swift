/// Applies experts to the rows of a packed batch, each row with its own expert or mixture, in
/// one forward (DESIGN.md §3: the CPU analogue of S-LoRA/Punica's SGMV).
///
/// For every expert, the rows that use it are gathered (or read and written in place when they
/// are one contiguous run, the common case of one sequence on one expert), go through two small
/// GEMMs `T = X Aᵀ` (`[m, r]`) and `Y = (w·s·T) Bᵀ` (`[m, out]`), and are scatter-added into the
/// projection's output. Cost is proportional to the rows each expert actually serves.
public final class ExpertMixtureAdapter: TrainableAdapter {
    /// The experts.
    public let experts: ExpertSet
    /// Where `backward` accumulates the experts' gradients (nil: inference only).
    public var gradients: ExpertGradients?
    /// `dL/dw_k` per sequence and expert, when enabled: the gradient of the loss with respect to
    /// the weight of expert k's delta on that sequence's tokens, for every k (also the experts
    /// the route does not use). PA-MoE's straight-through estimator reads it as `dL/dp_k`
    /// (DESIGN.md §4).
    public private(set) var routeWeightGradients: [[Double]]?
    /// The sequence of every packed row (known when built from per-sequence routes).
    let rowSequences: [Int]?
    /// For each expert id, the rows it serves and their weights (rows ascending).
    let groups: [(rows: [Int], weights: [Float])]
    /// Reused buffers: T, gathered X, gathered Y or dY, dT, dX.
    private var scratch: [UnsafeMutablePointer<Float>?] = [nil, nil, nil, nil, nil]
    private var capacity = [0, 0, 0, 0, 0]

    /// One route per sequence, for sequences of `tokenCounts` new tokens packed in order.
    public convenience init(experts: ExpertSet, routes: [ExpertRoute], tokenCounts: [Int]) throws {
        guard routes.count == tokenCounts.count else {
            throw MoRAgentError.invalidArgument("\(routes.count) routes for \(tokenCounts.count) sequences")
        }
        var rows: [[(expert: Int, weight: Float)]] = []
        for (route, n) in zip(routes, tokenCounts) {
            let entries: [(expert: Int, weight: Float)]
            switch route {
            case .base: entries = []
            case .expert(let k): entries = [(k, 1)]
            case .mixture(let m): entries = m
            }
            rows += Array(repeating: entries, count: n)
        }
        try self.init(experts: experts, rowWeights: rows,
                      rowSequences: tokenCounts.enumerated().flatMap { Array(repeating: $0.offset, count: $0.element) })
    }

    /// Starts recording `routeWeightGradients` (zeroed) in `backward`.
    public func recordRouteWeightGradients() throws {
        guard let rowSequences else { throw MoRAgentError.invalidArgument("route-weight gradients need per-sequence routes") }
        routeWeightGradients = Array(repeating: Array(repeating: 0, count: experts.count), count: (rowSequences.max() ?? -1) + 1)
    }

    /// Per packed row, the experts it goes through and their weights (token-level routing).
    public convenience init(experts: ExpertSet, rowWeights: [[(expert: Int, weight: Float)]], rowSequences: [Int]? = nil) throws {
        for entries in rowWeights {
            for (k, w) in entries {
                guard k >= 0, k < experts.count else {
                    throw MoRAgentError.invalidArgument("expert id \(k) is outside 0..<\(experts.count)")
                }
                guard w.isFinite else { throw MoRAgentError.invalidArgument("expert weight \(w) is not finite") }
            }
        }
        self.init(experts: experts, checkedRowWeights: rowWeights, rowSequences: rowSequences)
    }

    /// Per-row weights whose expert ids are known to be in range (a router's own output).
    init(experts: ExpertSet, checkedRowWeights rowWeights: [[(expert: Int, weight: Float)]], rowSequences: [Int]? = nil) {
        var groups = Array(repeating: (rows: [Int](), weights: [Float]()), count: experts.count)
        for (row, entries) in rowWeights.enumerated() {
            for (k, w) in entries where w != 0 {
                groups[k].rows.append(row)
                groups[k].weights.append(w)
            }
        }
        self.experts = experts
        self.groups = groups
        self.rowSequences = rowSequences
    }

    deinit { scratch.forEach { $0?.deallocate() } }

    private func buffer(_ i: Int, _ count: Int) -> UnsafeMutablePointer<Float> {
        if capacity[i] < count {
            scratch[i]?.deallocate()
            scratch[i] = .allocate(capacity: count)
            capacity[i] = count
        }
        return scratch[i]!
    }

    public func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        for (k, group) in groups.enumerated() where !group.rows.isEmpty {
            guard let module = experts.experts[k].modules[key] else { continue }
            let m = group.rows.count, r = module.rank, inF = module.inFeatures, outF = module.outFeatures
            let first = group.rows[0]
            let t = buffer(0, m * r)                                   // T[m, r] = w·s·X Aᵀ
            if group.rows[m - 1] - first == m - 1 {
                BLAS.gemm(transposeA: false, transposeB: true, m: m, n: r, k: inF, alpha: module.scale, a: input + first * inputStride,
                          lda: inputStride, b: module.a.pointer, ldb: inF, c: t, ldc: r)
                scaleRows(t, width: r, by: group.weights)
                BLAS.linear(t, rows: m, inFeatures: r, xStride: r, weight: module.b.pointer, outFeatures: outF,
                            into: output + first * outputStride, yStride: outputStride, accumulate: true)
                continue
            }
            let x = buffer(1, m * inF)                                 // gathered X[m, in]
            for (i, row) in group.rows.enumerated() { (x + i * inF).update(from: input + row * inputStride, count: inF) }
            BLAS.gemm(transposeA: false, transposeB: true, m: m, n: r, k: inF, alpha: module.scale, a: x, lda: inF,
                      b: module.a.pointer, ldb: inF, c: t, ldc: r)
            scaleRows(t, width: r, by: group.weights)
            let y = buffer(2, m * outF)                                // Y[m, out]
            BLAS.linear(t, rows: m, inFeatures: r, weight: module.b.pointer, outFeatures: outF, into: y)
            for (i, row) in group.rows.enumerated() { Kernels.add(y + i * outF, into: output + row * outputStride, count: outF) }
        }
    }

    /// The same as `addDelta`: a fixed mixture decides and records nothing in the forward.
    public func replayDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                            output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
        addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
    }

    /// Multiplies row `i` of `x[m, width]` by `weights[i]`, unless every weight is 1 (one expert
    /// per sequence, the common case).
    private func scaleRows(_ x: UnsafeMutablePointer<Float>, width: Int, by weights: [Float]) {
        guard !weights.allSatisfy({ $0 == 1 }) else { return }
        for (i, w) in weights.enumerated() { Kernels.scale(x + i * width, by: w, count: width) }
    }

    /// Whether any expert adapts projection `kind` of `layer` (the decoder skips recomputing the
    /// inputs of projections no expert adapts).
    public func adapts(layer: Int, kind: ProjectionKind) -> Bool {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        return experts.experts.contains { $0.modules[key] != nil }
    }

    /// LoRA backward for each expert group: with `T = X Aᵀ` (recomputed, it is only r wide) and
    /// `Y += (w·s·T) Bᵀ`: `dB += (w·s·T)ᵀ dY`, `dT = w·s·dY B`, `dA += dTᵀ X`, `dX += dT A`.
    public func backward(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                         outputGradient: UnsafePointer<Float>, outputGradientStride: Int,
                         inputGradient: UnsafeMutablePointer<Float>, inputGradientStride: Int, rows: Int) {
        let key = LoRAModuleKey(layer: layer, kind: kind)
        if routeWeightGradients != nil, let rowSequences {
            // dL/dw_k over a sequence's rows = s_k · Σ_rows (dY B_k) · (X A_kᵀ), for every expert k.
            for (k, expert) in experts.experts.enumerated() {
                guard let m = expert.modules[key] else { continue }
                let values = m.weightGradients(rows: Array(0..<rows), input: input, inputStride: inputStride,
                                               outputGradient: outputGradient, outputGradientStride: outputGradientStride)
                for (row, value) in values.enumerated() { routeWeightGradients![rowSequences[row]][k] += Double(value) }
            }
        }
        for (k, group) in groups.enumerated() where !group.rows.isEmpty {
            guard let module = experts.experts[k].modules[key] else { continue }
            let m = group.rows.count, r = module.rank, inF = module.inFeatures, outF = module.outFeatures
            let first = group.rows[0], contiguous = group.rows[m - 1] - first == m - 1
            // X[m, in] and dY[m, out]: read in place when the rows are one run (one sequence on
            // one expert), else gathered.
            var x = input + first * inputStride, xStride = inputStride
            var dy = outputGradient + first * outputGradientStride, dyStride = outputGradientStride
            if !contiguous {
                let gx = buffer(1, m * inF), gdy = buffer(2, m * outF)
                for (i, row) in group.rows.enumerated() {
                    (gx + i * inF).update(from: input + row * inputStride, count: inF)
                    (gdy + i * outF).update(from: outputGradient + row * outputGradientStride, count: outF)
                }
                (x, xStride, dy, dyStride) = (UnsafePointer(gx), inF, UnsafePointer(gdy), outF)
            }
            let t = buffer(0, m * r), dT = buffer(3, m * r)                              // w·s·X Aᵀ, w·s·dY B: [m, r]
            BLAS.gemm(transposeA: false, transposeB: true, m: m, n: r, k: inF, alpha: module.scale, a: x, lda: xStride,
                      b: module.a.pointer, ldb: inF, c: t, ldc: r)
            BLAS.gemm(transposeA: false, transposeB: false, m: m, n: r, k: outF, alpha: module.scale, a: dy, lda: dyStride,
                      b: module.b.pointer, ldb: r, c: dT, ldc: r)
            scaleRows(t, width: r, by: group.weights)
            scaleRows(dT, width: r, by: group.weights)
            if let grads = gradients?[k, key] {
                BLAS.gemm(transposeA: true, transposeB: false, m: outF, n: r, k: m, a: dy, lda: dyStride,
                          b: t, ldb: r, beta: 1, c: grads.b.pointer, ldc: r)
                BLAS.gemm(transposeA: true, transposeB: false, m: r, n: inF, k: m, a: dT, lda: r,
                          b: x, ldb: xStride, beta: 1, c: grads.a.pointer, ldc: inF)
            }
            if contiguous {
                BLAS.gemm(transposeA: false, transposeB: false, m: m, n: inF, k: r, a: dT, lda: r, b: module.a.pointer, ldb: inF,
                          beta: 1, c: inputGradient + first * inputGradientStride, ldc: inputGradientStride)
                continue
            }
            let dx = buffer(4, m * inF)                                                  // dX[m, in]
            BLAS.gemm(transposeA: false, transposeB: false, m: m, n: inF, k: r, a: dT, lda: r,
                      b: module.a.pointer, ldb: inF, c: dx, ldc: inF)
            for (i, row) in group.rows.enumerated() {
                Kernels.add(dx + i * inF, into: inputGradient + row * inputGradientStride, count: inF)
            }
        }
    }
}
