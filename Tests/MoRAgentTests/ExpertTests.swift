import XCTest
@testable import MoRAgent

/// LoRA experts on the decoder: initialisation, mixed-expert batches, soft mixtures, PEFT files.
final class ExpertTests: XCTestCase {
    static let decoder = try! Decoder(folder: Fixtures.model("qwen2-tiny"))
    static var config: ModelConfig { decoder.config }

    /// Experts with random non-zero B (a fresh PEFT expert has B = 0 and changes nothing).
    func randomExperts(_ count: Int, configuration: LoRAConfiguration = LoRAConfiguration(rank: 4, alpha: 8, targetModules: Set(ProjectionKind.allCases))) throws -> ExpertSet {
        let set = try ExpertSet(model: Self.config, count: count, configuration: configuration, seed: 100)
        var g = SeededGenerator(seed: 77)
        Fixtures.randomizeB(set.experts, generator: &g, scale: 0.5)
        return set
    }

    func logits(_ tokens: [[Int32]], routes: [ExpertRoute]?, experts: ExpertSet?) throws -> DecoderOutput {
        let adapter = try experts.map { try ExpertMixtureAdapter(experts: $0, routes: routes!, tokenCounts: tokens.map(\.count)) }
        return try Self.decoder.forward(tokens.map { DecoderSequence(tokens: $0, cache: KVCache(config: Self.config)) },
                                        logits: .all, adapter: adapter)
    }

    func maxDifference(_ a: Tensor, _ rowsA: Range<Int>, _ b: Tensor, _ rowsB: Range<Int>) -> Float {
        let v = a.shape[1]
        var worst: Float = 0
        for (ra, rb) in zip(rowsA, rowsB) { for j in 0..<v { worst = max(worst, abs(a[ra, j] - b[rb, j])) } }
        return worst
    }

    let prompts: [[Int32]] = [[23, 245, 73, 149, 182, 97, 454], [484, 30, 88, 344, 105, 61, 306, 19], [497, 100, 82, 126]]

    /// PEFT's initialisation (B = 0) leaves the model exactly as it was.
    func testFreshExpertIsTheBaseModel() throws {
        let set = try ExpertSet(model: Self.config, count: 2, configuration: LoRAConfiguration(rank: 8, alpha: 16), seed: 1)
        let base = try logits(prompts, routes: nil, experts: nil)
        let with = try logits(prompts, routes: [.expert(0), .expert(1), .mixture([(0, 0.5), (1, 0.5)])], experts: set)
        XCTAssertEqual(base.logits!.values, with.logits!.values)
        XCTAssertGreaterThan(set.experts[0].modules.values.map { $0.a.values.map(abs).max()! }.max()!, 0)
        XCTAssertEqual(set.experts[0].modules.count, 2 * Self.config.layerCount)
    }

    /// Every row of a mixed batch (expert 0, expert 1, base, a soft mixture) gets what it gets
    /// alone. Not bit for bit: the batch runs each projection as one sgemm over all rows where a
    /// lone short sequence may use other blockings, which round differently; the tolerance is
    /// 2e-6 of the largest logit (here |logit| ≤ ~16, so ~3e-5: some 16 f32 ulps at that
    /// magnitude, where a row given the wrong expert differs by more than 0.05).
    func testMixedBatchRowsEqualTheirSingleRuns() throws {
        let set = try randomExperts(2)
        let routes: [ExpertRoute] = [.expert(0), .expert(1), .base]
        let batch = try logits(prompts, routes: routes, experts: set)
        let tolerance = 2e-6 * batch.logits!.values.map(abs).max()!
        for s in 0..<3 {
            let alone = try logits([prompts[s]], routes: [routes[s]], experts: set)
            XCTAssertLessThan(maxDifference(batch.logits!, batch.rowRanges[s], alone.logits!, alone.rowRanges[0]), tolerance, "sequence \(s)")
        }
        // The experts change the output (the test above would pass trivially otherwise).
        let base = try logits([prompts[0]], routes: nil, experts: nil)
        XCTAssertGreaterThan(maxDifference(batch.logits!, batch.rowRanges[0], base.logits!, base.rowRanges[0]), 0.05)
    }

    /// A soft mixture's delta at a projection is the weighted sum of the experts' deltas.
    func testSoftMixtureIsTheWeightedSumOfDeltas() throws {
        let set = try randomExperts(2)
        let c = Self.config
        let (inF, outF) = c.projectionShape(.up)
        let rows = 5
        var g = SeededGenerator(seed: 3)
        let x = Tensor(zeros: [rows, inF])
        for i in 0..<x.count { x.pointer[i] = g.nextUnitFloat() * 2 - 1 }
        func delta(_ route: ExpertRoute) throws -> [Float] {
            let y = Tensor(zeros: [rows, outF])
            try ExpertMixtureAdapter(experts: set, routes: [route], tokenCounts: [rows])
                .addDelta(layer: 1, kind: .up, input: x.pointer, inputStride: inF, output: y.pointer, outputStride: outF, rows: rows)
            return y.values
        }
        let d0 = try delta(.expert(0)), d1 = try delta(.expert(1)), mix = try delta(.mixture([(0, 0.7), (1, 0.3)]))
        XCTAssertGreaterThan(d0.map(abs).max()!, 0.01)
        for i in mix.indices { XCTAssertEqual(mix[i], 0.7 * d0[i] + 0.3 * d1[i], accuracy: 1e-5) }
        // And against the definition s·B(A x) for one row, computed by hand.
        let m = set.experts[0].modules[LoRAModuleKey(layer: 1, kind: .up)]!
        for o in [0, 17, outF - 1] {
            var sum: Float = 0
            for k in 0..<m.rank {
                var ax: Float = 0
                for j in 0..<inF { ax += m.a[k, j] * x[2, j] }
                sum += m.b[o, k] * ax
            }
            XCTAssertEqual(d0[2 * outF + o], m.scale * sum, accuracy: 1e-5)
        }
    }

    func testScalesFollowPEFT() throws {
        let plain = LoRAConfiguration(rank: 16, alpha: 32)
        XCTAssertEqual(plain.scale(layer: 0, kind: .q), 2)
        let rs = LoRAConfiguration(rank: 16, alpha: 32, useRSLoRA: true)
        XCTAssertEqual(rs.scale(layer: 0, kind: .q), 8)
        let patterned = LoRAConfiguration(rank: 16, alpha: 16, rankOverrides: ["model.layers.1.self_attn.q_proj": 2],
                                          alphaOverrides: ["model.layers.0.self_attn.v_proj": 5])
        XCTAssertEqual(patterned.scale(layer: 1, kind: .q), 8)
        XCTAssertEqual(patterned.scale(layer: 0, kind: .v), 5.0 / 16)
        XCTAssertEqual(patterned.rank(layer: 1, kind: .q), 2)
    }

    /// Export then import gives bit-identical tensors and the same scales.
    func testPEFTExportImportRoundTrip() throws {
        let configuration = LoRAConfiguration(rank: 8, alpha: 12, useRSLoRA: true, targetModules: [.q, .v, .down],
                                              rankOverrides: ["model.layers.1.mlp.down_proj": 3],
                                              alphaOverrides: ["model.layers.0.self_attn.q_proj": 5])
        let expert = try randomExperts(1, configuration: configuration).experts[0]
        let folder = Fixtures.temporaryFolder(); defer { try? FileManager.default.removeItem(atPath: folder) }
        try PEFTAdapter.save(expert, folder: folder + "/e", baseModel: "qwen2-tiny")
        let back = try PEFTAdapter.load(folder: folder + "/e", model: Self.config)
        XCTAssertEqual(Set(back.modules.keys), Set(expert.modules.keys))
        for (key, m) in expert.modules {
            let n = back.modules[key]!
            XCTAssertEqual(n.a.values, m.a.values)
            XCTAssertEqual(n.b.values, m.b.values)
            XCTAssertEqual(n.scale, m.scale, "\(key)")
        }
        XCTAssertEqual(back.modules[LoRAModuleKey(layer: 1, kind: .down)]!.rank, 3)
        XCTAssertEqual(back.configuration, configuration)
    }

    func testBadRoutesAndAdaptersAreRejected() throws {
        let set = try randomExperts(2)
        XCTAssertThrowsError(try ExpertMixtureAdapter(experts: set, routes: [.expert(2)], tokenCounts: [3]))
        XCTAssertThrowsError(try ExpertMixtureAdapter(experts: set, routes: [.expert(-1)], tokenCounts: [3]))
        XCTAssertThrowsError(try ExpertMixtureAdapter(experts: set, routes: [.mixture([(0, .nan)])], tokenCounts: [3]))
        XCTAssertThrowsError(try ExpertMixtureAdapter(experts: set, routes: [.base], tokenCounts: [3, 4]))
        XCTAssertThrowsError(try LoRAConfiguration(rank: 0).validate())
        let folder = Fixtures.temporaryFolder(); defer { try? FileManager.default.removeItem(atPath: folder) }
        // An adapter for another model shape does not load.
        let other = try ExpertSet(model: try ModelConfig.load(folder: Fixtures.model("mistral-tiny")), count: 1,
                                  configuration: LoRAConfiguration(rank: 2, alpha: 2), seed: 0)
        try PEFTAdapter.save(other.experts[0], folder: folder + "/m")
        XCTAssertThrowsError(try PEFTAdapter.load(folder: folder + "/m", model: Self.config)) { XCTAssertTrue("\($0)".contains("q_proj"), "\($0)") }
        // Unsupported and malformed configurations name the file.
        try #"{"peft_type": "IA3", "r": 2, "lora_alpha": 2}"#.write(toFile: folder + "/m/adapter_config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PEFTAdapter.load(folder: folder + "/m", model: Self.config)) { XCTAssertTrue("\($0)".contains("adapter_config.json") && "\($0)".contains("IA3")) }
        try #"{"peft_type": "LORA", "r": 2, "lora_alpha": 2, "use_dora": true}"#.write(toFile: folder + "/m/adapter_config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PEFTAdapter.load(folder: folder + "/m", model: Self.config)) { XCTAssertTrue("\($0)".contains("DoRA")) }
    }
}
