import XCTest
@testable import MoRAgent

/// Policy stepping: prompts, routing per step, traces, and the episode life cycle.
final class PolicyTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    func experts(_ k: Int) throws -> ExpertSet { try Fixtures.policyExperts(k, model: Self.engine.decoder.config) }

    func testTemplateRendering() {
        let t = PromptTemplate(historyLength: 2)
        let first = t.render(goal: "heat an egg", observation: "You are in the kitchen.", history: [])
        XCTAssertTrue(first.contains("Your task is to: heat an egg\nYour current observation is: You are in the kitchen."))
        let later = t.render(goal: "g", observation: "o4 {goal}", history: [("o1", "a1"), ("o2", "a2"), ("o3", "a3")])
        XCTAssertTrue(later.contains("You have taken 3 step(s). Your most recent 2 observations and actions:\n[Observation 2: 'o2', Action 2: 'a2']\n[Observation 3: 'o3', Action 3: 'a3']"), later)
        XCTAssertTrue(later.contains("at step 4 and your current observation is: o4 {goal}"), "values are not expanded again")
        XCTAssertFalse(later.contains("Observation 1:"))
        var chat = t; chat.chatML = true
        XCTAssertTrue(chat.render(goal: "g", observation: "o", history: []).hasPrefix("<|im_start|>user\n"))
        XCTAssertTrue(chat.render(goal: "g", observation: "o", history: []).hasSuffix("<|im_end|>\n<|im_start|>assistant\n"))
    }

    func testActionExtraction() {
        XCTAssertTrue(ActionExtractor.extract("<think>hm</think> <action> go to fridge 1 </action> tail") == ("go to fridge 1", true))
        XCTAssertTrue(ActionExtractor.extract("<action>a</action><action>b</action>") == ("a", true))
        let missing = ActionExtractor.extract("I will go to the sink basin 1 now please")
        XCTAssertFalse(missing.valid)
        XCTAssertEqual(missing.action, "to the sink basin 1 now please")
        XCTAssertFalse(ActionExtractor.extract("</action> then <action>x").valid)
    }

    /// A step routes, generates with the routed expert (the same tokens as generating directly
    /// with that route), and is recorded; switches and traces follow the decisions.
    func testStepsRouteGenerateAndTrace() throws {
        let set = try experts(2)
        var turn = 0
        let router = CallbackRouter(expertCount: 2) { _ in turn += 1; return turn % 3 == 0 ? [1, 0] : [0, 1] }
        var sampling = SamplingParameters(); sampling.temperature = 1; sampling.maxNewTokens = 8; sampling.seed = 4
        let policy = try Policy(engine: Self.engine, experts: set, router: router, sampling: sampling)
        let s1 = try policy.step(episode: 7, observation: "You are in the kitchen.", goal: "heat an egg")
        XCTAssertEqual(s1.decision.route, .expert(1))
        XCTAssertEqual(s1.ids.count, s1.logProbabilities.count)
        XCTAssertGreaterThan(s1.ids.count, 0)
        // The same prompt and route through the engine directly give the same tokens.
        var p = sampling; p.seed = sampling.seed &+ UInt64(7) &* 0x2545_F491_4F6C_DD1D
        let direct = try Self.engine.generate(prompts: [s1.promptIDs], parameters: p, experts: set, routes: [.expert(1)])[0]
        XCTAssertEqual(direct.ids, s1.ids)
        _ = try policy.step(episode: 7, observation: "You open the fridge.", goal: "heat an egg")
        let s3 = try policy.step(episode: 7, observation: "You see an egg.", goal: "heat an egg")
        XCTAssertEqual(s3.decision.route, .expert(0))
        XCTAssertEqual(try Self.engine.requireTokenizer().decode(s3.promptIDs).contains("[Observation 2: 'You open the fridge.'"), true)
        try policy.endEpisode(7, reward: 1, success: true)
        XCTAssertEqual(policy.episode(7)!.experts, [1, 1, 0])
        XCTAssertEqual(policy.episode(7)!.switches, 1)
        let trace = try JSONValue.parse(policy.routingTraceJSONLines())
        XCTAssertEqual(trace["switches"]?.intValue, 1)
        XCTAssertEqual(trace["experts"], .array([.number(1), .number(1), .number(0)]))
        XCTAssertEqual(trace["success"], .bool(true))
    }

    func testPhaseRoutedPolicyIsDeterministic() throws {
        var c = PhaseRouterConfiguration(); c.expertCount = 3; c.attentionDimension = 16; c.lstmHiddenSize = 8; c.mlpHiddenSize = 8
        func run() throws -> [StepResult] {
            let router = try PhaseRouter(configuration: c, modelHiddenSize: 64, seed: 2)
            let policy = try Policy(engine: Self.engine, experts: try experts(3), router: router)
            return try ["You are in the kitchen.", "You see a fridge 1.", "Nothing happens."].map {
                try policy.step(episode: 0, observation: $0, goal: "cool a tomato")
            }
        }
        let a = try run(), b = try run()
        XCTAssertEqual(a.map(\.ids), b.map(\.ids))
        XCTAssertEqual(a.map(\.decision), b.map(\.decision))
        XCTAssertEqual(a[0].decision.probabilities.count, 3)
        XCTAssertNotNil(a[0].decision.expert)
    }

    func testEpisodeLifeCycleErrors() throws {
        let policy = try Policy(engine: Self.engine, experts: try experts(2), router: try FixedRouter(expert: 0, expertCount: 2))
        XCTAssertThrowsError(try policy.endEpisode(1, reward: 1, success: true), "no step yet")
        _ = try policy.step(episode: 1, observation: "o", goal: "g")
        XCTAssertThrowsError(try policy.endEpisode(1, reward: .nan, success: true))
        XCTAssertThrowsError(try policy.endEpisode(1, reward: .infinity, success: true))
        try policy.endEpisode(1, reward: 0, success: false)
        XCTAssertThrowsError(try policy.endEpisode(1, reward: 0, success: false), "ended twice")
        XCTAssertThrowsError(try policy.step(episode: 1, observation: "o", goal: "g"), "step after the end")
        XCTAssertThrowsError(try Policy(engine: Self.engine, experts: try experts(2), router: try FixedRouter(expert: 0, expertCount: 3)))
        policy.clearEndedEpisodes()
        XCTAssertNil(policy.episode(1))
        XCTAssertEqual(policy.routingTraceJSONLines(), "")
    }

    /// A router or experts made for another model shape are refused at creation (they would read
    /// out of bounds), and a negative history length renders no history instead of trapping.
    func testMismatchedPartsAreRefused() throws {
        var c = PhaseRouterConfiguration(); c.expertCount = 2; c.attentionDimension = 8; c.lstmHiddenSize = 4; c.mlpHiddenSize = 4
        let wide = try PhaseRouter(configuration: c, modelHiddenSize: 96, seed: 1)
        XCTAssertThrowsError(try Policy(engine: Self.engine, experts: try experts(2), router: wide)) { XCTAssertTrue("\($0)".contains("width 96")) }
        XCTAssertThrowsError(try Policy(engine: Self.engine, experts: try experts(2), router: TrajectoryRouter(inner: wide)))
        let otherModel = try ModelConfig.load(folder: Fixtures.model("mistral-tiny"))
        let foreign = try ExpertSet(model: otherModel, count: 2, configuration: LoRAConfiguration(rank: 2, alpha: 2), seed: 0)
        XCTAssertThrowsError(try Policy(engine: Self.engine, experts: foreign, router: try FixedRouter(expert: 0, expertCount: 2)))
        var t = PromptTemplate(); t.historyLength = -3
        XCTAssertFalse(t.render(goal: "g", observation: "o", history: [("a", "b")]).contains("Observation 1"))
    }
}
