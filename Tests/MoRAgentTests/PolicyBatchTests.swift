import XCTest
@testable import MoRAgent

/// `Policy.step(_:)`: a batch of episodes steps as one call per episode would, for every kind of
/// routing, and a bad batch changes no episode.
final class PolicyBatchTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    func experts(_ k: Int) throws -> ExpertSet { try Fixtures.policyExperts(k, model: Self.engine.decoder.config) }

    func sampling() -> SamplingParameters {
        var s = SamplingParameters(); s.temperature = 1; s.maxNewTokens = 6; s.seed = 5; s.stopStrings = []
        return s
    }

    /// A maker per routing kind; two policies from one maker start identical.
    func makers() -> [(name: String, make: () throws -> Policy)] {
        [("phase", {
            var c = PhaseRouterConfiguration(); c.expertCount = 3; c.attentionDimension = 16; c.lstmHiddenSize = 8; c.mlpHiddenSize = 8
            let router = try PhaseRouter(configuration: c, modelHiddenSize: 64, seed: 2)
            return try Policy(engine: Self.engine, experts: try self.experts(3), router: router, sampling: self.sampling())
        }), ("token", {
            let router = try TokenTopKRouter(experts: try self.experts(4), topK: 2, seed: 11)
            return try Policy(engine: Self.engine, routing: .tokens(router), sampling: self.sampling())
        }), ("roles", {
            var c = MixtureOfRolesConfiguration(); c.routedCounts = [2, 2, 2]; c.topK = [1, 1, 1]; c.rank = 4
            let mixture = try MixtureOfRoles(configuration: c, model: Self.engine.decoder.config, seed: 1)
            return try Policy(engine: Self.engine, routing: .roles(mixture, RoleGate()), sampling: self.sampling())
        })]
    }

    /// Three episodes with prompts of different lengths, three steps each, taken one call per
    /// episode by one policy and as one batch per step by its twin: the same tokens, routes,
    /// prompts and records. Log-probabilities and token-routing weights may differ by the float
    /// rounding of the batched products (rows of one matrix product instead of three), which
    /// stays below 1e-4 here.
    func testABatchStepsAsOneCallPerEpisode() throws {
        let observations = ["You are in the kitchen.", "You see a fridge 1 and a countertop 2.", "Nothing happens."]
        for (name, make) in makers() {
            let alone = try make(), batched = try make()
            for t in 0..<3 {
                let requests = (0..<3).map { e in
                    StepRequest(episode: 10 + e, observation: observations[(t + e) % 3], goal: "cool a tomato \(e)")
                }
                let one = try requests.map { try alone.step(episode: $0.episode, observation: $0.observation, goal: $0.goal) }
                let many = try batched.step(requests)
                XCTAssertEqual(one.map(\.ids), many.map(\.ids), name)
                XCTAssertEqual(one.map(\.promptIDs), many.map(\.promptIDs), name)
                XCTAssertEqual(one.map(\.decision.route), many.map(\.decision.route), name)
                XCTAssertEqual(one.map(\.tokenExperts), many.map(\.tokenExperts), name)
                XCTAssertEqual(one.map(\.roles), many.map(\.roles), name)
                XCTAssertEqual(one.map(\.action), many.map(\.action), name)
                for (a, b) in zip(one, many) {
                    for (x, y) in zip(a.logProbabilities + a.decision.probabilities, b.logProbabilities + b.decision.probabilities) {
                        XCTAssertEqual(x, y, accuracy: 1e-4, name)
                    }
                }
            }
            XCTAssertEqual(alone.recordedStepCount, 9, name)
            XCTAssertEqual(batched.recordedStepCount, 9, name)
            for e in 10..<13 {
                XCTAssertEqual(alone.episode(e)?.steps.map(\.action), batched.episode(e)?.steps.map(\.action), name)
                XCTAssertEqual(alone.episode(e)?.experts, batched.episode(e)?.experts, name)
            }
        }
    }

    /// A batch of phase-routed steps encodes its new observations and goals in one forward
    /// (`TextEncoder.prefetch`): the cached states equal one text's own forward up to 1e-5 (the
    /// float rounding of batched products); repeated and empty texts are handled.
    func testPrefetchedEncodingsMatchOneTextAtATime() throws {
        let texts = ["You are in the kitchen.", "You see a fridge 1 and a countertop 2.", "cool a tomato", ""]
        let batched = TextEncoder(engine: Self.engine), alone = TextEncoder(engine: Self.engine)
        try batched.prefetch(texts + [texts[0]])
        for text in texts {
            let a = try alone.tokenStates(text), b = try batched.tokenStates(text)
            XCTAssertEqual(a.shape, b.shape, text)
            for (x, y) in zip(a.values, b.values) { XCTAssertEqual(x, y, accuracy: 1e-5, text) }
        }
    }

    /// Empty batches, an episode named twice, an ended episode and a rollout record without room
    /// for the whole batch are refused before any episode changes.
    func testABadBatchChangesNoEpisode() throws {
        let policy = try Policy(engine: Self.engine, experts: try experts(2), router: try FixedRouter(expert: 0, expertCount: 2),
                                sampling: sampling())
        func request(_ e: Int) -> StepRequest { StepRequest(episode: e, observation: "o", goal: "g") }
        _ = try policy.step([request(1), request(2)])
        try policy.endEpisode(1, reward: 0, success: false)
        XCTAssertThrowsError(try policy.step([])) { XCTAssertTrue("\($0)".contains("no steps"), "\($0)") }
        XCTAssertThrowsError(try policy.step([request(3), request(3)])) { XCTAssertTrue("\($0)".contains("twice"), "\($0)") }
        XCTAssertThrowsError(try policy.step([request(3), request(1)])) { XCTAssertTrue("\($0)".contains("has ended"), "\($0)") }
        policy.rolloutCapacity = 3
        XCTAssertThrowsError(try policy.step([request(2), request(3)])) { XCTAssertTrue("\($0)".contains("rollout record is full"), "\($0)") }
        XCTAssertNil(policy.episode(3))
        XCTAssertEqual(policy.episode(2)?.steps.count, 1)
        XCTAssertEqual(policy.recordedStepCount, 2)
        XCTAssertEqual(try policy.step([request(3)]).count, 1)
        XCTAssertEqual(policy.recordedStepCount, 3)
    }
}
