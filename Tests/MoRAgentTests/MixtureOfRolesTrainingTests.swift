import XCTest
@testable import MoRAgent

/// Mixture-of-Roles training: gradients through LoRAs, top-k routers and shared gates, the
/// load-balancing and orthogonality losses.
final class MixtureOfRolesTrainingTests: XCTestCase {
    static let config = ModelConfig(architecture: .qwen2, hiddenSize: 16, intermediateSize: 24, layerCount: 2, headCount: 4,
                                    keyValueHeadCount: 2, vocabularySize: 41, ropeTheta: 10000, tieWordEmbeddings: false)
    let sequences: [[Int32]] = [[1, 5, 9, 2, 30, 7, 8, 11], [3, 33, 12, 4, 19]]

    func makeMoR() throws -> MixtureOfRoles { try Self.makeMoR(model: Self.config) }

    /// Three roles with routed LoRAs, shared gates and random B (so every path has a gradient)
    /// on five projections of `model`; the recompute tests use it too.
    static func makeMoR(model: ModelConfig) throws -> MixtureOfRoles {
        var c = MixtureOfRolesConfiguration()
        c.routedCounts = [3, 2, 2]; c.topK = [2, 1, 2]; c.rank = 3; c.sharedGate = true
        c.targetModules = [.q, .v, .o, .up, .down]
        let mor = try MixtureOfRoles(configuration: c, model: model, seed: 9)
        var g = SeededGenerator(seed: 10)
        Fixtures.randomizeB(mor.loras.experts, generator: &g, scale: 0.5)
        return mor
    }

    /// Cross-entropy plus 0.5 × load balancing; every parameter family against central
    /// differences (step 1e-2; f32 forward, so 3% relative or 3e-4 absolute).
    func testGradientsMatchFiniteDifferences() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 8))
        let mor = try makeMoR()
        let roles: [AgentRole] = (0..<13).map { $0 < 4 ? .reasoner : ($0 < 8 ? .executor : .summarizer) }
        let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
        let coefficient: Float = 0.5
        func loss() throws -> Double {
            let adapter = mor.adapter(rowRoles: roles)
            let tape = try d.trainingForward(sequences, adapter: adapter)
            return try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead).loss
                + Double(coefficient) * adapter.loadBalancingLoss
        }
        let grads = MixtureOfRolesGradients(mor: mor)
        let adapter = mor.adapter(rowRoles: roles)
        adapter.gradients = grads
        adapter.loadBalancing.coefficient = coefficient
        let tape = try d.trainingForward(sequences, adapter: adapter)
        XCTAssertGreaterThan(adapter.loadBalancingLoss, 0)
        let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
        try d.backward(tape, hiddenGradient: dHidden)
        func check(_ value: Tensor, _ gradient: Tensor, _ name: String) throws {
            for i in Set([0, value.count / 2, value.count - 1]) {
                let saved = value.pointer[i]
                value.pointer[i] = saved + 1e-2; let up = try loss()
                value.pointer[i] = saved - 1e-2; let down = try loss()
                value.pointer[i] = saved
                let numeric = (up - down) / 2e-2
                XCTAssertEqual(Double(gradient.pointer[i]), numeric, accuracy: max(3e-4, 0.03 * abs(numeric)), "\(name)[\(i)]")
            }
        }
        for role in AgentRole.allCases {
            for key in [LoRAModuleKey(layer: 0, kind: .q), LoRAModuleKey(layer: 1, kind: .down)] {
                try check(mor.routers[role.rawValue][key]!.weight, grads.routers[role.rawValue][key]!, "\(role) router \(key.kind)")
                try check(mor.sharedGates[role.rawValue][key]!.weight, grads.sharedGates[role.rawValue][key]!, "\(role) gate \(key.kind)")
            }
        }
        for l in [0, 3, 7, mor.loras.count - 1] {
            let key = LoRAModuleKey(layer: 1, kind: .up)
            try check(mor.loras.experts[l].modules[key]!.a, grads.loras[l, key]!.a, "lora \(l) A")
            try check(mor.loras.experts[l].modules[key]!.b, grads.loras[l, key]!.b, "lora \(l) B")
        }
    }

    func testOrthogonalityLossValueAndGradient() throws {
        let mor = try makeMoR()
        let grads = ExpertGradients(experts: mor.loras)
        let orthogonality = OrthogonalityLoss(coefficient: 1)
        let value = orthogonality.lossAndGradients(mor, addingGradientsTo: grads)
        // By hand for one module and one pair, plus the count of pairs: 4·3/2 + 3 + 3 = 12 pairs.
        let key = LoRAModuleKey(layer: 0, kind: .v)
        let a0 = mor.loras.experts[0].modules[key]!, a1 = mor.loras.experts[1].modules[key]!
        var term: Float = 0
        for x in 0..<3 { for y in 0..<3 {
            var s: Float = 0
            for k in 0..<16 { s += a0.a[x, k] * a1.a[y, k] }
            term += s * s
        } }
        XCTAssertGreaterThan(value, Double(term) / 10, "the total includes this pair's A term")
        for (l, key, isA) in [(0, key, true), (2, LoRAModuleKey(layer: 1, kind: .o), false), (mor.loras.count - 1, LoRAModuleKey(layer: 0, kind: .q), true)] {
            let m = mor.loras.experts[l].modules[key]!
            let t = isA ? m.a : m.b, g = isA ? grads[l, key]!.a : grads[l, key]!.b
            for i in [0, t.count - 1] {
                let saved = t.pointer[i]
                t.pointer[i] = saved + 1e-2; let up = orthogonality.lossAndGradients(mor)
                t.pointer[i] = saved - 1e-2; let down = orthogonality.lossAndGradients(mor)
                t.pointer[i] = saved
                XCTAssertEqual(Double(g.pointer[i]), (up - down) / 2e-2, accuracy: max(1e-5, 0.02 * abs((up - down) / 2e-2)))
            }
        }
    }

    /// Minimising the orthogonality loss alone drives within-role products toward zero.
    func testOrthogonalityLossDrivesProductsToZero() throws {
        let mor = try makeMoR()
        let grads = ExpertGradients(experts: mor.loras)
        var c = AdamW.Configuration(); c.learningRate = 1e-2; c.weightDecay = 0
        let opt = try AdamW(parameters: grads.parameterPairs(mor.loras), configuration: c)
        let orthogonality = OrthogonalityLoss(coefficient: 1)
        let start = orthogonality.lossAndGradients(mor)
        for _ in 0..<150 {
            grads.zero()
            orthogonality.lossAndGradients(mor, addingGradientsTo: grads)
            try opt.step()
        }
        XCTAssertLessThan(orthogonality.lossAndGradients(mor), 0.05 * start, "from \(start)")
    }
}
