import XCTest
@testable import MoRAgent

/// Mixture-of-Roles: the 5-5-4 layout, the role gate, role isolation and per-role routing.
final class MixtureOfRolesTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))
    static var config: ModelConfig { engine.decoder.config }
    let tokens: [Int32] = [23, 245, 73, 149, 182, 97, 454, 12, 300, 41]

    func randomizeB(_ mor: MixtureOfRoles, roles: Set<AgentRole>, sharedOnly: Bool = false) {
        var g = SeededGenerator(seed: 21)
        for role in roles {
            let range = sharedOnly ? mor.configuration.routedCounts[role.rawValue]...mor.configuration.routedCounts[role.rawValue]
                                   : 0...mor.configuration.routedCounts[role.rawValue]
            for i in range {
                let e = mor.loras.experts[mor.loraIndex(role: role, i)]
                for key in e.modules.keys.sorted() { let m = e.modules[key]!; for j in 0..<m.b.count { m.b.pointer[j] = (g.nextUnitFloat() * 2 - 1) * 0.2 } }
            }
        }
    }

    func forward(_ mor: MixtureOfRoles?, roles: [AgentRole]) throws -> (DecoderOutput, MixtureOfRolesAdapter?) {
        let adapter = mor?.adapter(rowRoles: roles)
        let out = try Self.engine.decoder.forward([DecoderSequence(tokens: tokens, cache: KVCache(config: Self.config))], logits: .all, adapter: adapter)
        return (out, adapter)
    }

    func rowDifference(_ a: DecoderOutput, _ b: DecoderOutput, row: Int) -> Float {
        (0..<Self.config.vocabularySize).map { abs(a.logits![row, $0] - b.logits![row, $0]) }.max()!
    }

    func testPaperLayoutAndFreshAdapterIsTheBase() throws {
        let mor = try MixtureOfRoles(configuration: MixtureOfRolesConfiguration(), model: Self.config, seed: 1)
        XCTAssertEqual(mor.loras.count, 14, "5 + 5 + 4 LoRAs")
        XCTAssertEqual(mor.loras.experts.map(\.name).filter { $0.hasSuffix("_shared") }.count, 3)
        let module = mor.loras.experts[0].modules[LoRAModuleKey(layer: 1, kind: .down)]!
        XCTAssertEqual(module.rank, 16)
        XCTAssertEqual(module.scale, 1, "no alpha/r scaling, as the released code")
        XCTAssertEqual(mor.loras.experts[0].modules.count, 7 * Self.config.layerCount)
        XCTAssertEqual(mor.routers.map { $0[LoRAModuleKey(layer: 0, kind: .q)]!.outFeatures }, [4, 4, 3])
        let roles = tokens.indices.map { AgentRole(rawValue: $0 % 3)! }
        XCTAssertEqual(try forward(mor, roles: roles).0.logits!.values, try forward(nil, roles: roles).0.logits!.values)
    }

    /// A token is processed by its role's group only: LoRAs of the executor change nothing for
    /// tokens that are all reasoner, and do change executor tokens.
    func testRolesAreIsolated() throws {
        let mor = try MixtureOfRoles(configuration: MixtureOfRolesConfiguration(), model: Self.config, seed: 2)
        randomizeB(mor, roles: [.executor])
        let base = try forward(nil, roles: []).0
        let allReasoner = try forward(mor, roles: Array(repeating: .reasoner, count: tokens.count)).0
        XCTAssertEqual(allReasoner.logits!.values, base.logits!.values)
        let split = (0..<tokens.count).map { $0 < 5 ? AgentRole.reasoner : .executor }
        let mixed = try forward(mor, roles: split).0
        for row in 0..<5 { XCTAssertEqual(rowDifference(mixed, base, row: row), 0, "causal: earlier reasoner rows see no executor token") }
        for row in 5..<tokens.count { XCTAssertGreaterThan(rowDifference(mixed, base, row: row), 1e-3) }
    }

    func testRoutingKeepsTopKOfTheRoleAndRenormalises() throws {
        let mor = try MixtureOfRoles(configuration: MixtureOfRolesConfiguration(), model: Self.config, seed: 3)
        let roles: [AgentRole] = tokens.indices.map { AgentRole(rawValue: $0 % 3)! }
        let (_, adapter) = try forward(mor, roles: roles)
        let routing = adapter!.routing[LoRAModuleKey(layer: 1, kind: .up)]!
        for (row, chosen) in routing.enumerated() {
            let role = roles[row]
            XCTAssertEqual(chosen.count, [3, 3, 2][role.rawValue])
            XCTAssertTrue(chosen.allSatisfy { $0.lora < [4, 4, 3][role.rawValue] })
            XCTAssertEqual(chosen.map(\.weight).reduce(0, +), 1, accuracy: 1e-5)
        }
        XCTAssertEqual(adapter!.routing.count, 7 * Self.config.layerCount)
    }

    /// With the shared gate on, the shared LoRA's delta is scaled by sigmoid(w·x) in (0, 1):
    /// the output moves less than with weight 1, in the same direction.
    func testSharedGateScalesTheSharedLoRA() throws {
        var c = MixtureOfRolesConfiguration()
        let plain = try MixtureOfRoles(configuration: c, model: Self.config, seed: 4)
        c.sharedGate = true
        let gated = try MixtureOfRoles(configuration: c, model: Self.config, seed: 4)
        randomizeB(plain, roles: [.reasoner], sharedOnly: true)
        randomizeB(gated, roles: [.reasoner], sharedOnly: true)
        for (p, q) in zip(plain.loras.experts, gated.loras.experts) {
            for key in p.modules.keys { q.modules[key]!.a.pointer.update(from: p.modules[key]!.a.pointer, count: p.modules[key]!.a.count) }
        }
        let roles = Array(repeating: AgentRole.reasoner, count: tokens.count)
        let base = try forward(nil, roles: []).0, a = try forward(plain, roles: roles).0, b = try forward(gated, roles: roles).0
        XCTAssertGreaterThan(rowDifference(a, base, row: 0), rowDifference(b, base, row: 0))
        XCTAssertGreaterThan(rowDifference(b, base, row: 0), 0)
    }

    func testRoleGateFollowsHandOvers() throws {
        let gate = RoleGate()
        XCTAssertEqual(gate.role(after: "Thought: I will call get_weather."), .reasoner)
        XCTAssertEqual(gate.role(after: "Thought: x\nNext Role: Executor\n"), .executor)
        XCTAssertEqual(gate.role(after: "Next Role: Executor\nAPI: f\nNext Role: Summarizer"), .summarizer)
        let t = try Self.engine.requireTokenizer()
        let ids = t.encode("Thought: call it.\nNext Role: Executor\nAPI: get_weather")
        let roles = gate.roles(of: ids, tokenizer: t)
        let firstExecutor = try XCTUnwrap(roles.firstIndex(of: .executor))
        XCTAssertTrue(t.decode(Array(ids[..<firstExecutor])).hasSuffix("Next Role: Executor"), "the marker's tokens stay with the reasoner")
        XCTAssertTrue(roles[firstExecutor...].allSatisfy { $0 == .executor })
        var custom = RoleGate(); custom.markers = [("<exec>", .executor)]
        XCTAssertEqual(custom.role(after: "a <exec> b"), .executor)
    }

    func testGenerationAndBadMasks() throws {
        let mor = try MixtureOfRoles(configuration: MixtureOfRolesConfiguration(), model: Self.config, seed: 5)
        randomizeB(mor, roles: Set(AgentRole.allCases))
        var p = SamplingParameters(); p.maxNewTokens = 6; p.stopTokenIDs = []
        let prompt = try Self.engine.requireTokenizer().encode("Thought: done.\nNext Role: Summarizer\n")
        let a = try mor.generate(engine: Self.engine, prompts: [prompt], parameters: p)[0]
        XCTAssertEqual(a.ids.count, 6)
        XCTAssertNotEqual(a.ids, try Self.engine.generate(prompts: [prompt], parameters: p)[0].ids, "the adapter is applied")
        let cache = KVCache(config: Self.config)
        XCTAssertThrowsError(try Self.engine.decoder.forward([DecoderSequence(tokens: tokens, cache: cache)], adapter: mor.adapter(rowRoles: [.reasoner])))
        XCTAssertEqual(cache.length, 0)
        var bad = MixtureOfRolesConfiguration(); bad.topK = [5, 3, 2]
        XCTAssertThrowsError(try MixtureOfRoles(configuration: bad, model: Self.config, seed: 0))
    }
}
