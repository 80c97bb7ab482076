import XCTest
@testable import MoRAgent

/// Objectives that must change behaviour in the intended direction.
final class LearningTests: XCTestCase {
    /// A GRPO-style update on a bandit-like prompt: 8 samples of one token, reward 1 when the
    /// token is in a rewarded set, group-normalised advantages, the clipped surrogate, AdamW on a
    /// LoRA expert. After 15 updates the rewarded tokens' probability mass has grown severalfold.
    func testGRPOUpdateRaisesTheProbabilityOfRewardedActions() throws {
        let engine = try Engine(folder: Fixtures.model("qwen2-tiny"))
        let d = engine.decoder, v = d.config.vocabularySize
        let experts = try ExpertSet(model: d.config, count: 1, configuration: LoRAConfiguration(rank: 8, alpha: 16, targetModules: [.q, .v, .up, .down]), seed: 1)
        let grads = ExpertGradients(experts: experts)
        var oc = AdamW.Configuration(); oc.learningRate = 5e-3; oc.weightDecay = 0
        let optimizer = try AdamW(parameters: grads.parameterPairs(experts), configuration: oc)
        let prompt = try engine.requireTokenizer().encode("> take the")
        func distribution() throws -> [Float] {
            let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.expert(0)], tokenCounts: [prompt.count])
            var logits = try d.forward([DecoderSequence(tokens: prompt, cache: KVCache(config: d.config))], logits: .last, adapter: adapter).logits!.values
            logits.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: v) }
            return logits
        }
        let start = try distribution()
        // Reward the tokens ranked 10th-19th at the start: unlikely but reachable by sampling.
        let rewarded = Set(start.indices.sorted { start[$0] > start[$1] }[10..<20])
        func rewardedMass(_ p: [Float]) -> Float { rewarded.reduce(0) { $0 + p[$1] } }
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<15 {
            let p = try distribution()
            // 8 rollouts of one token from π_old.
            var samples: [Int32] = [], oldLogp: [Float] = []
            for _ in 0..<8 {
                var u = generator.nextUnitFloat(), token = v - 1
                for j in 0..<v { u -= p[j]; if u < 0 { token = j; break } }
                samples.append(Int32(token)); oldLogp.append(log(max(p[token], 1e-30)))
            }
            let rewards = samples.map { rewarded.contains(Int($0)) ? 1.0 : 0.0 }
            let mean = rewards.reduce(0, +) / 8
            let std = (rewards.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 7).squareRoot()
            let advantages = rewards.map { Float(($0 - mean) / (std + 1e-6)) }
            grads.zero()
            let sequences = Array(repeating: prompt, count: 8)
            let adapter = try ExpertMixtureAdapter(experts: experts, routes: Array(repeating: .expert(0), count: 8), tokenCounts: sequences.map(\.count))
            adapter.gradients = grads
            let tape = try d.trainingForward(sequences, adapter: adapter)
            let rows = tape.rowRanges.map { $0.upperBound - 1 }
            let (_, dHidden) = try ClippedPolicyLoss().lossAndGradient(hidden: tape.hidden, lmHead: d.weights.lmHead, actions: ActionTokens(
                rows: rows, tokens: samples, oldLogProbabilities: oldLogp, advantages: advantages, sequences: Array(0..<8)))
            try d.backward(tape, hiddenGradient: dHidden)
            try optimizer.step()
        }
        let end = try distribution()
        XCTAssertGreaterThan(rewardedMass(end), 3 * rewardedMass(start), "rewarded mass \(rewardedMass(start)) → \(rewardedMass(end))")
    }

    /// The balance loss alone, through the phase router's backward, evens out a utilisation that
    /// starts skewed (a bias making expert 0 win every decision). The loss acts on the mean soft
    /// probabilities, which become uniform; the hard choices follow only in part, which is what
    /// the test asserts of them (seen: [1, 0, 0] → [0.375, 0, 0.625] after 150 steps).
    func testBalanceLossEvensOutSkewedUtilisation() throws {
        let engine = try Engine(folder: Fixtures.model("qwen2-tiny"))
        var c = PhaseRouterConfiguration()
        c.expertCount = 3; c.attentionDimension = 16; c.attentionHeads = 2; c.lstmHiddenSize = 8; c.lstmLayers = 1; c.mlpHiddenSize = 16
        let router = try PhaseRouter(configuration: c, modelHiddenSize: 64, seed: 2)
        router.temperature = 1
        let bias = router.namedTensors.first { $0.name == "mlp.2.bias" }!.tensor
        bias.pointer[0] += 4
        let encoder = TextEncoder(engine: engine)
        let observations = ["You are in the kitchen.", "You see a fridge 1.", "The fridge 1 is open.", "You pick up the egg 1.",
                            "You heat the egg 1.", "Nothing happens.", "You arrive at sinkbasin 1.", "The microwave 1 is closed."]
        let inputs = try observations.map { try router.inputs(StepContext(episode: 0, step: 0, observation: $0, goal: "heat an egg", history: [], encoder: encoder)) }
        func utilisation() -> [Double] {
            var counts = [Double](repeating: 0, count: 3)
            for i in inputs { let p = router.probabilities(router.logits(i)); counts[p.firstIndex(of: p.max()!)!] += 1 }
            return counts.map { $0 / Double(inputs.count) }
        }
        XCTAssertEqual(utilisation(), [1, 0, 0], "starts skewed")
        let grads = PhaseRouterGradients(router: router)
        var oc = AdamW.Configuration(); oc.learningRate = 3e-2; oc.weightDecay = 0
        let optimizer = try AdamW(parameters: grads.parameterPairs(router), configuration: oc)
        for _ in 0..<150 {
            grads.zero()
            let traces = inputs.map { router.tracedForward($0) }
            let (_, g, _) = try ExpertBalanceLoss(coefficient: 1).lossAndGradients(probabilities: traces.map(\.probabilities), chosen: traces.map { $0.probabilities.firstIndex(of: $0.probabilities.max()!)! })
            for (t, dp) in zip(traces, g) { router.backward(t, probabilityGradient: dp, into: grads) }
            try optimizer.step()
        }
        let after = utilisation()
        XCTAssertLessThanOrEqual(after.max()!, 0.75, "utilisation \(after)")
        XCTAssertGreaterThanOrEqual(after.filter { $0 > 0 }.count, 2, "utilisation \(after)")
        let soft = (0..<3).map { k in inputs.map { Double(router.probabilities(router.logits($0))[k]) }.reduce(0, +) / Double(inputs.count) }
        for f in soft { XCTAssertEqual(f, 1.0 / 3, accuracy: 0.05, "mean probabilities \(soft)") }
    }
}
