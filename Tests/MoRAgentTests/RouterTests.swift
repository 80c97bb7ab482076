import XCTest
@testable import MoRAgent

/// Step-level routers: the phase router's forward, its schedule and files, and the baselines.
final class RouterTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))
    static let encoder = TextEncoder(engine: engine)

    func context(_ observation: String, goal: String = "put a clean mug in the coffeemachine", step: Int = 0,
                 history: [(observation: String, action: String)] = [], episode: Int = 0) -> StepContext {
        StepContext(episode: episode, step: step, observation: observation, goal: goal, history: history, encoder: Self.encoder)
    }

    func smallRouter(seed: UInt64 = 1, pooled: Bool = false, experts: Int = 4) throws -> PhaseRouter {
        var c = PhaseRouterConfiguration()
        c.expertCount = experts; c.attentionDimension = 32; c.attentionHeads = 4; c.lstmHiddenSize = 16
        c.mlpHiddenSize = 24; c.pooledGoal = pooled
        return try PhaseRouter(configuration: c, modelHiddenSize: Self.engine.decoder.config.hiddenSize, seed: seed)
    }

    func testPhaseRouterShapesAndTemperature() throws {
        let router = try smallRouter()
        let inputs = try router.inputs(context("You are in the kitchen.", history: [("start", "go to sink 1")]))
        XCTAssertEqual(inputs.history.count, 5)
        XCTAssertEqual(inputs.history[0], [Float](repeating: 0, count: 128), "older slots are zero-padded")
        XCTAssertNotEqual(inputs.history[4], [Float](repeating: 0, count: 128))
        XCTAssertEqual(inputs.goal.rows, try Self.engine.requireTokenizer().encode("put a clean mug in the coffeemachine").count)
        let logits = router.logits(inputs)
        XCTAssertEqual(logits.count, 4)
        router.temperature = 2
        let warm = router.probabilities(logits)
        router.temperature = 0.5
        let cold = router.probabilities(logits)
        XCTAssertEqual(warm.reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertEqual(cold.reduce(0, +), 1, accuracy: 1e-5)
        XCTAssertGreaterThan(cold.max()!, warm.max()!, "a lower temperature sharpens the distribution")
        XCTAssertEqual(cold.firstIndex(of: cold.max()!), warm.firstIndex(of: warm.max()!), "the argmax does not depend on τ")
        // softmax(logits/τ) by hand.
        let z = logits.map { exp(Double($0) / 0.5) }.reduce(0, +)
        for (p, l) in zip(cold, logits) { XCTAssertEqual(Double(p), exp(Double(l) / 0.5) / z, accuracy: 1e-5) }
    }

    func testTemperatureScheduleFollowsEquation3() {
        let c = PhaseRouterConfiguration()
        XCTAssertEqual(c.temperature(afterUpdates: 0), 2.0)
        XCTAssertEqual(c.temperature(afterUpdates: 1500), 1.25, accuracy: 1e-6)
        XCTAssertEqual(c.temperature(afterUpdates: 3000), 0.5, accuracy: 1e-6)
        XCTAssertEqual(c.temperature(afterUpdates: 9000), 0.5)
    }

    /// The inputs matter: the goal (per-token and pooled differ), the observation and the history.
    func testGoalObservationAndHistoryChangeTheLogits() throws {
        let router = try smallRouter()
        let base = router.logits(try router.inputs(context("You see a fridge 1.")))
        XCTAssertNotEqual(base, router.logits(try router.inputs(context("You see a fridge 1.", goal: "heat some egg"))))
        XCTAssertNotEqual(base, router.logits(try router.inputs(context("The fridge 1 is open."))))
        XCTAssertNotEqual(base, router.logits(try router.inputs(context("You see a fridge 1.", history: [("a", "open fridge 1")]))))
        let pooled = try smallRouter(pooled: true)
        XCTAssertEqual(try pooled.inputs(context("x")).goal.rows, 1)
        XCTAssertNotEqual(base, pooled.logits(try pooled.inputs(context("You see a fridge 1."))))
    }

    func testSeedsDetermineParametersAndFilesRoundTrip() throws {
        let a = try smallRouter(seed: 9), b = try smallRouter(seed: 9), c = try smallRouter(seed: 10)
        let ctx = context("You see a countertop 2.", history: [("x", "y"), ("z", "go to countertop 2")])
        XCTAssertEqual(a.logits(try a.inputs(ctx)), b.logits(try b.inputs(ctx)))
        XCTAssertNotEqual(a.logits(try a.inputs(ctx)), c.logits(try c.inputs(ctx)))
        let folder = Fixtures.temporaryFolder(); defer { try? FileManager.default.removeItem(atPath: folder) }
        a.temperature = 0.8
        try a.save(to: folder + "/router.safetensors")
        let back = try PhaseRouter.load(from: folder + "/router.safetensors")
        XCTAssertEqual(back.configuration, a.configuration)
        XCTAssertEqual(back.temperature, 0.8)
        XCTAssertEqual(back.logits(try back.inputs(ctx)), a.logits(try a.inputs(ctx)))
        XCTAssertEqual(try back.decide(ctx), try a.decide(ctx))
        // A file that is not a router is rejected with its name.
        try SafeTensorsWriter.write([("x", Tensor(zeros: [1]))], to: folder + "/other.safetensors")
        XCTAssertThrowsError(try PhaseRouter.load(from: folder + "/other.safetensors")) { XCTAssertTrue("\($0)".contains("other.safetensors")) }
        // Metadata claiming sizes the stored tensors do not have fails before anything is allocated.
        let file = try SafeTensorsFile(path: folder + "/router.safetensors")
        for (from, to) in [("\"model_hidden_size\":64", "\"model_hidden_size\":1099511627776"), ("\"lstm_hidden_size\":16", "\"lstm_hidden_size\":60000"),
                           ("\"history_length\":5", "\"history_length\":100000000")] {
            let meta = file.metadata["moragent"]!.replacingOccurrences(of: from, with: to)
            XCTAssertNotEqual(meta, file.metadata["moragent"]!, from)
            try SafeTensorsWriter.write(try file.entries.keys.sorted().map { ($0, try file.tensor($0)) }, metadata: ["moragent": meta], to: folder + "/bad.safetensors")
            XCTAssertThrowsError(try PhaseRouter.load(from: folder + "/bad.safetensors")) { XCTAssertTrue("\($0)".contains("bad.safetensors"), "\($0)") }
        }
    }

    /// One LSTM cell step against the equations by hand (PyTorch's gate order i, f, g, o).
    func testLSTMCellMatchesHandComputation() {
        var g = SeededGenerator(seed: 4)
        let lstm = LSTMNetwork(inputSize: 2, hiddenSize: 1, layerCount: 1, generator: &g)
        let (ih, hh) = lstm.layers[0]
        let x: [Float] = [0.3, -1.2]
        func gate(_ j: Int, _ h: Float) -> Float {
            ih.weight[j, 0] * x[0] + ih.weight[j, 1] * x[1] + ih.bias!.pointer[j] + hh.weight[j, 0] * h + hh.bias!.pointer[j]
        }
        func sig(_ v: Float) -> Float { 1 / (1 + exp(-v)) }
        // Step 1 from zero state.
        let c1 = sig(gate(0, 0)) * tanh(gate(2, 0))
        let h1 = sig(gate(3, 0)) * tanh(c1)
        // Step 2.
        let c2 = sig(gate(1, h1)) * c1 + sig(gate(0, h1)) * tanh(gate(2, h1))
        let h2 = sig(gate(3, h1)) * tanh(c2)
        XCTAssertEqual(lstm.lastHidden([x])[0], h1, accuracy: 1e-6)
        XCTAssertEqual(lstm.lastHidden([x, x])[0], h2, accuracy: 1e-6)
    }

    func testTrajectoryRouterKeepsTheFirstChoice() throws {
        final class Counting: StepRouter {
            var calls = 0
            let expertCount = 3
            func decide(_ context: StepContext) throws -> StepDecision {
                calls += 1
                return StepDecision(route: .expert(context.observation.count % 3), probabilities: [0.2, 0.3, 0.5])
            }
        }
        let inner = Counting()
        let router = TrajectoryRouter(inner: inner)
        let first = try router.decide(context("ab", step: 0))
        XCTAssertEqual(try router.decide(context("abcd", step: 1)), first)
        XCTAssertEqual(inner.calls, 1)
        XCTAssertEqual(try router.decide(context("abcd", step: 0, episode: 1)).expert, 1)
        router.endEpisode(0)
        XCTAssertEqual(try router.decide(context("a", step: 0)).expert, 1)
        XCTAssertEqual(inner.calls, 3)
    }

    func testCallbackAndFixedRouters() throws {
        var weights: [Float] = [0, 2, 0]
        let router = CallbackRouter(expertCount: 3) { _ in weights }
        XCTAssertEqual(try router.decide(context("x")), StepDecision(route: .expert(1), probabilities: [0, 1, 0]))
        weights = [1, 0, 3]
        XCTAssertEqual(try router.decide(context("x")).route, .mixture([(0, 0.25), (2, 0.75)]))
        weights = [0, 0, 0]
        XCTAssertEqual(try router.decide(context("x")).route, .base)
        for bad: [Float] in [[1, 2], [1, -1, 0], [.nan, 0, 0], [.infinity, 0, 0]] {
            weights = bad
            XCTAssertThrowsError(try router.decide(context("x")))
        }
        XCTAssertEqual(try FixedRouter(expert: 2, expertCount: 3).decide(context("x")).route, .expert(2))
        XCTAssertEqual(try FixedRouter(expert: nil, expertCount: 3).decide(context("x")).route, .base)
        XCTAssertThrowsError(try FixedRouter(expert: 3, expertCount: 3))
    }

    /// Enc(text) is the mean of the base model's final hidden states over the text's tokens.
    func testTextEncoderMatchesTheDecoder() throws {
        let text = "You are in the middle of a room."
        let ids = try Self.engine.requireTokenizer().encode(text)
        let hidden = try Self.engine.decoder.forward([DecoderSequence(tokens: ids, cache: KVCache(config: Self.engine.decoder.config))], logits: .none).hidden
        let enc = try Self.encoder.encode(text)
        for j in [0, 5, 63] {
            let mean = (0..<ids.count).map { hidden[$0, j] }.reduce(0, +) / Float(ids.count)
            XCTAssertEqual(enc[j], mean, accuracy: 1e-5)
        }
        XCTAssertEqual(try Self.encoder.encode(""), [Float](repeating: 0, count: 64))
        let emb = try Self.encoder.embed(text)
        let table = Self.engine.decoder.weights.embedding
        XCTAssertEqual(emb[3], ids.map { table[Int($0), 3] }.reduce(0, +) / Float(ids.count), accuracy: 1e-5)
    }
}
