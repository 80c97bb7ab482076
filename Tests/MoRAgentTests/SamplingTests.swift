import XCTest
@testable import MoRAgent

/// Token sampling and generation: seeded determinism, the distribution itself, truncation
/// (top-k, top-p), log-probabilities, stop tokens and stop strings.
final class SamplingTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    func sampled(_ logits: [Float], _ parameters: SamplingParameters, draws: Int) -> [Int] {
        var sampler = TokenSampler(parameters: parameters)
        var counts = [Int](repeating: 0, count: logits.count)
        logits.withUnsafeBufferPointer { p in
            for _ in 0..<draws { counts[Int(sampler.sample(p.baseAddress!, count: logits.count).id)] += 1 }
        }
        return counts
    }

    /// Frequencies follow softmax(logits / T) and its top-k / top-p truncations. With 40,000
    /// draws the standard error of a frequency is at most 0.0025, so 0.012 is about 5 sigma.
    func testDrawsFollowTheTruncatedDistribution() {
        let logits: [Float] = [log(0.5), log(0.3), log(0.15), log(0.05)]
        var p = SamplingParameters()
        p.temperature = 1
        p.seed = 11
        func frequencies(_ q: SamplingParameters) -> [Double] { sampled(logits, q, draws: 40_000).map { Double($0) / 40_000 } }
        for (f, e) in zip(frequencies(p), [0.5, 0.3, 0.15, 0.05]) { XCTAssertEqual(f, e, accuracy: 0.012) }
        var k = p; k.topK = 2
        for (f, e) in zip(frequencies(k), [0.625, 0.375, 0, 0]) { XCTAssertEqual(f, e, accuracy: 0.012) }
        var nucleus = p; nucleus.topP = 0.85   // 0.5 + 0.3 < 0.85 ≤ 0.95: the first three stay
        for (f, e) in zip(frequencies(nucleus), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0]) { XCTAssertEqual(f, e, accuracy: 0.012) }
        var cold = p; cold.temperature = 0.5   // p ∝ p₀²
        let z = 0.25 + 0.09 + 0.0225 + 0.0025
        for (f, e) in zip(frequencies(cold), [0.25 / z, 0.09 / z, 0.0225 / z, 0.0025 / z]) { XCTAssertEqual(f, e, accuracy: 0.012) }
    }

    /// The reported log-probability and entropy are those of the unmodified distribution,
    /// whatever the temperature and truncation used to draw.
    func testLogProbabilityAndEntropyAreOfTheRawDistribution() {
        let logits: [Float] = [2, 1, 0.5, -1]
        let z = logits.map { exp(Double($0)) }.reduce(0, +)
        let probs = logits.map { exp(Double($0)) / z }
        let entropy = -probs.map { $0 * log($0) }.reduce(0, +)
        var p = SamplingParameters()
        p.temperature = 0.7; p.topK = 3; p.topP = 0.9; p.seed = 5
        var sampler = TokenSampler(parameters: p)
        for _ in 0..<50 {
            let t = logits.withUnsafeBufferPointer { sampler.sample($0.baseAddress!, count: 4) }
            XCTAssertEqual(Double(t.logProbability), log(probs[Int(t.id)]), accuracy: 1e-6)
            XCTAssertEqual(Double(t.entropy), entropy, accuracy: 1e-6)
        }
    }

    func testSameSeedSameTokensAndSeedsMatter() throws {
        var p = SamplingParameters()
        p.temperature = 1.0; p.topP = 0.95; p.maxNewTokens = 24; p.seed = 42; p.stopTokenIDs = []
        let a = try Self.engine.generate(prompt: "You are in the kitchen.", parameters: p)
        let b = try Self.engine.generate(prompt: "You are in the kitchen.", parameters: p)
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.ids.count, 24)
        let others = try (43...46).map { seed -> [Int32] in
            var q = p; q.seed = UInt64(seed)
            return try Self.engine.generate(prompt: "You are in the kitchen.", parameters: q).ids
        }
        XCTAssertTrue(others.contains { $0 != a.ids }, "four other seeds all gave seed 42's tokens")
    }

    /// Greedy equals top-k 1 and a vanishing top-p at any temperature; the log-probabilities
    /// equal a log-softmax of the decoder's own logits.
    func testGreedyAndItsEquivalents() throws {
        let prompt = try Self.engine.requireTokenizer().encode("go to fridge 1")
        var greedy = SamplingParameters(); greedy.maxNewTokens = 12; greedy.stopTokenIDs = []
        let g = try Self.engine.generate(prompts: [prompt], parameters: greedy)[0]
        var topK = greedy; topK.temperature = 1.3; topK.topK = 1; topK.seed = 9
        var topP = greedy; topP.temperature = 1.3; topP.topP = 1e-6; topP.seed = 9
        XCTAssertEqual(try Self.engine.generate(prompts: [prompt], parameters: topK)[0].ids, g.ids)
        XCTAssertEqual(try Self.engine.generate(prompts: [prompt], parameters: topP)[0].ids, g.ids)
        // Recompute every step's log-softmax from one full forward over prompt + generated.
        let d = Self.engine.decoder, v = d.config.vocabularySize
        let out = try d.forward([DecoderSequence(tokens: prompt + g.ids, cache: KVCache(config: d.config))], logits: .all)
        for (i, id) in g.ids.enumerated() {
            let row = (0..<v).map { Double(out.logits![prompt.count - 1 + i, $0]) }
            let m = row.max()!
            let lse = m + log(row.map { exp($0 - m) }.reduce(0, +))
            XCTAssertEqual(Double(g.logProbabilities[i]), row[Int(id)] - lse, accuracy: 1e-4)
        }
    }

    func testStopTokenAndStopString() throws {
        var p = SamplingParameters(); p.maxNewTokens = 30; p.stopTokenIDs = []
        let full = try Self.engine.generate(prompt: "You see a fridge 1", parameters: p)
        XCTAssertEqual(full.stopReason, .maxNewTokens)
        // Stop at the third generated token.
        var q = p; q.stopTokenIDs = [full.ids[2]]
        let byToken = try Self.engine.generate(prompt: "You see a fridge 1", parameters: q)
        let firstIndex = full.ids.firstIndex(of: full.ids[2])!
        XCTAssertEqual(byToken.ids, Array(full.ids[...firstIndex]))
        XCTAssertEqual(byToken.stopReason, .stopToken)
        // A stop string that ends inside a token: generation stops at the token completing it,
        // and the text is cut right after the stop string.
        let prompt = "You are in the kitchen. > go to"
        let greedyText = try Self.engine.generate(prompt: prompt, parameters: p).text
        let stop = "bathtub b"
        let stopEnd = try XCTUnwrap(greedyText.range(of: stop)).upperBound
        var s = p; s.stopStrings = ["\u{1F600}never", stop]
        let byString = try Self.engine.generate(prompt: prompt, parameters: s)
        XCTAssertEqual(byString.stopReason, .stopString)
        XCTAssertEqual(byString.text, String(greedyText[..<stopEnd]))
        let tokenizer = try Self.engine.requireTokenizer()
        XCTAssertFalse(tokenizer.decode(Array(byString.ids.dropLast())).contains(stop))
        XCTAssertTrue(tokenizer.decode(byString.ids).contains(stop))
    }

    /// A prompt's tokens do not depend on the other prompts generated with it. Log-probabilities
    /// agree to 1e-5, not bit for bit: a batch's projections run as one sgemm over all rows where
    /// a single prompt's decode steps use sgemv, and the two sum in different orders.
    func testBatchedGenerationEqualsAlone() throws {
        let t = try Self.engine.requireTokenizer()
        let prompts = ["You are in the kitchen.", "> open fridge 1", "Nothing happens."].map { t.encode($0) }
        var p = SamplingParameters(); p.temperature = 0.9; p.seed = 3; p.maxNewTokens = 10; p.stopTokenIDs = []
        let batch = try Self.engine.generate(prompts: prompts, parameters: p)
        let alone = try Self.engine.generate(prompts: [prompts[0]], parameters: p)[0]
        XCTAssertEqual(batch[0].ids, alone.ids)
        XCTAssertEqual(batch[0].text, alone.text)
        for (a, b) in zip(batch[0].logProbabilities, alone.logProbabilities) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertEqual(batch.map(\.ids.count), [10, 10, 10])
    }

    func testInvalidParametersThrow() {
        for change in [{ (p: inout SamplingParameters) in p.temperature = -1 }, { $0.temperature = .nan }, { $0.topP = 0 },
                       { $0.topP = 1.5 }, { $0.topK = -2 }, { $0.maxNewTokens = -1 }, { $0.stopStrings = [""] }] {
            var p = SamplingParameters()
            change(&p)
            XCTAssertThrowsError(try Self.engine.generate(prompt: "hi", parameters: p))
        }
        XCTAssertThrowsError(try Self.engine.generate(prompts: [], parameters: SamplingParameters()))
        XCTAssertThrowsError(try Self.engine.generate(prompts: [[600]], parameters: SamplingParameters()))
    }
}
