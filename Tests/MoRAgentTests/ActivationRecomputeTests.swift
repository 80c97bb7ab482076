import XCTest
@testable import MoRAgent

/// `ActivationMemory.recompute` against `.store`: the same gradients bit for bit (the recompute
/// runs the same kernels on the same inputs, the adapter replaying its recorded decisions), the
/// adapters' records untouched by the backward's recompute, a smaller tape, and the same
/// parameters after a trainer's step.
final class ActivationRecomputeTests: XCTestCase {
    /// Biases and a sliding window (qwen2), so every branch of the layer forward is recomputed.
    static let config = GradientTests.config
    let sequences: [[Int32]] = [[1, 5, 9, 2, 30, 7, 8], [3, 33, 12, 4]]

    /// Forward, cross-entropy on every next token, backward; returns the tape.
    @discardableResult
    func step(_ decoder: Decoder, _ memory: ActivationMemory, adapter: TrainableAdapter? = nil,
              baseGradients: DecoderGradients? = nil) throws -> TrainingTape {
        let tape = try decoder.trainingForward(sequences, adapter: adapter, activationMemory: memory)
        let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
        let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: decoder.weights.lmHead,
                                                                    lmHeadGradient: baseGradients?.weights.lmHead)
        try decoder.backward(tape, hiddenGradient: dHidden, baseGradients: baseGradients)
        return tape
    }

    func experts(count: Int, seed: UInt64) throws -> ExpertSet {
        let set = try ExpertSet(model: Self.config, count: count,
                                configuration: LoRAConfiguration(rank: 3, alpha: 6, targetModules: Set(ProjectionKind.allCases)), seed: seed)
        var g = SeededGenerator(seed: seed + 1)
        Fixtures.randomizeB(set.experts, generator: &g, scale: 0.5)
        return set
    }

    /// A fixed mixture (stateless): LoRA gradients and PA-MoE's route-weight gradients.
    func testExpertMixtureGradientsAreBitIdentical() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 2))
        let set = try experts(count: 2, seed: 3)
        var results: [(gradients: [[Float]], routeWeights: [[Double]], hidden: [Float])] = []
        for memory in [ActivationMemory.store, .recompute] {
            let adapter = try ExpertMixtureAdapter(experts: set, routes: [.mixture([(0, 0.6), (1, 0.4)]), .expert(1)],
                                                   tokenCounts: sequences.map(\.count))
            let gradients = ExpertGradients(experts: set)
            adapter.gradients = gradients
            try adapter.recordRouteWeightGradients()
            let tape = try step(d, memory, adapter: adapter)
            XCTAssertEqual(tape.activationMemory, memory)
            results.append((gradients.parameterPairs(set).map(\.gradient.values), adapter.routeWeightGradients!, tape.hidden.values))
        }
        XCTAssertEqual(results[1].hidden, results[0].hidden)
        XCTAssertEqual(results[1].gradients, results[0].gradients)
        XCTAssertEqual(results[1].routeWeights, results[0].routeWeights)
        XCTAssertGreaterThan(results[0].gradients.flatMap { $0 }.map(abs).max()!, 1e-4, "the gradients are not trivially zero")
    }

    /// A token router, per layer and shared: expert and gate gradients bit-identical, and the
    /// backward's recompute routes nothing anew (one recorded decision per layer, unchanged).
    func testTokenRouterGradientsAreBitIdenticalAndChoicesUnchanged() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 4))
        let set = try experts(count: 3, seed: 5)
        func flat(_ choices: [[[(expert: Int, weight: Float)]]]) -> [[[Float]]] {
            choices.map { $0.map { $0.flatMap { [Float($0.expert), $0.weight] } } }
        }
        for perLayer in [true, false] {
            let router = try TokenTopKRouter(experts: set, topK: 2, perLayer: perLayer, seed: 6)
            var results: [(experts: [[Float]], gates: [[Float]], choices: [[[Float]]])] = []
            for memory in [ActivationMemory.store, .recompute] {
                let adapter = router.adapter()
                let expertGradients = ExpertGradients(experts: set), routerGradients = TokenRouterGradients(router: router)
                adapter.expertGradients = expertGradients
                adapter.routerGradients = routerGradients
                let tape = try d.trainingForward(sequences, adapter: adapter, activationMemory: memory)
                let forwardChoices = flat(adapter.choices)
                XCTAssertEqual(forwardChoices.count, perLayer ? Self.config.layerCount : 1)
                let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
                let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
                try d.backward(tape, hiddenGradient: dHidden)
                XCTAssertEqual(flat(adapter.choices), forwardChoices, "the backward leaves the recorded choices as they were")
                results.append((expertGradients.parameterPairs(set).map(\.gradient.values), routerGradients.gates.map(\.values), forwardChoices))
            }
            XCTAssertEqual(results[1].choices, results[0].choices)
            XCTAssertEqual(results[1].experts, results[0].experts, perLayer ? "per layer" : "shared")
            XCTAssertEqual(results[1].gates, results[0].gates, perLayer ? "per layer" : "shared")
            XCTAssertGreaterThan(results[0].gates.flatMap { $0 }.map(abs).max()!, 1e-5, "the gates get a gradient")
        }
    }

    /// Mixture-of-Roles with shared gates and load balancing: every gradient bit-identical, and
    /// the load-balancing loss and routing as the forward left them.
    func testMixtureOfRolesGradientsAreBitIdenticalAndRecordsUnchanged() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 8))
        let mor = try MixtureOfRolesTrainingTests.makeMoR(model: Self.config)
        let roles: [AgentRole] = (0..<11).map { $0 < 4 ? .reasoner : ($0 < 8 ? .executor : .summarizer) }
        func routing(_ a: MixtureOfRolesAdapter) -> [String: [[Float]]] {
            Dictionary(uniqueKeysWithValues: a.routing.map { ("\($0.key)", $0.value.map { $0.flatMap { [Float($0.lora), $0.weight] } }) })
        }
        var results: [(gradients: [[Float]], loss: Double, routing: [String: [[Float]]])] = []
        for memory in [ActivationMemory.store, .recompute] {
            let adapter = mor.adapter(rowRoles: roles)
            let gradients = MixtureOfRolesGradients(mor: mor)
            adapter.gradients = gradients
            adapter.loadBalancing.coefficient = 0.5
            let tape = try d.trainingForward(sequences, adapter: adapter, activationMemory: memory)
            let loss = adapter.loadBalancingLoss, recorded = routing(adapter)
            XCTAssertGreaterThan(loss, 0)
            let targets = try TokenCrossEntropy.nextTokenTargets(sequences)
            let (_, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets, lmHead: d.weights.lmHead)
            try d.backward(tape, hiddenGradient: dHidden)
            XCTAssertEqual(adapter.loadBalancingLoss, loss, "the recompute adds no load-balancing loss")
            XCTAssertEqual(routing(adapter), recorded, "the recompute records no routing")
            results.append((gradients.parameterPairs(mor).map(\.gradient.values), loss, recorded))
        }
        XCTAssertEqual(results[1].loss, results[0].loss)
        XCTAssertEqual(results[1].routing, results[0].routing)
        XCTAssertEqual(results[1].gradients, results[0].gradients)
    }

    /// Full fine-tuning: every base weight's gradient (norms, biases, embeddings) bit-identical.
    func testBaseGradientsAreBitIdentical() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 5))
        var results: [[[Float]]] = []
        for memory in [ActivationMemory.store, .recompute] {
            let gradients = DecoderGradients(config: Self.config)
            try step(d, memory, baseGradients: gradients)
            results.append(gradients.parameterPairs(d.weights).map(\.gradient.values))
        }
        XCTAssertEqual(results[1], results[0])
    }

    /// Per layer and row the tape keeps `C` floats instead of `2C + 2(H+KVH)·D + H + 2I`, plus
    /// `final` and `hidden` (`C` each) in both modes.
    func testRecomputeTapeHoldsOnlyLayerInputs() throws {
        let d = Decoder(weights: DecoderWeights.random(config: Self.config, seed: 1))
        let c = Self.config, n = sequences.reduce(0) { $0 + $1.count }, f = MemoryLayout<Float>.stride
        let store = try d.trainingForward(sequences), recompute = try d.trainingForward(sequences, activationMemory: .recompute)
        let perLayer = 2 * c.hiddenSize + 2 * (c.headCount + c.keyValueHeadCount) * c.headDimension + c.headCount + 2 * c.intermediateSize
        XCTAssertEqual(store.byteCount, n * (c.layerCount * perLayer + 2 * c.hiddenSize) * f)
        XCTAssertEqual(recompute.byteCount, n * (c.layerCount + 2) * c.hiddenSize * f)
        XCTAssertEqual(recompute.hidden.values, store.hidden.values)
    }

    /// Through the SFT trainer: `"recompute_activations": true` parses, and one step leaves the
    /// same mixture and metrics as without it.
    func testSFTStepIsTheSameWithRecompute() throws {
        let engine = try Engine(folder: Fixtures.model("qwen2-tiny"))
        let batch = try RoleAnnotatedConversation.parse(
            lines: Array(["Paris", "Oslo"].map { MixtureOfRolesSFTTests.conversation(city: $0, tool: 1) }.joined(separator: "\n").utf8), location: "batch")
        var results: [(tensors: [[Float]], metrics: SFTStepMetrics)] = []
        for recompute in [false, true] {
            let json = try JSONValue.parse(#"{"routed_counts": [2, 2, 1], "top_k": [1, 1, 1], "rank": 4, "shared_gate": true, "learning_rate": 0.01, "recompute_activations": \#(recompute)}"#)
            let configuration = try MixtureOfRolesSFTConfiguration.parse(json, location: "config", relativeTo: nil)
            XCTAssertEqual(configuration.activationMemory, recompute ? .recompute : .store)
            let trainer = try MixtureOfRolesTrainer(configuration: configuration, engine: engine)
            let metrics = try trainer.trainStep(batch)
            results.append((trainer.mixture.namedTensors.map(\.tensor.values), metrics))
        }
        XCTAssertEqual(results[1].metrics, results[0].metrics)
        XCTAssertEqual(results[1].tensors, results[0].tensors)
        XCTAssertThrowsError(try MixtureOfRolesSFTConfiguration.parse(try JSONValue.parse(#"{"recompute_activations": 1}"#), location: "config", relativeTo: nil)) {
            XCTAssertTrue("\($0)".contains("recompute_activations"), "\($0)")
        }
    }

    /// Through the RL trainer, with a phase router (route-weight gradients) and the diversity
    /// loss: two updates leave the same experts, router and statistics.
    func testPolicyUpdatesAreTheSameWithRecompute() throws {
        var results: [(experts: [[Float]], router: [[Float]], stats: String)] = []
        for memory in [ActivationMemory.store, .recompute] {
            let (policy, set, router) = try PolicyTrainerTests.phaseRoutedPolicy()
            var c = PolicyTrainerConfiguration()
            c.optimizer.learningRate = 1e-2; c.objective.diversity.interval = 1; c.objective.diversity.samples = 2; c.activationMemory = memory
            let trainer = try PolicyTrainer(policy: policy, configuration: c)
            var stats = ""
            for first in [0, 50] {
                // Two groups of two two-step episodes; reward 1 when the first token id is even.
                for id in first..<(first + 4) {
                    try policy.beginEpisode(id, group: first + (id - first) / 2)
                    var won = false
                    for t in 0..<2 { won = try policy.step(episode: id, observation: "room \(id) step \(t)", goal: "find the even token").ids[0] % 2 == 0 }
                    try policy.endEpisode(id, reward: won ? 1 : 0, success: won)
                }
                stats += try trainer.update().json.serialized.replacingOccurrences(of: #""seconds":[^,}]*"#, with: "", options: .regularExpression)
            }
            results.append((set.experts.flatMap { e in e.modules.keys.sorted().flatMap { [e.modules[$0]!.a.values, e.modules[$0]!.b.values] } },
                            router.namedTensors.map(\.tensor.values), stats))
        }
        XCTAssertEqual(results[1].stats, results[0].stats)
        XCTAssertEqual(results[1].experts, results[0].experts)
        XCTAssertEqual(results[1].router, results[0].router)
    }

    /// Through base-model pretraining (two half-batches on two threads): the same weights.
    func testPretrainingIsTheSameWithRecompute() throws {
        var weights: [[[Float]]] = []
        for memory in [ActivationMemory.store, .recompute] {
            var c = BaseModelPretrainingTests.smallConfiguration()
            c.activationMemory = memory
            let trainer = try BaseModelPretrainer(configuration: c,
                                                  tokenizerJSON: try WordLevelTokenizerBuilder().tokenizerJSON(lines: BaseModelPretrainingTests.walkthroughs))
            try trainer.train(lines: BaseModelPretrainingTests.walkthroughs) { _ in }
            weights.append(trainer.decoder.weights.huggingFaceTensors.map(\.tensor.values))
        }
        XCTAssertEqual(weights[1], weights[0])
    }
}
