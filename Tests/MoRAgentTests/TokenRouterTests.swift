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
        Fixtures.randomizeB(set.experts, generator: &g, scale: 0.5)
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

/// Token-router and value-head gradients against finite differences.
final class TokenRouterGradientTests: XCTestCase {
    func testGateAndExpertGradientsMatchFiniteDifferences() throws {
        let config = ModelConfig(architecture: .qwen2, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4,
                                 keyValueHeadCount: 2, vocabularySize: 41, ropeTheta: 10000, tieWordEmbeddings: false)
        let d = Decoder(weights: DecoderWeights.random(config: config, seed: 3))
        let set = try ExpertSet(model: config, count: 3, configuration: LoRAConfiguration(rank: 3, alpha: 6, targetModules: [.q, .v, .up, .down]), seed: 4)
        var g = SeededGenerator(seed: 5)
        Fixtures.randomizeB(set.experts, generator: &g, scale: 0.5)
        let sequences: [[Int32]] = [[1, 5, 9, 2, 30, 7], [3, 33, 12, 4, 19]]
        let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
        for perLayer in [true, false] {
            let router = try TokenTopKRouter(experts: set, topK: 2, perLayer: perLayer, seed: 6)
            func loss() throws -> Double {
                let tape = try d.trainingForward(sequences, adapter: router.adapter())
                return try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead).loss
            }
            let adapter = router.adapter()
            let routerGradients = TokenRouterGradients(router: router), expertGradients = ExpertGradients(experts: set)
            adapter.routerGradients = routerGradients
            adapter.expertGradients = expertGradients
            let tape = try d.trainingForward(sequences, adapter: adapter)
            let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
            try d.backward(tape, hiddenGradient: dHidden)
            let probes: [(Tensor, Tensor, String)] = router.gates.indices.map { (router.gates[$0].weight, routerGradients.gates[$0], "gate \($0)") }
                + [(set.experts[1].modules[LoRAModuleKey(layer: 1, kind: .up)]!.b, expertGradients[1, LoRAModuleKey(layer: 1, kind: .up)]!.b, "expert 1 up B")]
            for (value, gradient, name) in probes {
                for i in Set([0, value.count / 2, value.count - 1]) {
                    let saved = value.pointer[i]
                    value.pointer[i] = saved + 1e-2; let up = try loss()
                    value.pointer[i] = saved - 1e-2; let down = try loss()
                    value.pointer[i] = saved
                    let numeric = (up - down) / 2e-2
                    XCTAssertEqual(Double(gradient.pointer[i]), numeric, accuracy: max(3e-4, 0.03 * abs(numeric)), "\(perLayer ? "per-layer" : "shared") \(name)[\(i)]")
                }
            }
        }
    }

    func testValueHeadRegression() throws {
        let head = ValueHead(hiddenSize: 4, seed: 1)
        let states: [[Float]] = [[1, 0, 0.5, -1], [0.2, 0.3, -0.4, 1], [0, 1, 1, 0]]
        let targets: [Float] = [1, -0.5, 0.25]
        _ = try head.regress(states: states, targets: targets)
        let w = head.layer.weight
        for i in 0..<4 {
            let saved = w.pointer[i]
            w.pointer[i] = saved + 1e-3
            let up = zip(head.values(states), targets).map { 0.5 * Double(($0 - $1) * ($0 - $1)) }.reduce(0, +) / 3
            w.pointer[i] = saved - 1e-3
            let down = zip(head.values(states), targets).map { 0.5 * Double(($0 - $1) * ($0 - $1)) }.reduce(0, +) / 3
            w.pointer[i] = saved
            XCTAssertEqual(Double(head.weightGradient.pointer[i]), (up - down) / 2e-3, accuracy: 1e-4)
        }
        // It fits the targets.
        var c = AdamW.Configuration(); c.learningRate = 0.05; c.weightDecay = 0
        let opt = try AdamW(parameters: head.parameterPairs, configuration: c)
        for _ in 0..<400 { head.zeroGradients(); _ = try head.regress(states: states, targets: targets); try opt.step() }
        for (v, t) in zip(head.values(states), targets) { XCTAssertEqual(v, t, accuracy: 0.02) }
        XCTAssertThrowsError(try head.regress(states: states, targets: [1]))
        XCTAssertThrowsError(try head.regress(states: states, targets: [1, .nan, 0]))
    }
}
