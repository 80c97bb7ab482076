import XCTest
@testable import MoRAgent

/// RL updates from recorded rollouts: the loss against hand-computed values, learning on an easy
/// task, the phase router's training, bad input, and checkpoints that resume bit for bit.
final class PolicyTrainerTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    func experts(_ k: Int) throws -> ExpertSet { try Fixtures.policyExperts(k, model: Self.engine.decoder.config) }

    /// A short prompt keeps the debug-build forwards cheap.
    static let template = PromptTemplate(firstStep: "{goal}: {observation} ->", laterStep: "{goal}: {history} {observation} ->",
                                         historyEntry: "{observation} {action}", historyLength: 1)

    func sampling(tokens: Int = 3, seed: UInt64 = 1) -> SamplingParameters {
        var s = SamplingParameters(); s.temperature = 1; s.maxNewTokens = tokens; s.seed = seed; s.stopStrings = []
        return s
    }

    func phaseRouter(_ k: Int, seed: UInt64 = 3) throws -> PhaseRouter {
        var c = PhaseRouterConfiguration()
        c.expertCount = k; c.attentionDimension = 8; c.attentionHeads = 2; c.lstmHiddenSize = 6; c.lstmLayers = 2
        c.historyLength = 2; c.mlpHiddenSize = 8; c.annealUpdates = 4
        return try PhaseRouter(configuration: c, modelHiddenSize: Self.engine.decoder.config.hiddenSize, seed: seed)
    }

    /// A policy over two fixture experts routed by a small phase router (default annealing),
    /// sampling two tokens per step: the objective and recompute tests share it.
    static func phaseRoutedPolicy() throws -> (policy: Policy, experts: ExpertSet, router: PhaseRouter) {
        let set = try Fixtures.policyExperts(2, model: engine.decoder.config)
        var rc = PhaseRouterConfiguration()
        rc.expertCount = 2; rc.attentionDimension = 8; rc.attentionHeads = 2; rc.lstmHiddenSize = 6; rc.lstmLayers = 2
        rc.historyLength = 2; rc.mlpHiddenSize = 8
        let router = try PhaseRouter(configuration: rc, modelHiddenSize: engine.decoder.config.hiddenSize, seed: 3)
        var sampling = SamplingParameters(); sampling.temperature = 1; sampling.maxNewTokens = 2; sampling.seed = 1; sampling.stopStrings = []
        return (try Policy(engine: engine, experts: set, router: router, sampling: sampling, template: template), set, router)
    }

    func snapshot(_ set: ExpertSet) -> [[Float]] {
        set.experts.flatMap { e in e.modules.keys.sorted().flatMap { [e.modules[$0]!.a.values, e.modules[$0]!.b.values] } }
    }

    /// Plays `groups` groups of `n` one-step episodes (ids from `firstEpisode`); reward 1 when
    /// the first generated token id is even.
    @discardableResult
    func play(_ policy: Policy, groups: Int, n: Int, firstEpisode: Int = 0, steps: Int = 1) throws -> Double {
        var wins = 0
        for g in 0..<groups {
            for j in 0..<n {
                let id = firstEpisode + g * n + j
                try policy.beginEpisode(id, group: firstEpisode + g)
                var won = false
                for t in 0..<steps {
                    let r = try policy.step(episode: id, observation: "room \(g) step \(t)", goal: "find the even token")
                    won = r.ids[0] % 2 == 0
                }
                wins += won ? 1 : 0
                try policy.endEpisode(id, reward: won ? 1 : 0, success: won)
            }
        }
        return Double(wins) / Double(groups * n)
    }

    /// On-policy (one mini-batch) the ratio is 1, so the clipped surrogate is `−mean(A)` over
    /// the action tokens; with GRPO's advantages for rewards (1, 0) in a group of two that is
    /// `∓1/√2` per token. The tolerance covers the difference between the sampling forward
    /// (KV cache, one token at a time) and the training forward (whole sequences): about 1e-6 in
    /// log-probabilities.
    func testOnPolicyLossEqualsMinusMeanAdvantage() throws {
        let set = try experts(1)
        let policy = try Policy(engine: Self.engine, experts: set, router: try FixedRouter(expert: 0, expertCount: 1), sampling: sampling(tokens: 3), template: Self.template)
        var c = PolicyTrainerConfiguration()
        var grpo = GRPOAdvantage(); grpo.invalidActionPenalty = 0
        c.estimator = .grpo(grpo)
        let trainer = try PolicyTrainer(policy: policy, configuration: c)
        try policy.beginEpisode(0, group: 0); try policy.beginEpisode(1, group: 0)
        let a = try policy.step(episode: 0, observation: "o", goal: "g")
        let b = try policy.step(episode: 1, observation: "o", goal: "g")
        try policy.endEpisode(0, reward: 1, success: true)
        try policy.endEpisode(1, reward: 0, success: false)
        let stats = try trainer.update()
        let tokens = Double(a.ids.count + b.ids.count)
        let expected = -(Double(a.ids.count) * 0.5.squareRoot() - Double(b.ids.count) * 0.5.squareRoot()) / tokens
        XCTAssertEqual(stats.policyLoss, expected, accuracy: 1e-4)
        XCTAssertEqual(stats.approximateKL, 0, accuracy: 1e-4)
        XCTAssertEqual(stats.clipFraction, 0)
        XCTAssertEqual(stats.successRate, 0.5)
        XCTAssertEqual(stats.episodes, 2)
        XCTAssertEqual(stats.expertUtilisation, [1])
        XCTAssertEqual(policy.recordedStepCount, 0, "the update releases what it consumed")
        XCTAssertNil(policy.episode(0))
    }

    /// A few GRPO updates raise the success rate of a fixed-seed policy on an easy task.
    func testUpdatesImproveSuccessOnAnEasyTask() throws {
        let set = try experts(1)
        let policy = try Policy(engine: Self.engine, experts: set, router: try FixedRouter(expert: 0, expertCount: 1), sampling: sampling(tokens: 1), template: Self.template)
        var c = PolicyTrainerConfiguration()
        c.estimator = .grpo(GRPOAdvantage())
        c.optimizer.learningRate = 2e-2
        let trainer = try PolicyTrainer(policy: policy, configuration: c)
        policy.recordsRollouts = false
        let before = try play(policy, groups: 16, n: 8, firstEpisode: 100_000)
        policy.clearEndedEpisodes()
        policy.recordsRollouts = true
        for u in 0..<6 {
            try play(policy, groups: 4, n: 8, firstEpisode: u * 1000)
            try trainer.update()
        }
        policy.recordsRollouts = false
        let after = try play(policy, groups: 16, n: 8, firstEpisode: 100_000)
        XCTAssertGreaterThan(after, before + 0.15, "success \(before) → \(after)")
    }

    /// With a phase router, an update trains the router too (straight-through plus the routing
    /// terms), anneals its temperature and reports routing statistics.
    func testPhaseRouterIsTrainedAndAnnealed() throws {
        let set = try experts(2)
        let router = try phaseRouter(2)
        let policy = try Policy(engine: Self.engine, experts: set, router: router, sampling: sampling(tokens: 2), template: Self.template)
        var c = PolicyTrainerConfiguration()
        c.optimizer.learningRate = 1e-2
        c.objective.diversity.interval = 1
        c.objective.diversity.samples = 2
        c.objective.diversity.margin = 100          // above every pair's KL, so the hinge is active
        let trainer = try PolicyTrainer(policy: policy, configuration: c)
        XCTAssertEqual(router.temperature, 2)
        let routerBefore = router.namedTensors.map(\.tensor.values)
        try play(policy, groups: 2, n: 2, steps: 3)
        let first = try trainer.update()
        XCTAssertEqual(first.temperature, 2)
        XCTAssertEqual(router.temperature, 2 - 1.5 / 4, accuracy: 1e-6)
        XCTAssertNotEqual(router.namedTensors.map(\.tensor.values), routerBefore)
        XCTAssertEqual(first.expertUtilisation.reduce(0, +), 1, accuracy: 1e-9)
        XCTAssertEqual(first.expertProbability.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertGreaterThan(first.balanceLoss, 0)
        XCTAssertEqual(first.diversityLoss, 0, "the sample buffers are empty before the first update")
        try play(policy, groups: 2, n: 2, firstEpisode: 10, steps: 3)
        let second = try trainer.update()
        XCTAssertGreaterThan(second.diversityLoss, 0, "the experts are closer than the margin")
        XCTAssertEqual(second.update, 2)
        let line = try JSONValue.parse(second.json.serialized)
        XCTAssertEqual(line["expert_utilisation"]?.arrayValue?.count, 2)
    }

    /// The trajectory router's decision is made at step 0 and trained through it.
    func testTrajectoryRoutingRecordsTheDecidingStep() throws {
        let policy = try Policy(engine: Self.engine, experts: try experts(2), router: TrajectoryRouter(inner: try phaseRouter(2)), sampling: sampling(tokens: 2), template: Self.template)
        let trainer = try PolicyTrainer(policy: policy)
        XCTAssertNotNil(trainer.phaseRouter)
        try play(policy, groups: 1, n: 2, steps: 3)
        let steps = policy.endedRollouts()[0].steps
        XCTAssertEqual(steps.map(\.routerStep), [0, 0, 0])
        XCTAssertNotNil(steps[0].routerInputs)
        XCTAssertNil(steps[1].routerInputs)
        XCTAssertEqual(try trainer.update().switchesPerEpisode, 0)
    }

    func testBadInputIsRejectedAndLosesNothing() throws {
        let set = try experts(1)
        let policy = try Policy(engine: Self.engine, experts: set, router: try FixedRouter(expert: 0, expertCount: 1), sampling: sampling(), template: Self.template)
        let trainer = try PolicyTrainer(policy: policy)
        XCTAssertThrowsError(try trainer.update()) { XCTAssertTrue("\($0)".contains("no ended episode"), "\($0)") }
        _ = try policy.step(episode: 0, observation: "o", goal: "g")
        XCTAssertThrowsError(try policy.endEpisode(0, reward: .nan, success: false))
        try policy.endEpisode(0, reward: 1, success: true)
        XCTAssertThrowsError(try policy.endEpisode(0, reward: 1, success: true)) { XCTAssertTrue("\($0)".contains("already ended")) }
        let before = snapshot(set)
        XCTAssertThrowsError(try trainer.update()) { XCTAssertTrue("\($0)".contains("group 0 has one episode"), "\($0)") }
        XCTAssertEqual(snapshot(set), before)
        XCTAssertEqual(policy.recordedStepCount, 1, "a rejected update keeps the episodes")
        XCTAssertThrowsError(try policy.beginEpisode(0, group: 3))
        XCTAssertThrowsError(try PolicyTrainer(policy: policy, configuration: { var c = PolicyTrainerConfiguration(); c.miniBatches = 0; return c }()))
        policy.rolloutCapacity = 2
        _ = try policy.step(episode: 1, observation: "o", goal: "g")
        XCTAssertThrowsError(try policy.step(episode: 1, observation: "o", goal: "g")) { XCTAssertTrue("\($0)".contains("rollout record is full")) }
    }

    /// Step rewards land on the step they were given for; bad ones are refused.
    func testStepRewardsAreRecordedPerStep() throws {
        let policy = try Policy(engine: Self.engine, experts: try experts(1), router: try FixedRouter(expert: 0, expertCount: 1), sampling: sampling(), template: Self.template)
        _ = try policy.step(episode: 0, observation: "o", goal: "g")
        try policy.addStepReward(0, reward: -0.5)
        try policy.addStepReward(0, reward: -0.25)
        XCTAssertThrowsError(try policy.addStepReward(0, reward: .nan))
        XCTAssertThrowsError(try policy.addStepReward(9, reward: 1))
        _ = try policy.step(episode: 0, observation: "p", goal: "g")
        try policy.endEpisode(0, reward: 2, success: true)
        XCTAssertThrowsError(try policy.addStepReward(0, reward: 1))
        XCTAssertEqual(policy.endedRollouts()[0].steps.map(\.reward), [-0.75, 0])
    }

    /// PPO: GAE over the value head's estimates; the head is trained with the experts.
    func testPPOTrainsTheValueHead() throws {
        let policy = try Policy(engine: Self.engine, experts: try experts(1), router: try FixedRouter(expert: 0, expertCount: 1), sampling: sampling(), template: Self.template)
        var c = PolicyTrainerConfiguration(); c.estimator = .ppo(GAEAdvantage()); c.optimizer.learningRate = 1e-2
        let trainer = try PolicyTrainer(policy: policy, configuration: c)
        let head = trainer.valueHead!.layer.weight.values
        _ = try policy.step(episode: 0, observation: "o", goal: "g")
        _ = try policy.step(episode: 0, observation: "p", goal: "g")
        try policy.endEpisode(0, reward: 1, success: true)
        let stats = try trainer.update()
        XCTAssertGreaterThan(stats.valueLoss, 0)
        XCTAssertNotEqual(trainer.valueHead!.layer.weight.values, head)
    }

    /// Save after one update, then (a) go on, (b) build everything afresh, load, and make the
    /// same next update: the experts, router and optimiser end bit-identical.
    func testCheckpointResumesBitIdentically() throws {
        let folder = Fixtures.temporaryFolder()
        func make() throws -> (Policy, PolicyTrainer, ExpertSet, PhaseRouter) {
            let set = try experts(2)
            let router = try phaseRouter(2)
            let policy = try Policy(engine: Self.engine, experts: set, router: router, sampling: sampling(tokens: 2), template: Self.template)
            var c = PolicyTrainerConfiguration()
            c.optimizer.learningRate = 1e-2; c.objective.diversity.interval = 1; c.objective.diversity.samples = 2
            return (policy, try PolicyTrainer(policy: policy, configuration: c), set, router)
        }
        let (p1, t1, e1, r1) = try make()
        try play(p1, groups: 2, n: 2, steps: 2)
        try t1.update()
        try PolicyBundle.save(t1, to: folder + "/bundle")
        try play(p1, groups: 2, n: 2, firstEpisode: 50, steps: 2)
        let expected = try t1.update()

        let (p2, t2, e2, r2) = try make()
        XCTAssertNotEqual(snapshot(e2), snapshot(e1))
        try PolicyBundle.load(from: folder + "/bundle", into: t2)
        try play(p2, groups: 2, n: 2, firstEpisode: 50, steps: 2)
        let resumed = try t2.update()
        XCTAssertEqual(snapshot(e2), snapshot(e1))
        XCTAssertEqual(r2.namedTensors.map(\.tensor.values), r1.namedTensors.map(\.tensor.values))
        XCTAssertEqual(t2.optimizer.moments.map(\.v.values), t1.optimizer.moments.map(\.v.values))
        XCTAssertEqual(resumed.json.serialized.replacingOccurrences(of: #""seconds":[^,}]*"#, with: "", options: .regularExpression),
                       expected.json.serialized.replacingOccurrences(of: #""seconds":[^,}]*"#, with: "", options: .regularExpression))
        // Saving again replaces the bundle atomically and leaves no staging folder behind.
        try PolicyBundle.save(t2, to: folder + "/bundle")
        XCTAssertEqual(try AtomicFolder.entries(folder), ["bundle"])
    }

    func testMalformedOrMismatchedBundlesAreRejectedWithoutChanges() throws {
        let folder = Fixtures.temporaryFolder()
        let policy = try Policy(engine: Self.engine, experts: try experts(2), router: try phaseRouter(2), sampling: sampling(), template: Self.template)
        let trainer = try PolicyTrainer(policy: policy)
        try PolicyBundle.save(trainer, to: folder + "/b")
        let other = try Policy(engine: Self.engine, experts: try experts(3), router: try phaseRouter(3), sampling: sampling(), template: Self.template)
        let otherTrainer = try PolicyTrainer(policy: other)
        let before = snapshot(other.experts)
        XCTAssertThrowsError(try PolicyBundle.load(from: folder + "/b", into: otherTrainer)) { XCTAssertTrue("\($0)".contains("experts"), "\($0)") }
        XCTAssertEqual(snapshot(other.experts), before)
        XCTAssertThrowsError(try PolicyBundle.load(from: folder + "/missing", into: trainer))
        // A truncated tensor file names itself.
        let path = folder + "/b/experts.safetensors"
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try PolicyBundle.load(from: folder + "/b", into: trainer)) { XCTAssertTrue("\($0)".contains("experts.safetensors"), "\($0)") }
    }

    /// Each chunk's two halves run on two threads (`BatchHalves`) or, with one thread, one after
    /// the other into the same buffers: the update's bytes are the same either way, for the
    /// phase router's straight-through path and for token routers' gates alike. (Every chunk
    /// here holds four steps; a pass over a single sequence runs on OpenBLAS's own threads, whose
    /// sums may round differently from one thread's.)
    func testUpdateIsTheSameOnOneThreadOrTwo() throws {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        func run(threads: Int, tokenRouting: Bool) throws -> [[Float]] {
            BLAS.threads = 1      // the same rollouts for both
            let policy: Policy, set: ExpertSet, trained: () -> [[Float]]
            if tokenRouting {
                set = try experts(3)
                let router = try TokenTopKRouter(experts: set, topK: 2, seed: 2)
                policy = try Policy(engine: Self.engine, routing: .tokens(router), sampling: sampling(tokens: 2), template: Self.template)
                trained = { router.gates.map(\.weight.values) }
            } else {
                let made = try Self.phaseRoutedPolicy()
                (policy, set) = (made.policy, made.experts)
                trained = { made.router.namedTensors.map(\.tensor.values) }
            }
            var c = PolicyTrainerConfiguration(); c.optimizer.learningRate = 1e-2; c.chunkSteps = 4
            let trainer = try PolicyTrainer(policy: policy, configuration: c)
            try play(policy, groups: 2, n: 4, steps: 2)
            let before = snapshot(set) + trained()
            BLAS.threads = threads
            try trainer.update()
            XCTAssertNotEqual(snapshot(set) + trained(), before, "the update changed the parameters")
            return snapshot(set) + trained()
        }
        for tokenRouting in [false, true] {
            let one = try run(threads: 1, tokenRouting: tokenRouting), two = try run(threads: 2, tokenRouting: tokenRouting)
            XCTAssertEqual(one, two, tokenRouting ? "token routing" : "phase routing")
        }
    }

    /// A token-routed policy trains its experts and gates.
    func testTokenRoutedPolicyTrainsItsGates() throws {
        let router = try TokenTopKRouter(experts: try experts(3), topK: 2, seed: 2)
        let policy = try Policy(engine: Self.engine, routing: .tokens(router), sampling: sampling(), template: Self.template)
        var c = PolicyTrainerConfiguration(); c.optimizer.learningRate = 1e-2
        let trainer = try PolicyTrainer(policy: policy, configuration: c)
        let gates = router.gates.map(\.weight.values)
        for (id, reward) in [(0, 1.0), (1, 0.0)] {
            try policy.beginEpisode(id, group: 0)
            _ = try policy.step(episode: id, observation: "o", goal: "g")
            try policy.endEpisode(id, reward: reward, success: reward > 0)
        }
        try trainer.update()
        XCTAssertNotEqual(router.gates.map(\.weight.values), gates)
    }
}
