import XCTest
@testable import MoRAgent

/// PA-MoE's diversity loss and its sample buffers.
final class DiversityLossTests: XCTestCase {
    static let config = ModelConfig(architecture: .qwen2, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4,
                                    keyValueHeadCount: 2, vocabularySize: 29, ropeTheta: 10000, tieWordEmbeddings: false)

    func experts(scale: Float) throws -> ExpertSet {
        let set = try ExpertSet(model: Self.config, count: 3, configuration: LoRAConfiguration(rank: 2, alpha: 4, targetModules: [.q, .v, .down]), seed: 2)
        var g = SeededGenerator(seed: 3)
        Fixtures.randomizeB(set.experts, generator: &g, scale: scale)
        return set
    }

    func testBufferKeepsTheLatestAndDraws() throws {
        var buffer = ExpertSampleBuffer(experts: 2, capacity: 3)
        for i in 0..<5 { try buffer.record(ExpertSample(prompt: [Int32(i)], action: [1]), expert: 0) }
        XCTAssertEqual(buffer.samples[0].map { $0.prompt[0] }, [2, 3, 4])
        XCTAssertThrowsError(try buffer.record(ExpertSample(prompt: [1], action: [1]), expert: 2))
        XCTAssertThrowsError(try buffer.record(ExpertSample(prompt: [1], action: []), expert: 0))
        var g = SeededGenerator(seed: 1)
        XCTAssertEqual(buffer.draw(10, generator: &g).count, 10)
    }

    /// Near-identical experts (every hinge active): the gradient against central differences.
    func testGradientMatchesFiniteDifferences() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 1))
        let set = try experts(scale: 0.05)
        let states = [ExpertSample(prompt: [1, 5, 9, 2], action: [7, 3]), ExpertSample(prompt: [4, 4, 20], action: [11])]
        let loss = DiversityLoss(coefficient: 1)      // the unweighted loss
        let grads = ExpertGradients(experts: set)
        let value = try loss.lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: grads)
        XCTAssertGreaterThan(value, 0.5, "6 ordered pairs, nearly all below the margin")
        for (e, key) in [(0, LoRAModuleKey(layer: 1, kind: .down)), (2, LoRAModuleKey(layer: 0, kind: .q))] {
            let b = set.experts[e].modules[key]!.b, gb = grads[e, key]!.b
            for i in [0, b.count - 1] {
                let saved = b.pointer[i]
                b.pointer[i] = saved + 1e-2; let up = try loss.lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: nil)
                b.pointer[i] = saved - 1e-2; let down = try loss.lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: nil)
                b.pointer[i] = saved
                let numeric = (up - down) / 2e-2
                XCTAssertEqual(Double(gb.pointer[i]), numeric, accuracy: max(2e-4, 0.03 * abs(numeric)), "expert \(e) \(key.kind) B[\(i)]")
            }
        }
    }

    /// Minimising it pushes the experts apart until their KLs pass the margin.
    func testMinimisingSeparatesTheExperts() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 1))
        let set = try experts(scale: 0.01)
        let states = [ExpertSample(prompt: [1, 5, 9, 2], action: [7, 3]), ExpertSample(prompt: [4, 4, 20], action: [11])]
        let grads = ExpertGradients(experts: set)
        var c = AdamW.Configuration(); c.learningRate = 2e-2; c.weightDecay = 0
        let opt = try AdamW(parameters: grads.parameterPairs(set), configuration: c)
        let loss = DiversityLoss(coefficient: 1)
        let start = try loss.lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: nil)
        for _ in 0..<60 {
            grads.zero()
            _ = try loss.lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: grads)
            try opt.step()
        }
        let end = try loss.lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: nil)
        XCTAssertLessThan(end, 0.2 * start, "diversity loss \(start) → \(end)")
    }
}
