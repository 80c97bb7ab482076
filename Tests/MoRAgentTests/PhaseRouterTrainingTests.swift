import XCTest
@testable import MoRAgent

/// PA-MoE training pieces: the phase router's backward, the straight-through weight gradients,
/// and the balance and switching losses.
final class PhaseRouterTrainingTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    func router() throws -> PhaseRouter {
        var c = PhaseRouterConfiguration()
        c.expertCount = 3; c.attentionDimension = 8; c.attentionHeads = 2; c.lstmHiddenSize = 5; c.lstmLayers = 2
        c.historyLength = 3; c.mlpHiddenSize = 6
        let r = try PhaseRouter(configuration: c, modelHiddenSize: 64, seed: 11)
        r.temperature = 0.7
        return r
    }

    /// Every parameter tensor's gradient of `L = Σ_k c_k p_k` against central differences
    /// (the inputs are frozen encodings of real texts).
    func testRouterBackwardMatchesFiniteDifferences() throws {
        let r = try router()
        let encoder = TextEncoder(engine: Self.engine)
        let inputs = try r.inputs(StepContext(episode: 0, step: 2, observation: "You see a fridge 1.", goal: "cool some lettuce",
                                              history: [("You are in the kitchen.", "go to fridge 1"), ("The fridge 1 is closed.", "open fridge 1")],
                                              encoder: encoder))
        let weights: [Float] = [0.3, -1.1, 0.8]
        func loss() -> Double { zip(r.probabilities(r.logits(inputs)), weights).reduce(0.0) { $0 + Double($1.0 * $1.1) } }
        let grads = PhaseRouterGradients(router: r)
        let trace = r.tracedForward(inputs)
        XCTAssertEqual(trace.probabilities, r.probabilities(r.logits(inputs)))
        r.backward(trace, probabilityGradient: weights, into: grads)
        for ((name, p), (_, g)) in zip(r.namedTensors, grads.tensors) {
            for i in Set([0, p.count / 3, p.count - 1]) {
                let saved = p.pointer[i]
                p.pointer[i] = saved + 1e-2; let up = loss()
                p.pointer[i] = saved - 1e-2; let down = loss()
                p.pointer[i] = saved
                let numeric = (up - down) / 2e-2
                XCTAssertEqual(Double(g.pointer[i]), numeric, accuracy: max(2e-4, 0.03 * abs(numeric)), "\(name)[\(i)]")
            }
        }
        XCTAssertGreaterThan(grads.tensors.first { $0.name == "attention.key.weight" }!.tensor.values.map(abs).max()!, 1e-6, "the goal path gets gradient")
        XCTAssertGreaterThan(grads.tensors.first { $0.name == "lstm.weight_ih_l0" }!.tensor.values.map(abs).max()!, 1e-6, "the first LSTM layer gets gradient")
    }

    /// `dL/dw_k` recorded in the backward equals the derivative of the loss with respect to the
    /// weight of expert k in a soft mixture (the relaxation the straight-through estimator uses),
    /// for the chosen expert and the unused ones alike.
    func testStraightThroughWeightGradients() throws {
        let d = Self.engine.decoder
        let experts = try ExpertSet(model: d.config, count: 3, configuration: LoRAConfiguration(rank: 4, alpha: 8, targetModules: [.q, .v, .down]), seed: 4)
        var g = SeededGenerator(seed: 5)
        Fixtures.randomizeB(experts.experts, generator: &g, scale: 0.3)
        let sequences: [[Int32]] = [[23, 245, 73, 149, 182, 97], [484, 30, 88, 344]]
        let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
        func loss(_ w: [Float]) throws -> Double {
            let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.mixture(w.enumerated().map { ($0.offset, $0.element) }), .expert(2)],
                                                   tokenCounts: sequences.map(\.count))
            let tape = try d.trainingForward(sequences, adapter: adapter)
            return try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead).loss
        }
        // The hard choice: expert 1 for sequence 0 (w = onehot).
        let adapter = try ExpertMixtureAdapter(experts: experts, routes: [.expert(1), .expert(2)], tokenCounts: sequences.map(\.count))
        try adapter.recordRouteWeightGradients()
        let tape = try d.trainingForward(sequences, adapter: adapter)
        let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
        try d.backward(tape, hiddenGradient: dHidden)
        let recorded = adapter.routeWeightGradients![0]
        for k in 0..<3 {
            var up: [Float] = [0, 1, 0], down: [Float] = [0, 1, 0]
            up[k] += 1e-2; down[k] -= 1e-2
            let numeric = (try loss(up) - loss(down)) / 2e-2
            XCTAssertEqual(recorded[k], numeric, accuracy: max(3e-4, 0.03 * abs(numeric)), "expert \(k)")
        }
        XCTAssertGreaterThan(abs(recorded[0]), 1e-4, "an unused expert still gets a weight gradient")
    }

    func testSwitchLossIsHardForwardAndSoftBackward() {
        let steps: [(probabilities: [Float], chosen: Int)] = [([0.7, 0.2, 0.1], 0), ([0.6, 0.3, 0.1], 0), ([0.2, 0.5, 0.3], 1), ([0.1, 0.1, 0.8], 2)]
        let (loss, grads) = SwitchingLoss(coefficient: 1, lambda: 0.05).lossAndGradients(episodes: [steps, [([0.5, 0.5, 0], 0)]])
        // Two switches over T − 1 = 3 transitions, averaged over two episodes (the second has none).
        XCTAssertEqual(loss, 0.05 / 3 * 2 / 2, accuracy: 1e-7)
        // Soft surrogate gradient at step 1: −λ/(T−1)/2 · (p_0 + p_2).
        for j in 0..<3 { XCTAssertEqual(grads[0][1][j], -0.05 / 3 / 2 * (steps[0].probabilities[j] + steps[2].probabilities[j]), accuracy: 1e-7) }
        XCTAssertEqual(grads[1][0], [0, 0, 0])
        // And it is the gradient of the surrogate: check one entry by finite differences.
        func surrogate(_ p: [[Float]]) -> Double {
            (0..<3).reduce(0.0) { acc, t in acc + Double(1 - zip(p[t], p[t + 1]).reduce(Float(0)) { $0 + $1.0 * $1.1 }) } * 0.05 / 3 / 2
        }
        var p = steps.map(\.probabilities)
        p[2][1] += 1e-3; let up = surrogate(p)
        p[2][1] -= 2e-3; let down = surrogate(p)
        XCTAssertEqual(Double(grads[0][2][1]), (up - down) / 2e-3, accuracy: 1e-6)
    }

    func testBalanceLoss() throws {
        let p: [[Float]] = [[0.8, 0.1, 0.1], [0.6, 0.3, 0.1]]
        let (loss, grads, hard) = try ExpertBalanceLoss(coefficient: 1).lossAndGradients(probabilities: p, chosen: [0, 0])
        let f = [0.7, 0.2, 0.1]
        XCTAssertEqual(loss, f.map { ($0 - 1.0 / 3) * ($0 - 1.0 / 3) }.reduce(0, +), accuracy: 1e-6)
        XCTAssertEqual(Double(grads[1][0]), 2 * (0.7 - 1.0 / 3) / 2, accuracy: 1e-6)
        XCTAssertEqual(hard, [1, 0, 0])
        XCTAssertThrowsError(try ExpertBalanceLoss().lossAndGradients(probabilities: [[0.5, 0.5], [1]], chosen: [0, 0]))
    }
}
