import XCTest
@testable import MoRAgent

/// Properties of the decoder that hold for any weights: the KV cache, packing and GQA.
final class DecoderTests: XCTestCase {
    /// A small random GQA model with biases, so every code path runs.
    static let config = ModelConfig(architecture: .qwen2, hiddenSize: 32, intermediateSize: 48, layerCount: 2,
                                    headCount: 4, keyValueHeadCount: 2, vocabularySize: 97, ropeTheta: 10000,
                                    tieWordEmbeddings: false)
    static let decoder = Decoder(weights: DecoderWeights.random(config: config, seed: 7))

    func maxDifference(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        (0..<n).reduce(0) { max($0, abs(a[$1] - b[$1])) }
    }

    /// Decoding token by token with the cache gives the logits of recomputing the whole prefix.
    func testIncrementalDecodeEqualsFullRecomputation() throws {
        let d = Self.decoder, v = Self.config.vocabularySize
        let tokens: [Int32] = [5, 17, 3, 88, 41, 9, 60, 2, 33, 71]
        let full = try d.forward([DecoderSequence(tokens: tokens, cache: KVCache(config: Self.config))], logits: .all)
        let cache = KVCache(config: Self.config, capacity: 2)  // forces the cache to grow
        // A 4-token prefill, then one token at a time.
        var out = try d.forward([DecoderSequence(tokens: Array(tokens[0..<4]), cache: cache)], logits: .all)
        XCTAssertLessThan(maxDifference(out.logits!.pointer, full.logits!.pointer, 4 * v), 1e-5)
        for i in 4..<tokens.count {
            out = try d.forward([DecoderSequence(tokens: [tokens[i]], cache: cache)], logits: .last)
            XCTAssertLessThan(maxDifference(out.logits!.pointer, full.logits!.pointer + i * v, v), 1e-5, "position \(i)")
        }
        XCTAssertEqual(cache.length, tokens.count)
    }

    /// A sequence's outputs do not depend on the other sequences packed with it.
    func testBatchRowsAreIndependent() throws {
        let d = Self.decoder, v = Self.config.vocabularySize
        let a: [Int32] = [1, 2, 3, 4, 5, 6, 7], b: [Int32] = [90, 80], c: [Int32] = [11, 12, 13, 14]
        let batch = try d.forward([a, b, c].map { DecoderSequence(tokens: $0, cache: KVCache(config: Self.config)) }, logits: .all)
        for (s, seq) in [a, b, c].enumerated() {
            let alone = try d.forward([DecoderSequence(tokens: seq, cache: KVCache(config: Self.config))], logits: .all)
            let rows = batch.rowRanges[s]
            XCTAssertLessThan(maxDifference(batch.logits!.pointer + rows.lowerBound * v, alone.logits!.pointer, seq.count * v), 1e-5)
        }
        let last = try d.forward([a, b, c].map { DecoderSequence(tokens: $0, cache: KVCache(config: Self.config)) }, logits: .last)
        XCTAssertEqual(last.logits!.shape, [3, v])
        XCTAssertLessThan(maxDifference(last.logits!.pointer + v, batch.logits!.pointer + (batch.rowRanges[1].upperBound - 1) * v, v), 1e-5)
    }

    /// Bad calls throw and leave the caches untouched.
    func testRejectsBadInput() throws {
        let d = Self.decoder
        let cache = KVCache(config: Self.config)
        XCTAssertThrowsError(try d.forward([DecoderSequence(tokens: [1, 97], cache: cache)]))
        XCTAssertThrowsError(try d.forward([DecoderSequence(tokens: [-1], cache: cache)]))
        XCTAssertThrowsError(try d.forward([DecoderSequence(tokens: [], cache: cache)]))
        XCTAssertThrowsError(try d.forward([DecoderSequence(tokens: [1], cache: cache), DecoderSequence(tokens: [2], cache: cache)]))
        XCTAssertThrowsError(try d.forward([]))
        XCTAssertEqual(cache.length, 0)
    }

    /// A sliding window limits how far back a query looks: with window 3, changing a token
    /// 3 positions back leaves the next logits of a one-layer model unchanged.
    func testSlidingWindowMasksOldPositions() throws {
        var config = ModelConfig(architecture: .mistral, hiddenSize: 16, intermediateSize: 24, layerCount: 1,
                                 headCount: 2, keyValueHeadCount: 1, vocabularySize: 31, ropeTheta: 10000, tieWordEmbeddings: false)
        config.slidingWindow = 3
        let d = Decoder(weights: DecoderWeights.random(config: config, seed: 3))
        let a = try d.forward([DecoderSequence(tokens: [1, 2, 3, 4, 5], cache: KVCache(config: config))], logits: .last)
        let b = try d.forward([DecoderSequence(tokens: [1, 9, 3, 4, 5], cache: KVCache(config: config))], logits: .last)
        let c = try d.forward([DecoderSequence(tokens: [1, 2, 9, 4, 5], cache: KVCache(config: config))], logits: .last)
        XCTAssertEqual(a.logits!.values, b.logits!.values)
        XCTAssertGreaterThan(maxDifference(a.logits!.pointer, c.logits!.pointer, 31), 1e-4)
    }

    /// A long prefill (several query blocks, heads split over two threads) gives the logits of
    /// decoding the same tokens one at a time (the single-query path), with and without a
    /// sliding window shorter than the sequence.
    func testLongPrefillMatchesTokenByTokenDecode() throws {
        for window in [nil, 50] {
            var config = ModelConfig(architecture: .mistral, hiddenSize: 32, intermediateSize: 40, layerCount: 2,
                                     headCount: 4, keyValueHeadCount: 2, vocabularySize: 61, ropeTheta: 10000, tieWordEmbeddings: false)
            config.slidingWindow = window
            XCTAssertGreaterThanOrEqual(Attention.queryBlock * 300 * config.headCount, Attention.parallelThreshold)
            let d = Decoder(weights: DecoderWeights.random(config: config, seed: 5))
            let tokens = (0..<300).map { Int32(($0 * 37 + 11) % 61) }
            let full = try d.forward([DecoderSequence(tokens: tokens, cache: KVCache(config: config))], logits: .all)
            let cache = KVCache(config: config)
            var worst: Float = 0
            for (i, t) in tokens.enumerated() {
                let step = try d.forward([DecoderSequence(tokens: [t], cache: cache)], logits: .last)
                worst = max(worst, maxDifference(step.logits!.pointer, full.logits!.pointer + i * 61, 61))
            }
            XCTAssertLessThan(worst, 1e-4, "window \(String(describing: window))")
        }
    }
}
