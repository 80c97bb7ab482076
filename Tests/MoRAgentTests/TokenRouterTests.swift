import XCTest
@testable import MoRAgent

/// Token-level top-k routing.
final class TokenRouterTests: XCTestCase {
    static let decoder = try! Decoder(folder: Fixtures.model("qwen2-tiny"))

    func testTopKTiesAndRenormalisation() {
        let tied = TokenTopKRouter.topK([1, 3, 3, 0], k: 2)
        XCTAssertEqual(tied.map(\.expert), [1, 2], "ties keep the lower id first")
        XCTAssertEqual(tied[0].weight, 0.5, accuracy: 1e-6)
        let one = TokenTopKRouter.topK([1, 3, 3, 0], k: 1)
        XCTAssertEqual(one.map(\.expert), [1])
        XCTAssertEqual(one[0].weight, 1)
        // p ∝ [1, 2, 3]: the top two renormalised are 3/5 and 2/5.
        let r = TokenTopKRouter.topK([0, log(2), log(3)], k: 2)
        XCTAssertEqual(r.map(\.expert), [2, 1])
        XCTAssertEqual(r[0].weight, 0.6, accuracy: 1e-6)
        XCTAssertEqual(r[1].weight, 0.4, accuracy: 1e-6)
    }

    /// Replays recorded per-layer choices through a fixed adapter.
    final class Replay: DecoderAdapter {
        let experts: ExpertSet
        let choices: [[[(expert: Int, weight: Float)]]]
        init(_ experts: ExpertSet, _ choices: [[[(expert: Int, weight: Float)]]]) { self.experts = experts; self.choices = choices }
        func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                      output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int) {
            let weights = choices[min(layer, choices.count - 1)]
            try! ExpertMixtureAdapter(experts: experts, rowWeights: weights)
                .addDelta(layer: layer, kind: kind, input: input, inputStride: inputStride, output: output, outputStride: outputStride, rows: rows)
        }
    }

    func testTokensRouteIndependentlyPerLayerOrShared() throws {
        let c = Self.decoder.config
        let set = try ExpertSet(model: c, count: 4, configuration: LoRAConfiguration(rank: 4, alpha: 8, targetModules: Set(ProjectionKind.allCases)), seed: 2)
        var g = SeededGenerator(seed: 8)
        for e in set.experts { for key in e.modules.keys.sorted() { let m = e.modules[key]!; for i in 0..<m.b.count { m.b.pointer[i] = (g.nextUnitFloat() * 2 - 1) * 0.5 } } }
        let tokens: [[Int32]] = [[23, 245, 73, 149, 182, 97, 454, 12, 300], [484, 30, 88]]
        for perLayer in [true, false] {
            let router = try TokenTopKRouter(experts: set, topK: 2, perLayer: perLayer, seed: 1)
            let adapter = router.adapter()
            let out = try Self.decoder.forward(tokens.map { DecoderSequence(tokens: $0, cache: KVCache(config: c)) }, logits: .all, adapter: adapter)
            XCTAssertEqual(adapter.choices.count, perLayer ? c.layerCount : 1)
            XCTAssertEqual(adapter.choices[0].count, 12)
            for row in adapter.choices[0] {
                XCTAssertEqual(row.count, 2)
                XCTAssertEqual(row.map(\.weight).reduce(0, +), 1, accuracy: 1e-5)
            }
            XCTAssertGreaterThan(Set(adapter.choices[0].map { $0.map(\.expert) }).count, 1, "tokens route differently")
            let replay = try Self.decoder.forward(tokens.map { DecoderSequence(tokens: $0, cache: KVCache(config: c)) }, logits: .all,
                                                  adapter: Replay(set, adapter.choices))
            XCTAssertEqual(replay.logits!.values, out.logits!.values)
        }
        XCTAssertThrowsError(try TokenTopKRouter(experts: set, topK: 5, seed: 0))
        XCTAssertThrowsError(try TokenTopKRouter(experts: set, topK: 0, seed: 0))
    }
}
