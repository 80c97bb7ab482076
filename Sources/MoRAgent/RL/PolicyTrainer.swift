#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Learns from a policy's recorded rollouts (DESIGN.md §6): advantages, then the clipped
/// surrogate on the action tokens plus PA-MoE's routing terms, backward through the frozen
/// decoder into the experts and (straight-through, PA-MoE §Router Training) the phase router,
/// then AdamW. One thread at a time, like its policy.
///
/// What is trained depends on the policy's routing: a step router's experts (and, for a phase
/// router or a trajectory router over one, the router too); a token router's experts and gates.
/// Mixture-of-Roles policies are trained by `MixtureOfRolesTrainer` (supervised), not here.
public final class PolicyTrainer {
    /// The policy whose rollouts and parameters this trains.
    public let policy: Policy
    /// The settings.
    public let configuration: PolicyTrainerConfiguration
    /// Updates done.
    public internal(set) var updateCount = 0
    /// Where every update's statistics are appended as one JSON line (nil: nowhere).
    public var metricsPath: String?
    /// The phase router being trained (directly routed or inside a trajectory router), if any.
    public let phaseRouter: PhaseRouter?
    /// PPO's critic, nil for the other estimators.
    public let valueHead: ValueHead?
    /// The optimiser over every trained tensor, in `parameterNames` order.
    public let optimizer: AdamW
    /// A name per optimiser parameter (checkpoints store moments under these).
    public let parameterNames: [String]
    let expertGradients: ExpertGradients
    let routerGradients: PhaseRouterGradients?
    let tokenRouter: TokenTopKRouter?
    let tokenRouterGradients: TokenRouterGradients?
    /// The buffers each half of a pass adds into (`BatchHalves`): the optimiser's own, then a
    /// second set summed into them before clipping.
    let halfGradients: [PassGradients]
    /// Draws the diversity loss's states.
    var generator: SeededGenerator
    /// Recent (prompt, action) pairs per expert for the diversity loss.
    var samples: ExpertSampleBuffer

    /// A trainer for `policy`. Throws for Mixture-of-Roles policies and bad settings.
    public init(policy: Policy, configuration: PolicyTrainerConfiguration = PolicyTrainerConfiguration()) throws {
        try configuration.validate()
        _ = try AdamW(parameters: [], configuration: configuration.optimizer)     // validates the hyper-parameters
        var phase: PhaseRouter?
        var token: TokenTopKRouter?
        switch policy.routing {
        case .step(let router, _):
            if let p = router.unwrapped as? PhaseRouter { phase = p }
            if let t = router.unwrapped as? TrajectoryRouter, let p = t.inner.unwrapped as? PhaseRouter { phase = p }
        case .tokens(let router): token = router
        case .roles:
            throw MoRAgentError.invalidArgument("RL updates train step- and token-routed policies; train Mixture-of-Roles policies with the SFT trainer")
        }
        self.policy = policy
        self.configuration = configuration
        expertGradients = ExpertGradients(experts: policy.experts)
        var pairs = expertGradients.parameterPairs(policy.experts)
        var names: [String] = []
        for (e, expert) in policy.experts.experts.enumerated() {
            for key in expert.modules.keys.sorted() {
                names += ["experts.\(e).layers.\(key.layer).\(key.kind.rawValue).lora_A", "experts.\(e).layers.\(key.layer).\(key.kind.rawValue).lora_B"]
            }
        }
        if configuration.trainRouter, let phase {
            let g = PhaseRouterGradients(router: phase)
            routerGradients = g
            pairs += g.parameterPairs(phase)
            names += phase.namedTensors.map { "router." + $0.name }
        } else {
            routerGradients = nil
        }
        if configuration.trainRouter, let token {
            let g = TokenRouterGradients(router: token)
            tokenRouterGradients = g
            pairs += g.parameterPairs(token)
            names += token.gates.indices.map { "token_router.gates.\($0)" }
        } else {
            tokenRouterGradients = nil
        }
        halfGradients = [PassGradients(experts: expertGradients, tokenRouter: tokenRouterGradients),
                         PassGradients(experts: ExpertGradients(experts: policy.experts), tokenRouter: tokenRouterGradients.map { _ in TokenRouterGradients(router: token!) })]
        if case .ppo = configuration.estimator {
            let head = ValueHead(hiddenSize: policy.engine.decoder.config.hiddenSize, seed: configuration.seed ^ 0x5641_4C55_4548_4541)
            valueHead = head
            pairs += head.parameterPairs
            names += ["value_head.weight", "value_head.bias"]
        } else {
            valueHead = nil
        }
        phaseRouter = phase
        tokenRouter = token
        parameterNames = names
        optimizer = try AdamW(parameters: pairs, configuration: configuration.optimizer)
        if configuration.routerLearningRateScale != 1 {
            optimizer.learningRateScales = names.map { $0.hasPrefix("router.") || $0.hasPrefix("token_router.") ? configuration.routerLearningRateScale : 1 }
        }
        generator = SeededGenerator(seed: configuration.seed)
        samples = ExpertSampleBuffer(experts: policy.experts.count, capacity: configuration.objective.diversity.bufferCapacity)
        if let phase { phase.temperature = phase.configuration.temperature(afterUpdates: 0) }
    }

    /// Where one half of a pass adds its gradients.
    struct PassGradients {
        let experts: ExpertGradients
        let tokenRouter: TokenRouterGradients?
        /// The tensors, in one fixed order.
        let tensors: [Tensor]

        init(experts: ExpertGradients, tokenRouter: TokenRouterGradients?) {
            self.experts = experts
            self.tokenRouter = tokenRouter
            tensors = experts.gradients.flatMap { modules in modules.keys.sorted().flatMap { [modules[$0]!.a, modules[$0]!.b] } } + (tokenRouter?.gates ?? [])
        }

        func zero() {
            experts.zero()
            if let tokenRouter { for t in tokenRouter.gates { t.pointer.update(repeating: 0, count: t.count) } }
        }
    }

    /// What one pass adds to the statistics, and the route weights' gradients it recorded.
    struct PassOutcome {
        var policyLoss = 0.0, referenceKL = 0.0, entropy = 0.0, approximateKL = 0.0, clipFraction = 0.0
        /// `dL/dw_k` per (episode, deciding step), one entry per sequence of the pass.
        var routeWeightGradients: [(key: [Int], gradient: [Double])] = []
    }

    /// One flattened step of the batch.
    struct Item {
        let episode: Int          // index into the batch's episodes
        let step: RolloutStep
        var advantage: Float
    }

    /// Learns from every ended episode the policy recorded, then releases them
    /// (`Policy.clearEndedEpisodes`). `progress(done, total)` is called after each forward/backward
    /// pass; throwing from it aborts the update.
    ///
    /// Throws, leaving parameters and recorded episodes untouched, when there is no ended episode,
    /// when a grouped estimator (GRPO, RLOO, GiGPO) meets a group with one episode, on non-finite
    /// advantages or gradients. (With several mini-batches, an abort after the first optimiser
    /// step keeps the steps taken and the episodes.)
    @discardableResult
    public func update(progress: ((Int, Int) throws -> Void)? = nil) throws -> UpdateStatistics {
        let t0 = Policy.now()
        let episodes = policy.endedRollouts()
        guard !episodes.isEmpty else { throw MoRAgentError.invalidArgument("no ended episode with recorded steps to learn from") }
        if configuration.estimator.isGrouped {
            var sizes: [Int: Int] = [:]
            for e in episodes { sizes[e.group, default: 0] += 1 }
            if let (g, _) = sizes.filter({ $0.value < 2 }).min(by: { $0.key < $1.key }) {
                throw MoRAgentError.invalidArgument("group \(g) has one episode: \(configuration.estimator.name) compares the rollouts of a group, so each needs at least two")
            }
        }
        var items: [Item] = []
        var rows: [StepRow] = []
        for (i, e) in episodes.enumerated() {
            for s in e.steps {
                items.append(Item(episode: i, step: s, advantage: 0))
                rows.append(StepRow(group: e.group, trajectory: e.episode, step: s.step, reward: s.reward + (s.step == e.steps.last!.step ? e.reward : 0),
                                    observation: s.observation, actionValid: s.actionValid))
            }
        }
        var stats = UpdateStatistics()
        let advantages = try computeAdvantages(rows, items: items, stats: &stats)
        guard advantages.allSatisfy(\.isFinite) else { throw MoRAgentError.invalidArgument("an advantage is not finite") }
        for i in items.indices { items[i].advantage = Float(advantages[i]) }
        (stats.advantageMean, stats.advantageStd) = AdvantageMath.meanStd(advantages)
        stats.temperature = Double(phaseRouter?.temperature ?? 0)

        let miniBatches = min(configuration.miniBatches, items.count)
        let ranges = (0..<miniBatches).map { m in (items.count * m / miniBatches)..<(items.count * (m + 1) / miniBatches) }
        let chunk = configuration.chunkSteps
        let totalPasses = configuration.epochs * ranges.reduce(0) { $0 + ($1.count + chunk - 1) / chunk }
        var passes = 0
        var lossWeights = 0.0
        for _ in 0..<configuration.epochs {
            for (m, range) in ranges.enumerated() {
                try step(Array(items[range]), episodes: episodes, stats: &stats, includeDiversity: m == 0 && lossWeights == 0) {
                    passes += 1
                    try progress?(passes, totalPasses)
                }
                lossWeights += 1
            }
        }
        stats.policyLoss /= lossWeights; stats.entropy /= lossWeights; stats.approximateKL /= lossWeights
        stats.clipFraction /= lossWeights; stats.referenceKL /= lossWeights
        stats.balanceLoss /= lossWeights; stats.switchLoss /= lossWeights
        stats.loss = stats.policyLoss + Double(configuration.objective.surrogate.klCoefficient) * stats.referenceKL + stats.balanceLoss
            + stats.switchLoss + stats.diversityLoss + stats.valueLoss

        // Rollout statistics and the diversity buffers (PA-MoE keeps each expert's recent pairs).
        describe(episodes, items: items, into: &stats)
        for item in items {
            if let k = item.step.decision.expert, !item.step.actionIDs.isEmpty {
                try samples.record(ExpertSample(prompt: item.step.promptIDs, action: item.step.actionIDs), expert: k)
            }
        }
        updateCount += 1
        stats.update = updateCount
        if let phase = phaseRouter { phase.temperature = phase.configuration.temperature(afterUpdates: updateCount) }
        policy.clearEndedEpisodes()
        stats.seconds = Policy.now() - t0
        if let path = metricsPath { try Self.append(stats.json.serialized + "\n", to: path) }
        return stats
    }

    /// The per-step advantages of `rows` under the configured estimator (PPO also fits the value
    /// head's gradient here, into its buffers).
    func computeAdvantages(_ rows: [StepRow], items: [Item], stats: inout UpdateStatistics) throws -> [Double] {
        switch configuration.estimator {
        case .grpo(let e): return try e.advantages(rows)
        case .rloo(let e): return try e.advantages(rows)
        case .gigpo(let e): return try e.advantages(rows)
        case .ppo(let e):
            let head = valueHead!
            let states = try pooledPromptStates(items.map(\.step.promptIDs))
            let values = head.values(states).map(Double.init)
            let (a, returns) = try e.advantages(rows, values: values)
            head.zeroGradients()
            stats.valueLoss = try head.regress(states: states, targets: returns.map(Float.init))
            let (m, sd) = AdvantageMath.meanStd(a)
            return a.map { ($0 - m) / (sd + 1e-8) }
        }
    }

    /// The frozen base's mean final hidden state over each prompt (the value head's input).
    func pooledPromptStates(_ prompts: [[Int32]]) throws -> [[Float]] {
        let d = policy.engine.decoder, c = d.config.hiddenSize
        var out: [[Float]] = []
        var start = 0
        while start < prompts.count {
            let batch = Array(prompts[start..<min(prompts.count, start + configuration.chunkSteps)])
            // No backward follows: keeping only the layer inputs is enough (and smallest).
            let tape = try d.trainingForward(batch, adapter: nil, activationMemory: .recompute)
            for r in tape.rowRanges { out.append(TextEncoder.meanRows(tape.hidden.pointer + r.lowerBound * c, rows: r.count, columns: c)) }
            start += batch.count
        }
        return out
    }

    /// One optimiser step on `items`: forward/backward in chunks, the routing terms through the
    /// router's backward, the diversity term when due, clipping, AdamW.
    func step(_ items: [Item], episodes: [RolloutEpisode], stats: inout UpdateStatistics, includeDiversity: Bool,
              afterPass: () throws -> Void) throws {
        for g in halfGradients { g.zero() }
        routerGradients?.zero()
        let totalTokens = items.reduce(0) { $0 + $1.step.actionIDs.count }
        let totalSequences = items.filter { !$0.step.actionIDs.isEmpty }.count
        guard totalTokens > 0 else { throw MoRAgentError.invalidArgument("the batch has no action tokens") }
        // dL/dw_k of each router decision (keyed by episode and the step that decided).
        var weightGradients: [[Int]: [Double]] = [:]
        var start = 0
        while start < items.count {
            let chunk = Array(items[start..<min(items.count, start + configuration.chunkSteps)]).filter { !$0.step.actionIDs.isEmpty }
            start += configuration.chunkSteps
            guard !chunk.isEmpty else { try afterPass(); continue }
            // Two halves of the chunk on two threads, each into its own buffers (`BatchHalves`).
            let halves = BatchHalves.split(chunk.map { $0.step.promptIDs.count + $0.step.actionIDs.count })
            let outcomes = try BatchHalves.run(halves.count) { h in
                try pass(halves[h].map { chunk[$0] }, totalTokens: totalTokens, totalSequences: totalSequences, into: halfGradients[h])
            }
            for o in outcomes {
                stats.policyLoss += o.policyLoss
                stats.referenceKL += o.referenceKL
                stats.entropy += o.entropy
                stats.approximateKL += o.approximateKL
                stats.clipFraction += o.clipFraction
                for (key, g) in o.routeWeightGradients {
                    var sum = weightGradients[key] ?? Array(repeating: 0, count: policy.experts.count)
                    for k in sum.indices { sum[k] += g[k] }
                    weightGradients[key] = sum
                }
            }
            try afterPass()
        }
        BatchHalves.addGradients(halfGradients[1].tensors, into: halfGradients[0].tensors)
        if let router = phaseRouter, let gradients = routerGradients {
            try routerBackward(router, gradients, items: items, weightGradients: weightGradients, stats: &stats)
        }
        let diversity = configuration.objective.diversity
        if includeDiversity, diversity.coefficient > 0, policy.experts.count >= 2, updateCount % diversity.interval == 0 {
            let states = samples.draw(diversity.samples, generator: &generator)
            if !states.isEmpty {
                stats.diversityLoss = try diversity.lossAndGradients(decoder: policy.engine.decoder, experts: policy.experts, states: states,
                                                                     activationMemory: configuration.activationMemory, addingGradientsTo: expertGradients)
            }
        }
        let norm = GradientClipping.clip(optimizer.parameters.map(\.gradient), maxNorm: configuration.maxGradientNorm)
        guard norm.isFinite else { throw MoRAgentError.invalidArgument("the gradient norm is \(norm); the step was skipped") }
        stats.gradientNorm = Double(norm)
        let factor = configuration.schedule.factor(step: optimizer.stepCount)
        stats.learningRate = Double(configuration.optimizer.learningRate * factor)
        try optimizer.step(learningRateScale: factor)
    }

    /// Forward and backward of one chunk of steps (each `prompt + action` one packed sequence),
    /// adding the gradients into `gradients`. Touches no other mutable state, so the two halves
    /// of a chunk may run at the same time.
    func pass(_ chunk: [Item], totalTokens: Int, totalSequences: Int, into gradients: PassGradients) throws -> PassOutcome {
        let d = policy.engine.decoder
        let sequences = chunk.map { $0.step.promptIDs + $0.step.actionIDs }
        let adapter: TrainableAdapter
        var mixture: ExpertMixtureAdapter?
        switch policy.routing {
        case .tokens(let router):
            let a = router.adapter()
            a.expertGradients = gradients.experts
            a.routerGradients = gradients.tokenRouter
            adapter = a
        default:
            let a = try ExpertMixtureAdapter(experts: policy.experts, routes: chunk.map(\.step.decision.route), tokenCounts: sequences.map(\.count))
            a.gradients = gradients.experts
            if routerGradients != nil { try a.recordRouteWeightGradients() }
            mixture = a
            adapter = a
        }
        let tape = try d.trainingForward(sequences, adapter: adapter, activationMemory: configuration.activationMemory)
        var rowIndices: [Int] = [], tokens: [Int32] = [], old: [Float] = [], advantages: [Float] = [], owners: [Int] = []
        for (s, item) in chunk.enumerated() {
            let first = tape.rowRanges[s].lowerBound + item.step.promptIDs.count - 1
            for (j, id) in item.step.actionIDs.enumerated() {
                rowIndices.append(first + j)
                tokens.append(id)
                old.append(item.step.oldLogProbabilities[j])
                advantages.append(item.advantage)
                owners.append(s)
            }
        }
        var reference: [Float]?
        let surrogate = configuration.objective.surrogate
        if surrogate.klCoefficient > 0 {
            // LoRA off is the reference policy (DESIGN.md §6).
            let base = try d.trainingForward(sequences, adapter: nil, activationMemory: .recompute)   // no backward follows
            reference = Self.logProbabilities(hidden: base.hidden, rows: rowIndices, tokens: tokens, lmHead: d.weights.lmHead)
        }
        let actions = ActionTokens(rows: rowIndices, tokens: tokens, oldLogProbabilities: old, advantages: advantages, sequences: owners,
                                   referenceLogProbabilities: reference)
        let (s, dHidden) = try surrogate.lossAndGradient(hidden: tape.hidden, lmHead: d.weights.lmHead, actions: actions)
        // The loss normalises over this chunk; rescale to the mini-batch's token (or sequence) mean.
        let share = surrogate.aggregation == .tokenMean ? Double(tokens.count) / Double(totalTokens)
            : Double(chunk.count) / Double(totalSequences)
        let tokenShare = Double(tokens.count) / Double(totalTokens)
        Kernels.scale(dHidden.pointer, by: Float(share), count: dHidden.count)
        var outcome = PassOutcome(policyLoss: share * s.policyLoss, referenceKL: share * s.referenceKL, entropy: tokenShare * s.entropy,
                                  approximateKL: tokenShare * s.approximateKL, clipFraction: tokenShare * s.clipFraction)
        try d.backward(tape, hiddenGradient: dHidden)
        if let recorded = mixture?.routeWeightGradients {
            for (s, item) in chunk.enumerated() {
                guard let decided = item.step.routerStep else { continue }
                outcome.routeWeightGradients.append(([item.episode, decided], recorded[s]))
            }
        }
        return outcome
    }

    /// The phase router's backward: `dL/dp_k = dL/dw_k` (straight-through) plus the balance and
    /// switching terms (PA-MoE Eq. 7-8, 11), through each deciding step's re-run forward.
    func routerBackward(_ router: PhaseRouter, _ gradients: PhaseRouterGradients, items: [Item],
                        weightGradients: [[Int]: [Double]], stats: inout UpdateStatistics) throws {
        let deciding = items.filter { $0.step.routerInputs != nil }
        guard !deciding.isEmpty else { return }
        let traces = deciding.map { router.tracedForward($0.step.routerInputs!) }
        let chosen = deciding.map { $0.step.decision.expert ?? -1 }
        var dp = deciding.map { item -> [Float] in
            (weightGradients[[item.episode, item.step.step]] ?? Array(repeating: 0, count: router.expertCount)).map(Float.init)
        }
        let objective = configuration.objective
        let balance = try objective.balance.lossAndGradients(probabilities: traces.map(\.probabilities), chosen: chosen)
        stats.balanceLoss += balance.loss
        for i in dp.indices { for k in dp[i].indices { dp[i][k] += balance.gradients[i][k] } }
        // Switching, per episode over its deciding steps in order.
        var byEpisode: [Int: [Int]] = [:]
        for (i, item) in deciding.enumerated() { byEpisode[item.episode, default: []].append(i) }
        let order = byEpisode.keys.sorted()
        let sequences = order.map { byEpisode[$0]!.sorted { deciding[$0].step.step < deciding[$1].step.step } }
        let switching = objective.switching.lossAndGradients(episodes: sequences.map { $0.map { (traces[$0].probabilities, chosen[$0]) } })
        stats.switchLoss += switching.loss
        for (e, members) in sequences.enumerated() {
            for (t, i) in members.enumerated() {
                for k in dp[i].indices { dp[i][k] += switching.gradients[e][t][k] }
            }
        }
        for (i, trace) in traces.enumerated() { router.backward(trace, probabilityGradient: dp[i], into: gradients) }
    }

    /// Episode-level statistics of the batch.
    func describe(_ episodes: [RolloutEpisode], items: [Item], into stats: inout UpdateStatistics) {
        let k = policy.experts.count
        stats.episodes = episodes.count
        stats.steps = items.count
        stats.tokens = items.reduce(0) { $0 + $1.step.actionIDs.count }
        stats.successRate = Double(episodes.filter(\.success).count) / Double(episodes.count)
        stats.meanReturn = episodes.reduce(0) { $0 + $1.reward + $1.steps.reduce(0) { $0 + $1.reward } } / Double(episodes.count)
        stats.meanLength = Double(items.count) / Double(episodes.count)
        stats.switchesPerEpisode = Double(episodes.reduce(0) { total, e in
            total + zip(e.steps, e.steps.dropFirst()).filter { $0.decision.route != $1.decision.route }.count
        }) / Double(episodes.count)
        var hard = [Double](repeating: 0, count: k), soft = [Double](repeating: 0, count: k)
        var entropy = [Double](repeating: 0, count: k), entropyTokens = [Int](repeating: 0, count: k)
        for item in items {
            let d = item.step.decision
            for (j, p) in d.probabilities.prefix(k).enumerated() { soft[j] += Double(p) / Double(items.count) }
            if let e = d.expert, e < k {
                hard[e] += 1 / Double(items.count)
                entropy[e] += item.step.entropies.reduce(0) { $0 + Double($1) } / log(2)
                entropyTokens[e] += item.step.entropies.count
            }
        }
        stats.expertUtilisation = hard
        stats.expertProbability = soft
        stats.expertEntropyBits = (0..<k).map { entropyTokens[$0] > 0 ? entropy[$0] / Double(entropyTokens[$0]) : nil }
    }

    /// `log p(token)` at each row of `hidden` under the LM head.
    static func logProbabilities(hidden: Tensor, rows: [Int], tokens: [Int32], lmHead: Tensor) -> [Float] {
        let c = hidden.rowLength, v = lmHead.rows
        let logits = Tensor(uninitialized: [1, v])
        return zip(rows, tokens).map { row, token in
            BLAS.linear(hidden.pointer + row * c, rows: 1, inFeatures: c, weight: lmHead.pointer, outFeatures: v, into: logits.pointer)
            let raw = logits.pointer[Int(token)]
            return raw - Kernels.softmax(logits.pointer, count: v)
        }
    }

    /// Appends `line` to `path` (created when missing).
    static func append(_ line: String, to path: String) throws {
        guard let f = fopen(path, "a") else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { fclose(f) }
        let bytes = Array(line.utf8)
        guard fwrite(bytes, 1, bytes.count, f) == bytes.count, fflush(f) == 0 else {
            throw MoRAgentError.io(path: path, reason: "short write")
        }
    }
}
