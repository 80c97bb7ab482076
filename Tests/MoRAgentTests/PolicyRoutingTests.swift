import Foundation
import XCTest
@testable import MoRAgent

/// Policies routed per token (`TokenTopKRouter`) and by Mixture-of-Roles inside a step.
final class PolicyRoutingTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    /// K experts with random non-zero B (so routing changes the output).
    func experts(_ k: Int) throws -> ExpertSet { try Fixtures.policyExperts(k, model: Self.engine.decoder.config) }

    func sampling(_ n: Int) -> SamplingParameters {
        var s = SamplingParameters(); s.temperature = 1; s.maxNewTokens = n; s.seed = 3
        return s
    }

    func tokenPolicy(topK: Int, perLayer: Bool) throws -> Policy {
        let router = try TokenTopKRouter(experts: try experts(4), topK: topK, perLayer: perLayer, seed: 11)
        return try Policy(engine: Self.engine, routing: .tokens(router), sampling: sampling(16))
    }

    func testTokenRoutingShapesDeterminismAndVariation() throws {
        let a = try tokenPolicy(topK: 2, perLayer: true).step(episode: 1, observation: "You are in the kitchen.", goal: "heat an egg")
        let b = try tokenPolicy(topK: 2, perLayer: true).step(episode: 1, observation: "You are in the kitchen.", goal: "heat an egg")
        XCTAssertEqual(a.ids, b.ids)
        XCTAssertEqual(a.tokenExperts!, b.tokenExperts!)
        XCTAssertEqual(a.decision, b.decision)
        XCTAssertNil(a.roles)
        let chosen = try XCTUnwrap(a.tokenExperts)
        XCTAssertEqual(chosen.count, a.ids.count)
        XCTAssertTrue(chosen.allSatisfy { $0.count == 2 && Set($0).count == 2 && $0.allSatisfy { (0..<4).contains($0) } })
        XCTAssertEqual(a.decision.probabilities.count, 4)
        XCTAssertEqual(a.decision.probabilities.reduce(0, +), 1, accuracy: 1e-4)
        // Routing varies per token.
        XCTAssertGreaterThan(Set(chosen.map { $0[0] }).count, 1, "\(chosen)")
        // The route is the most used expert.
        let uses = (0..<4).map { e in chosen.filter { $0.contains(e) }.count }
        XCTAssertEqual(uses[a.decision.expert!], uses.max())
    }

    /// Token routing changes the tokens (vs. the base model), and a shared (layer-0) gate works.
    func testTokenRoutingSharedGateAndTrace() throws {
        let policy = try tokenPolicy(topK: 1, perLayer: false)
        let s = try policy.step(episode: 2, observation: "You see a fridge.", goal: "cool a tomato")
        XCTAssertTrue(s.tokenExperts!.allSatisfy { $0.count == 1 })
        XCTAssertEqual(s.decision.probabilities.reduce(0, +), 1, accuracy: 1e-4)
        var p = sampling(16); p.seed = 3 &+ UInt64(2) &* 0x2545_F491_4F6C_DD1D
        let base = try Self.engine.generate(prompts: [s.promptIDs], parameters: p)[0]
        XCTAssertNotEqual(base.ids, s.ids, "the experts should change the continuation")
        _ = try policy.step(episode: 2, observation: "The fridge is closed.", goal: "cool a tomato")
        try policy.endEpisode(2, reward: 1, success: true)
        let trace = try JSONValue.parse(policy.routingTraceJSONLines())
        XCTAssertEqual(trace["experts"]?.arrayValue?.count, 2)
        XCTAssertEqual(trace["experts"]?.arrayValue?.first?.intValue, s.decision.expert)
        XCTAssertNil(policy.router)
    }

    func testTokenRouterOfAnotherModelIsRefused() throws {
        var c = Self.engine.decoder.config
        c.layerCount += 1
        let set = try ExpertSet(model: c, count: 2, configuration: LoRAConfiguration(rank: 2, alpha: 2), seed: 1)
        let router = try TokenTopKRouter(experts: set, topK: 1, seed: 1)
        XCTAssertThrowsError(try Policy(engine: Self.engine, routing: .tokens(router)))
    }

    func mor(seed: UInt64) throws -> MixtureOfRoles {
        var c = MixtureOfRolesConfiguration()
        c.routedCounts = [2, 2, 2]; c.topK = [1, 1, 1]; c.rank = 4
        return try MixtureOfRoles(configuration: c, model: Self.engine.decoder.config, seed: seed)
    }

    /// The prompt ends with a hand-over marker: every generated token is the executor's.
    func testRolesFollowThePromptsMarker() throws {
        var template = PromptTemplate(); template.firstStep = "Task: {goal}\n{observation}"
        let policy = try Policy(engine: Self.engine, routing: .roles(try mor(seed: 1), RoleGate()), sampling: sampling(8), template: template)
        let s = try policy.step(episode: 0, observation: "Thought: call the tool. Next Role: Executor", goal: "g")
        let roles = try XCTUnwrap(s.roles)
        XCTAssertEqual(roles.count, s.ids.count)
        XCTAssertTrue(roles.allSatisfy { $0 == .executor }, "\(roles)")
        XCTAssertEqual(s.decision.route, .expert(AgentRole.executor.rawValue))
        XCTAssertEqual(s.decision.probabilities, [0, 1, 0])
        XCTAssertNil(s.tokenExperts)
        // Without a marker the reasoner writes.
        let r = try policy.step(episode: 1, observation: "Thought: look around.", goal: "g")
        XCTAssertTrue(r.roles!.allSatisfy { $0 == .reasoner })
        try policy.endEpisode(1, reward: 0, success: false)
        XCTAssertEqual(policy.episode(1)!.experts, [0])
    }

    /// A marker written by the model inside one step hands over to the next role. With B = 0
    /// (PEFT init) the Mixture-of-Roles leaves the base model's tokens unchanged whatever the
    /// roles, so a marker taken from a first run's text is generated again by the second.
    func testRoleHandOverInsideOneStep() throws {
        var template = PromptTemplate(); template.firstStep = "Task: {goal}\n{observation}"
        let observation = "Thought: call the tool. Next Role: Executor"
        let mixture = try mor(seed: 2)
        var p = sampling(12); p.temperature = 0
        let first = try Policy(engine: Self.engine, routing: .roles(mixture, RoleGate()), sampling: p, template: template)
            .step(episode: 0, observation: observation, goal: "g")
        let tokenizer = try Self.engine.requireTokenizer()
        let prompt = tokenizer.decode(first.promptIDs)
        // A marker: the text of two generated tokens that the prompt does not contain.
        var marker: String?, end = 0
        for i in 2..<(first.ids.count - 2) {
            let text = tokenizer.decode(Array(first.ids[i...(i + 1)]))
            let upTo = tokenizer.decode(Array(first.ids[..<(i + 2)]))
            if text.trimmingCharacters(in: .whitespaces).count >= 2, !text.contains("\u{FFFD}"), !prompt.contains(text), upTo.hasSuffix(text),
               upTo.components(separatedBy: text).count == 2 { marker = text; end = i + 2; break }
        }
        let m = try XCTUnwrap(marker, "no usable marker in \(first.response)")
        var gate = RoleGate()
        gate.markers = [("Next Role: Executor", .executor), (m, .summarizer)]
        let policy = try Policy(engine: Self.engine, routing: .roles(mixture, gate), sampling: p, template: template)
        let s = try policy.step(episode: 0, observation: observation, goal: "g")
        XCTAssertEqual(s.ids, first.ids)
        let roles = try XCTUnwrap(s.roles)
        XCTAssertEqual(Array(roles[..<end]), Array(repeating: .executor, count: end), "\(roles)")
        XCTAssertEqual(Array(roles[end...]), Array(repeating: .summarizer, count: roles.count - end), "\(roles)")
    }
}
