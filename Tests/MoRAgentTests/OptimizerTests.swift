import XCTest
@testable import MoRAgent

/// AdamW, clipping, schedules, and a small LoRA training run: it learns and is reproducible.
final class OptimizerTests: XCTestCase {
    /// Two AdamW steps on one parameter, computed by hand with PyTorch's formulas.
    func testAdamWMatchesHandComputation() throws {
        let p = Tensor(shape: [1], values: [1.0]), g = Tensor(shape: [1], values: [0.5])
        var c = AdamW.Configuration(); c.learningRate = 0.1; c.weightDecay = 0.01
        let opt = try AdamW(parameters: [(p, g)], configuration: c)
        try opt.step()
        // Step 1: p = 1 − 0.1·0.01·1 = 0.999; m̂ = 0.5, v̂ = 0.25 → p −= 0.1·0.5/(0.5 + 1e-8).
        var expected: Double = 0.999 - 0.1 * 0.5 / (0.5 + 1e-8)
        XCTAssertEqual(Double(p.values[0]), expected, accuracy: 1e-6)
        g.pointer[0] = -0.25
        try opt.step()
        let m = 0.9 * 0.05 + 0.1 * -0.25, v = 0.999 * 0.00025 + 0.001 * 0.0625
        let mHat = m / (1 - 0.81), vHat = v / (1 - 0.998001)
        expected = expected - 0.1 * 0.01 * expected
        expected -= 0.1 * mHat / (vHat.squareRoot() + 1e-8)
        XCTAssertEqual(Double(p.values[0]), expected, accuracy: 1e-6)
        XCTAssertEqual(opt.stepCount, 2)
        // A NaN gradient is rejected and nothing changes.
        g.pointer[0] = .nan
        let before = p.values
        XCTAssertThrowsError(try opt.step())
        XCTAssertEqual(p.values, before)
        XCTAssertEqual(opt.stepCount, 2)
    }

    func testClippingAndSchedules() {
        let a = Tensor(shape: [2], values: [3, 0]), b = Tensor(shape: [1], values: [4])
        XCTAssertEqual(GradientClipping.clip([a, b], maxNorm: 1), 5)
        XCTAssertEqual(a.values[0], 0.6, accuracy: 1e-5)
        XCTAssertEqual(b.values[0], 0.8, accuracy: 1e-5)
        XCTAssertEqual(GradientClipping.clip([a, b], maxNorm: 10), 1, accuracy: 1e-5)
        XCTAssertEqual(a.values[0], 0.6, accuracy: 1e-5, "below the limit nothing changes")
        let cosine = LearningRateSchedule(warmupSteps: 10, totalSteps: 110, decay: .cosine, minimumFactor: 0.1)
        XCTAssertEqual(cosine.factor(step: 0), 0.1, accuracy: 1e-6)
        XCTAssertEqual(cosine.factor(step: 9), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.factor(step: 10), 1, accuracy: 1e-6)
        XCTAssertEqual(cosine.factor(step: 60), 0.55, accuracy: 1e-5)
        XCTAssertEqual(cosine.factor(step: 110), 0.1, accuracy: 1e-6)
        let linear = LearningRateSchedule(warmupSteps: 0, totalSteps: 100, decay: .linear)
        XCTAssertEqual(linear.factor(step: 25), 0.75, accuracy: 1e-6)
    }

    /// LoRA SFT on a tiny random model: 40 AdamW steps on two fixed sequences lower the loss by
    /// more than half, and a second run with the same seed ends with the same bytes.
    func testLoRATrainingLearnsAndIsDeterministic() throws {
        func train() throws -> (first: Double, last: Double, bytes: [Float]) {
            let config = ModelConfig(architecture: .qwen2, hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4,
                                     keyValueHeadCount: 2, vocabularySize: 50, ropeTheta: 10000, tieWordEmbeddings: true)
            let weights = DecoderWeights.random(config: config, seed: 1)
            Kernels.scale(weights.embedding.pointer, by: 1 / (0.02 * Float(3).squareRoot()), count: weights.embedding.count)  // O(1) embeddings
            let d = Decoder(weights: weights)
            let experts = try ExpertSet(model: config, count: 1, configuration: LoRAConfiguration(rank: 8, alpha: 16, targetModules: [.q, .v, .up, .down]), seed: 2)
            let grads = ExpertGradients(experts: experts)
            var c = AdamW.Configuration(); c.learningRate = 1e-2
            let opt = try AdamW(parameters: grads.parameterPairs(experts), configuration: c)
            let data: [[Int32]] = [[1, 7, 3, 9, 4, 11, 5, 13], [2, 8, 40, 8, 40, 8, 40]]
            let targets = try TokenCrossEntropy.nextTokenTargets(data)
            var losses: [Double] = []
            for _ in 0..<40 {
                grads.zero()
                let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.expert(0), .expert(0)], tokenCounts: data.map(\.count))
                adapter.gradients = grads
                let tape = try d.trainingForward(data, adapter: adapter)
                let (loss, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
                try d.backward(tape, hiddenGradient: dHidden)
                GradientClipping.clip(grads.parameterPairs(experts).map(\.gradient), maxNorm: 1)
                try opt.step()
                losses.append(loss)
            }
            return (losses[0], losses[39], grads.parameterPairs(experts).flatMap { $0.value.values })
        }
        let a = try train(), b = try train()
        XCTAssertLessThan(a.last, 0.5 * a.first, "loss \(a.first) → \(a.last)")
        XCTAssertEqual(a.bytes, b.bytes)
    }
}
