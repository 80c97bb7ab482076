import XCTest
@testable import MoRAgent

/// The training objectives as values: a term's coefficient scales exactly its value and its
/// gradient, a coefficient of 0 removes the term, and a trainer's objective is the sum of its
/// terms.
final class ObjectiveTests: XCTestCase {
    /// Router distributions of one four-step episode, and the experts chosen.
    static let probabilities: [[Float]] = [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    static let chosen = [0, 0, 1, 2]
    static let coefficient: Float = 0.3

    func testBalanceCoefficientScalesValueAndGradient() throws {
        let c = Self.coefficient
        let one = try ExpertBalanceLoss(coefficient: 1).lossAndGradients(probabilities: Self.probabilities, chosen: Self.chosen)
        let scaled = try ExpertBalanceLoss(coefficient: c).lossAndGradients(probabilities: Self.probabilities, chosen: Self.chosen)
        XCTAssertGreaterThan(one.loss, 0)
        XCTAssertEqual(scaled.loss, Double(c) * one.loss)
        XCTAssertEqual(scaled.gradients, one.gradients.map { $0.map { c * $0 } })
        XCTAssertEqual(scaled.hardFrequencies, one.hardFrequencies, "the hard frequencies are reported unweighted")
        let off = try ExpertBalanceLoss(coefficient: 0).lossAndGradients(probabilities: Self.probabilities, chosen: Self.chosen)
        XCTAssertEqual(off.loss, 0)
        XCTAssertTrue(off.gradients.joined().allSatisfy { $0 == 0 })
        XCTAssertEqual(ExpertBalanceLoss().coefficient, 0.001)
    }

    func testSwitchingCoefficientScalesValueAndGradient() {
        let c = Self.coefficient
        let episodes = [Array(zip(Self.probabilities, Self.chosen)).map { (probabilities: $0.0, chosen: $0.1) }]
        let one = SwitchingLoss(coefficient: 1, lambda: 0.05).lossAndGradients(episodes: episodes)
        let scaled = SwitchingLoss(coefficient: c, lambda: 0.05).lossAndGradients(episodes: episodes)
        XCTAssertEqual(one.loss, Double(Float(0.05) / 3) * 2, "two switches over three transitions")
        XCTAssertEqual(scaled.loss, Double(c) * one.loss)
        XCTAssertEqual(scaled.gradients, one.gradients.map { $0.map { $0.map { c * $0 } } })
        let off = SwitchingLoss(coefficient: 0).lossAndGradients(episodes: episodes)
        XCTAssertEqual(off.loss, 0)
        XCTAssertTrue(off.gradients.joined().joined().allSatisfy { $0 == 0 })
        XCTAssertEqual(SwitchingLoss(), SwitchingLoss(coefficient: 1, lambda: 0.05))
    }

    func testDiversityCoefficientScalesValueAndGradient() throws {
        let d = Decoder(weights: DecoderWeights.random(config: DiversityLossTests.config, seed: 1))
        let set = try ExpertSet(model: DiversityLossTests.config, count: 3, configuration: LoRAConfiguration(rank: 2, alpha: 4, targetModules: [.q, .v]), seed: 2)
        var g = SeededGenerator(seed: 3)
        Fixtures.randomizeB(set.experts, generator: &g, scale: 0.05)
        let states = [ExpertSample(prompt: [1, 5, 9, 2], action: [7, 3])]
        func run(_ coefficient: Float) throws -> (Double, [[Float]]) {
            let grads = ExpertGradients(experts: set)
            let value = try DiversityLoss(coefficient: coefficient).lossAndGradients(decoder: d, experts: set, states: states, addingGradientsTo: grads)
            return (value, grads.parameterPairs(set).map(\.gradient.values))
        }
        let c: Float = 0.01
        let (one, gOne) = try run(1), (scaled, gScaled) = try run(c), (off, gOff) = try run(0)
        XCTAssertGreaterThan(one, 0)
        XCTAssertEqual(scaled, Double(c) * one)
        XCTAssertEqual(gScaled, gOne.map { $0.map { c * $0 } })
        XCTAssertEqual(off, 0)
        XCTAssertTrue(gOff.joined().allSatisfy { $0 == 0 })
        let p = DiversityLoss()
        XCTAssertEqual([Double(p.coefficient), Double(p.interval), Double(p.samples), Double(p.bufferCapacity), p.margin],
                       [Double(Float(0.01)), 100, 64, 1000, 0.1])
    }

    func testRoleLoadBalancingCoefficientScalesTheGradientOnly() {
        let f = [0.5, 0.25, 0.25], p = [0.4, 0.35, 0.25], c = Self.coefficient
        let one = RoleLoadBalancingLoss(coefficient: 1), scaled = RoleLoadBalancingLoss(coefficient: c)
        XCTAssertEqual(one.value(fractions: f, meanProbabilities: p, modules: 2), 3 * (0.2 + 0.0875 + 0.0625) / 2)
        XCTAssertEqual(scaled.value(fractions: f, meanProbabilities: p, modules: 2), one.value(fractions: f, meanProbabilities: p, modules: 2),
                       "the value is reported unweighted; the objective weights it")
        XCTAssertEqual(one.probabilityGradient(fractions: f, tokens: 4, modules: 2), [0.1875, 0.09375, 0.09375])
        XCTAssertEqual(scaled.probabilityGradient(fractions: f, tokens: 4, modules: 2), [0.1875, 0.09375, 0.09375].map { c * $0 })
        XCTAssertNil(RoleLoadBalancingLoss(coefficient: 0).probabilityGradient(fractions: f, tokens: 4, modules: 2))
        XCTAssertEqual(RoleLoadBalancingLoss().coefficient, 1e-3)
    }

    func testOrthogonalityCoefficientScalesTheGradientOnly() throws {
        var configuration = MixtureOfRolesConfiguration()
        configuration.routedCounts = [3, 2, 2]; configuration.topK = [2, 1, 2]; configuration.rank = 3; configuration.targetModules = [.q, .v, .down]
        let mor = try MixtureOfRoles(configuration: configuration, model: MixtureOfRolesTrainingTests.config, seed: 9)
        var g = SeededGenerator(seed: 10)
        Fixtures.randomizeB(mor.loras.experts, generator: &g, scale: 0.5)
        func run(_ coefficient: Float) -> (Double, [[Float]]) {
            let grads = ExpertGradients(experts: mor.loras)
            let value = OrthogonalityLoss(coefficient: coefficient).lossAndGradients(mor, addingGradientsTo: grads)
            return (value, grads.parameterPairs(mor.loras).map(\.gradient.values))
        }
        // A power of two, so that scaling commutes exactly with BLAS's own order of operations.
        let (one, gOne) = run(1), (scaled, gScaled) = run(0.25), (off, gOff) = run(0)
        XCTAssertGreaterThan(one, 0)
        XCTAssertEqual(scaled, one, "the value is reported unweighted; the objective weights it")
        XCTAssertEqual(off, one)
        XCTAssertEqual(gScaled, gOne.map { $0.map { 0.25 * $0 } })
        XCTAssertTrue(gOff.joined().allSatisfy { $0 == 0 })
        XCTAssertEqual(OrthogonalityLoss().coefficient, 1e-4)
    }

    /// `L = L_CE + α₁·L_aux + α₂·L_orth`, and a zero coefficient leaves `L_CE`.
    func testMixtureOfRolesObjectiveIsTheWeightedSum() {
        var objective = MixtureOfRolesObjective()
        XCTAssertEqual(objective.loss(crossEntropy: 2, loadBalancing: 3, orthogonality: 0.5), 2 + Double(Float(1e-3)) * 3 + Double(Float(1e-4)) * 0.5)
        objective.loadBalancing.coefficient = 0
        objective.orthogonality.coefficient = 0
        XCTAssertEqual(objective.loss(crossEntropy: 2, loadBalancing: 3, orthogonality: 0.5), 2)
    }

    /// One SFT step for each combination of terms, from the same initialisation: the step's loss
    /// is the weighted sum of its reported terms, and its gradient is the cross-entropy's plus
    /// each term's contribution (no clipping, so the buffers hold the raw gradients).
    func testSFTTrainerComposesItsTerms() throws {
        let engine = try Engine(folder: Fixtures.model("qwen2-tiny"))
        let lines = ["Paris", "Rome"].map { MixtureOfRolesSFTTests.conversation(city: $0, tool: 0) }
        let batch = try RoleAnnotatedConversation.parse(lines: Array(lines.joined(separator: "\n").utf8), location: "batch")
        func step(_ aux: Float, _ orth: Float) throws -> (SFTStepMetrics, [Float]) {
            var c = MixtureOfRolesSFTConfiguration(model: "", trainData: "", output: "")
            c.mixture.routedCounts = [2, 2, 1]; c.mixture.topK = [1, 1, 1]; c.mixture.rank = 4
            c.clipNorm = 0; c.seed = 3
            c.objective.loadBalancing.coefficient = aux
            c.objective.orthogonality.coefficient = orth
            let trainer = try MixtureOfRolesTrainer(configuration: c, engine: engine)
            let m = try trainer.trainStep(batch)
            return (m, trainer.gradients.parameterPairs(trainer.mixture).flatMap(\.gradient.values))
        }
        let (m0, g0) = try step(0, 0), (mA, gA) = try step(0.5, 0), (mO, gO) = try step(0, 0.5), (mB, gB) = try step(0.5, 0.5)
        XCTAssertEqual(m0.loss, m0.crossEntropy, "zero coefficients leave the cross-entropy")
        for m in [mA, mO, mB] {
            XCTAssertEqual(m.crossEntropy, m0.crossEntropy)
            XCTAssertEqual(m.loadBalancing, m0.loadBalancing)
            XCTAssertEqual(m.orthogonality, m0.orthogonality)
        }
        XCTAssertGreaterThan(m0.loadBalancing, 0)
        XCTAssertGreaterThan(m0.orthogonality, 0)
        XCTAssertEqual(mB.loss, m0.crossEntropy + 0.5 * m0.loadBalancing + 0.5 * m0.orthogonality)
        XCTAssertNotEqual(gA, g0, "the load-balancing term reaches the routers")
        XCTAssertNotEqual(gO, g0, "the orthogonality term reaches the LoRAs")
        var scale: Float = 0
        for i in g0.indices { scale = max(scale, abs(gB[i] - g0[i])) }
        for i in g0.indices {
            XCTAssertEqual(gB[i] - g0[i], (gA[i] - g0[i]) + (gO[i] - g0[i]), accuracy: 1e-4 * scale, "gradient \(i)")
        }
    }

    /// One RL update with a phase router for each combination of routing terms, from the same
    /// rollouts: the update's loss is the sum of its reported terms, zero coefficients report
    /// zero, and the router's gradient is the surrogate's plus each term's contribution.
    func testPolicyTrainerComposesItsTerms() throws {
        func update(balance: Float, switching: Float) throws -> (UpdateStatistics, [Float]) {
            let (policy, _, router) = try PolicyTrainerTests.phaseRoutedPolicy()
            var c = PolicyTrainerConfiguration()
            c.maxGradientNorm = 1e30
            c.objective.surrogate.klCoefficient = 0.1
            c.objective.balance.coefficient = balance
            c.objective.switching.coefficient = switching
            c.objective.diversity.coefficient = 0
            let trainer = try PolicyTrainer(policy: policy, configuration: c)
            // Two groups of two three-step episodes; reward 1 when the first token id is even.
            for id in 0..<4 {
                try policy.beginEpisode(id, group: id / 2)
                var won = false
                for t in 0..<3 { won = try policy.step(episode: id, observation: "room \(id) step \(t)", goal: "find the even token").ids[0] % 2 == 0 }
                try policy.endEpisode(id, reward: won ? 1 : 0, success: won)
            }
            let stats = try trainer.update()
            return (stats, trainer.routerGradients!.parameterPairs(router).flatMap(\.gradient.values))
        }
        let (s0, g0) = try update(balance: 0, switching: 0)
        let (sB, gB) = try update(balance: 0.5, switching: 0)
        let (sS, gS) = try update(balance: 0, switching: 2)
        let (sA, gA) = try update(balance: 0.5, switching: 2)
        XCTAssertEqual(s0.balanceLoss, 0)
        XCTAssertEqual(s0.switchLoss, 0)
        XCTAssertGreaterThan(sB.balanceLoss, 0)
        for s in [s0, sB, sS, sA] {
            XCTAssertEqual(s.policyLoss, s0.policyLoss)
            XCTAssertEqual(s.referenceKL, s0.referenceKL)
            XCTAssertEqual(s.loss, s.policyLoss + Double(Float(0.1)) * s.referenceKL + s.balanceLoss + s.switchLoss + s.diversityLoss + s.valueLoss)
        }
        XCTAssertEqual(sA.balanceLoss, sB.balanceLoss)
        XCTAssertEqual(sA.switchLoss, sS.switchLoss)
        XCTAssertNotEqual(gB, g0, "the balance term reaches the router")
        XCTAssertNotEqual(gS, g0, "the switching term reaches the router")
        var scale: Float = 0
        for i in g0.indices { scale = max(scale, abs(gB[i] - g0[i]), abs(gS[i] - g0[i])) }
        for i in g0.indices {
            XCTAssertEqual(gA[i] - g0[i], (gB[i] - g0[i]) + (gS[i] - g0[i]), accuracy: 1e-4 * scale, "router gradient \(i)")
        }
    }
}
