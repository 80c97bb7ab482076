import Foundation
import MoRAgent

/// The measurements behind `moragent bench forward`.
struct ForwardBenchmark {
    let decoder: Decoder
    let repeats: Int

    /// Floats read from weights by one decode step (every matrix once; the LM head included).
    var weightBytes: Int {
        let c = decoder.config
        let perLayer = c.qkvWidth * c.hiddenSize + c.hiddenSize * c.headCount * c.headDimension + 3 * c.hiddenSize * c.intermediateSize
        return 4 * (c.layerCount * perLayer + c.vocabularySize * c.hiddenSize)
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    static func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    /// Median seconds of `body` over `repeats` runs after one warm-up.
    func timed(_ body: () throws -> Void) rethrows -> Double {
        try body()
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t = Self.now()
            try body()
            times.append(Self.now() - t)
        }
        return Self.median(times)
    }

    /// OpenBLAS sgemm GFLOP/s on a large square product, the machine's practical ceiling.
    static func sgemmPeak(size n: Int = 1536) -> Double {
        let a = Tensor(zeros: [n, n]), b = Tensor(zeros: [n, n]), c = Tensor(zeros: [n, n])
        for i in 0..<(n * n) { a.pointer[i] = Float(i % 7) * 0.1; b.pointer[i] = Float(i % 5) * 0.1 }
        var best = 0.0
        for _ in 0..<4 {
            let t = now()
            BLAS.gemm(transposeA: false, transposeB: true, m: n, n: n, k: n, a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
            best = max(best, 2 * pow(Double(n), 3) / (now() - t) / 1e9)
        }
        return best
    }

    /// Floating-point operations of a forward over `n` new tokens after `past` cached ones,
    /// with logits for `logitRows` rows: matrix products plus causal attention (each query
    /// against the positions it sees, 4·D flops per query-key pair and head).
    func flops(tokens n: Int, past: Int, logitRows: Int) -> Double {
        let c = decoder.config
        let d = Double(c.headDimension), h = Double(c.headCount)
        let perToken = 2.0 * Double(c.qkvWidth * c.hiddenSize + c.hiddenSize * c.headCount * c.headDimension + 3 * c.hiddenSize * c.intermediateSize)
        let pairs = Double(n) * Double(past) + Double(n) * Double(n + 1) / 2
        let attention = 4.0 * pairs * d * h
        return Double(c.layerCount) * (Double(n) * perToken + attention) + 2.0 * Double(logitRows * c.vocabularySize * c.hiddenSize)
    }

    /// Bytes per second OpenBLAS `sgemv` streams from a matrix far larger than the caches
    /// (512 MB): the practical memory-bandwidth ceiling of a batch-1 decode step.
    static func sgemvBandwidth(rows: Int = 131_072, columns: Int = 1024) -> Double {
        let w = Tensor(zeros: [rows, columns]), x = Tensor(zeros: [columns]), y = Tensor(zeros: [rows])
        for i in stride(from: 0, to: rows * columns, by: 1024) { w.pointer[i] = 1 }
        var best = 0.0
        for _ in 0..<5 {
            let t = now()
            BLAS.linear(x.pointer, rows: 1, inFeatures: columns, weight: w.pointer, outFeatures: rows, into: y.pointer)
            best = max(best, Double(rows * columns * 4) / (now() - t))
        }
        return best
    }

    struct Prefill { let tokensPerSecond: Double; let gflops: Double }

    func prefill(tokens n: Int) throws -> Prefill {
        let v = decoder.config.vocabularySize
        let ids = (0..<n).map { Int32(($0 * 7919) % v) }
        let s = try timed {
            _ = try decoder.forward([DecoderSequence(tokens: ids, cache: KVCache(config: decoder.config, capacity: n))], logits: .all)
        }
        return Prefill(tokensPerSecond: Double(n) / s, gflops: flops(tokens: n, past: 0, logitRows: n) / s / 1e9)
    }

    struct Decode {
        let tokensPerSecond: Double
        let secondsPerStep: Double
        let tokensPerSecondIncludingPrefill: Double
        let weightBytesPerSecond: Double
    }

    /// Greedy decode of `newTokens` after a `promptTokens` prefill, batch `b`; the decode rate
    /// excludes the prefill, the second rate includes it (as the peer script times `generate`).
    func decode(batch b: Int, promptTokens: Int, newTokens: Int) throws -> Decode {
        let c = decoder.config
        var decodeTimes: [Double] = [], totalTimes: [Double] = []
        for r in 0...max(1, repeats / 2) {
            let caches = (0..<b).map { _ in KVCache(config: c, capacity: promptTokens + newTokens) }
            let prompts = (0..<b).map { s in (0..<promptTokens).map { Int32(($0 * 31 + s * 17 + 3) % c.vocabularySize) } }
            var samplers = (0..<b).map { _ in TokenSampler(parameters: SamplingParameters()) }
            let t0 = Self.now()
            var out = try decoder.forward(zip(prompts, caches).map { DecoderSequence(tokens: $0, cache: $1) }, logits: .last)
            let t1 = Self.now()
            for _ in 0..<newTokens {
                let logits = out.logits!
                let next = (0..<b).map { s in samplers[s].sample(logits.pointer + s * c.vocabularySize, count: c.vocabularySize).id }
                out = try decoder.forward((0..<b).map { DecoderSequence(tokens: [next[$0]], cache: caches[$0]) }, logits: .last)
            }
            let t2 = Self.now()
            if r > 0 { decodeTimes.append(t2 - t1); totalTimes.append(t2 - t0) }  // the first run warms up
        }
        let dt = Self.median(decodeTimes), tt = Self.median(totalTimes)
        let step = dt / Double(newTokens)
        return Decode(tokensPerSecond: Double(b * newTokens) / dt, secondsPerStep: step,
                      tokensPerSecondIncludingPrefill: Double(b * newTokens) / tt,
                      weightBytesPerSecond: Double(weightBytes) / step)
    }
}
