#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Settings of a Mixture-of-Roles SFT run (`moragent train sft --config FILE`).
public struct MixtureOfRolesSFTConfiguration: Sendable {
    /// Hugging Face model folder (the frozen base).
    public var model: String
    /// Training conversations (JSON lines).
    public var trainData: String
    /// Held-out conversations, evaluated after every epoch.
    public var validationData: String?
    /// Where the adapter (`mixture_of_roles.safetensors`) and metrics (`metrics.jsonl`) go.
    public var output: String
    /// Passes over the training data (4 in the paper).
    public var epochs = 4
    /// Conversations per step.
    public var batchSize = 4
    /// Tokens kept per conversation.
    public var maxLength = 512
    /// AdamW settings (the paper trained at lr 5e-5).
    public var optimizer = AdamW.Configuration()
    /// Warmup steps before the decay.
    public var warmupSteps = 0
    /// Decay after warmup.
    public var decay = LearningRateSchedule.Decay.cosine
    /// Global gradient-norm limit (0: none).
    public var clipNorm: Float = 1
    /// Seed of the adapter's initialisation and of the data order.
    public var seed: UInt64 = 0
    /// The adapter's shape (the paper's 5-5-4 by default).
    public var mixture = MixtureOfRolesConfiguration()
    /// The loss: cross-entropy plus the load-balancing (1e-3) and orthogonality (1e-4) terms.
    public var objective = MixtureOfRolesObjective()
    /// Steps the learning-rate schedule spans when a host calls `trainStep` itself (`train`
    /// computes it from the data); nil: 1, a constant rate after warm-up.
    public var plannedSteps: Int?
    /// What each step's forward keeps for its backward: `.recompute` (JSON
    /// `"recompute_activations": true`) keeps only every layer's input and recomputes the rest in
    /// the backward, for about one more forward per step, with the same update (DESIGN.md §5).
    public var activationMemory = ActivationMemory.store

    /// A configuration with defaults beyond the required paths.
    public init(model: String, trainData: String, output: String) {
        self.model = model
        self.trainData = trainData
        self.output = output
        optimizer.learningRate = 5e-5
    }

    /// Reads a JSON configuration file; unknown keys are errors (a typo must not silently fall
    /// back to a default). Relative paths are taken relative to the file's folder.
    public static func load(path: String) throws -> MixtureOfRolesSFTConfiguration {
        let folder = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        return try parse(readJSONFile(path), location: path, relativeTo: folder)
    }

    /// The settings of a JSON object as `load` reads it. With `relativeTo` (a config file's
    /// folder) "model", "train_data" and "output" are required and resolved against it; without
    /// (a host that feeds batches itself through the C ABI) they are optional.
    public static func parse(_ json: JSONValue, location: String, relativeTo folder: String?) throws -> MixtureOfRolesSFTConfiguration {
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: location, reason: reason) }
        guard let members = json.objectValue else { throw bad("not a JSON object") }
        func resolve(_ p: String) -> String { p.hasPrefix("/") || folder == nil ? p : joinPath(folder!, p) }
        let paths = (json["model"]?.stringValue, json["train_data"]?.stringValue, json["output"]?.stringValue)
        if folder != nil, paths.0 == nil || paths.1 == nil || paths.2 == nil {
            throw bad("\"model\", \"train_data\" and \"output\" are required")
        }
        var c = MixtureOfRolesSFTConfiguration(model: resolve(paths.0 ?? ""), trainData: resolve(paths.1 ?? ""), output: resolve(paths.2 ?? ""))
        func int(_ v: JSONValue, _ k: String) throws -> Int { guard let i = v.intValue, i >= 0 else { throw bad("\"\(k)\" must be a non-negative integer") }; return i }
        func float(_ v: JSONValue, _ k: String) throws -> Float { guard let d = v.doubleValue, d.isFinite else { throw bad("\"\(k)\" must be a number") }; return Float(d) }
        for (key, value) in members {
            switch key {
            case "model", "train_data", "output": break
            case "validation_data": c.validationData = value.stringValue.map(resolve)
            case "epochs": c.epochs = try int(value, key)
            case "batch_size": c.batchSize = max(1, try int(value, key))
            case "max_length": c.maxLength = max(2, try int(value, key))
            case "learning_rate": c.optimizer.learningRate = try float(value, key)
            case "weight_decay": c.optimizer.weightDecay = try float(value, key)
            case "warmup_steps": c.warmupSteps = try int(value, key)
            case "schedule":
                guard let d = value.stringValue.flatMap(LearningRateSchedule.Decay.init(rawValue:)) else { throw bad("\"schedule\" is constant, linear or cosine") }
                c.decay = d
            case "clip_norm": c.clipNorm = try float(value, key)
            case "planned_steps": c.plannedSteps = max(1, try int(value, key))
            case "seed": c.seed = UInt64(try int(value, key))
            case "load_balancing_coefficient": c.objective.loadBalancing.coefficient = try float(value, key)
            case "orthogonality_coefficient": c.objective.orthogonality.coefficient = try float(value, key)
            case "routed_counts": c.mixture.routedCounts = try (value.arrayValue ?? []).map { try int($0, key) }
            case "top_k": c.mixture.topK = try (value.arrayValue ?? []).map { try int($0, key) }
            case "rank": c.mixture.rank = try int(value, key)
            case "scale": c.mixture.scale = try float(value, key)
            case "shared_gate": c.mixture.sharedGate = value.boolValue ?? false
            case "recompute_activations":
                guard let on = value.boolValue else { throw bad("\"recompute_activations\" is true or false") }
                c.activationMemory = on ? .recompute : .store
            case "target_modules":
                guard let names = value.arrayValue?.compactMap(\.stringValue), let kinds = Optional(names.compactMap(ProjectionKind.init(rawValue:))),
                      kinds.count == names.count, !kinds.isEmpty else { throw bad("\"target_modules\" lists q_proj … down_proj") }
                c.mixture.targetModules = Set(kinds)
            default: throw bad("unknown key \"\(key)\"")
            }
        }
        return c
    }
}

/// One SFT step's numbers (also one line of `metrics.jsonl`).
public struct SFTStepMetrics: Equatable, Sendable {
    /// Update index (1-based).
    public var step: Int
    /// `L = L_CE + α₁·L_aux + α₂·L_orth` (Eq. 8).
    public var loss: Double
    /// Cross-entropy over the batch's agent tokens.
    public var crossEntropy: Double
    /// Load-balancing loss `L_aux` (unweighted).
    public var loadBalancing: Double
    /// Orthogonality loss `L_orth` (unweighted).
    public var orthogonality: Double
    /// Global gradient norm before clipping.
    public var gradientNorm: Double
    /// Learning rate used.
    public var learningRate: Double
    /// Target tokens in the batch.
    public var tokens: Int

    /// As a JSON object.
    public var json: JSONValue {
        .object([("step", .number(Double(step))), ("loss", .number(loss)), ("cross_entropy", .number(crossEntropy)),
                 ("load_balancing", .number(loadBalancing)), ("orthogonality", .number(orthogonality)),
                 ("grad_norm", .number(gradientNorm)), ("lr", .number(learningRate)), ("tokens", .number(Double(tokens)))])
    }
}

/// Supervised fine-tuning of a Mixture-of-Roles adapter on role-annotated conversations
/// (MoRAgent §3, Eq. 8): the role gate takes the labels, the loss is cross-entropy on agent
/// tokens plus the load-balancing and orthogonality terms, the base stays frozen.
public final class MixtureOfRolesTrainer {
    /// Settings.
    public let configuration: MixtureOfRolesSFTConfiguration
    /// The frozen base and tokenizer.
    public let engine: Engine
    /// The adapter being trained.
    public let mixture: MixtureOfRoles
    /// Its gradients.
    public let gradients: MixtureOfRolesGradients
    /// The optimiser.
    public let optimizer: AdamW
    /// Steps the schedule spans (set by `train`, or by the caller of `trainStep`).
    public var plannedSteps: Int = 1
    private var generator: SeededGenerator
    /// The second half's gradients (`BatchHalves`), added into `gradients` after the backward.
    private let halfGradients: MixtureOfRolesGradients

    /// A trainer with a fresh adapter (PEFT init: the model starts as the base exactly).
    public init(configuration: MixtureOfRolesSFTConfiguration, engine: Engine) throws {
        self.configuration = configuration
        self.engine = engine
        _ = try engine.requireTokenizer()
        mixture = try MixtureOfRoles(configuration: configuration.mixture, model: engine.decoder.config, seed: configuration.seed)
        gradients = MixtureOfRolesGradients(mor: mixture)
        halfGradients = MixtureOfRolesGradients(mor: mixture)
        optimizer = try AdamW(parameters: gradients.parameterPairs(mixture), configuration: configuration.optimizer)
        generator = SeededGenerator(seed: configuration.seed &+ 1)
        plannedSteps = configuration.plannedSteps ?? 1
    }

    /// Loss and gradients of a batch, without an update (`evaluate` and `trainStep` share it).
    ///
    /// The batch runs as two halves of about equal tokens on two threads (`BatchHalves`, as the
    /// RL and base-model trainers do): both forwards first, then their load-balancing counts are
    /// combined (`MixtureOfRolesAdapter.combineLoadBalancing`, so the term's value and gradient
    /// are the whole batch's, as MoRAgent defines `L_aux`), then both backwards, each into its own
    /// gradients, summed in a fixed order. The cross-entropy of each half is divided by the whole
    /// batch's token count, so the sum is the batch mean.
    func lossAndGradients(_ batch: [RoleAnnotatedConversation], computeGradients: Bool) throws -> (ce: Double, aux: Double, tokens: Int) {
        guard !batch.isEmpty else { throw MoRAgentError.invalidArgument("an empty batch") }
        let tokenizer = try engine.requireTokenizer()
        let encoded = batch.map { $0.encode(tokenizer: tokenizer, maxLength: configuration.maxLength) }
        let shards = BatchHalves.split(encoded.map(\.ids.count))
        let sequences = shards.map { $0.map { encoded[$0].ids } }
        let targets = try shards.indices.map { try TokenCrossEntropy.nextTokenTargets(sequences[$0], trainOn: shards[$0].map { encoded[$0].targets }) }
        let count = targets.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
        guard count > 0 else { throw MoRAgentError.invalidArgument("the batch has no agent tokens to train on") }
        let shardGradients = [gradients, halfGradients]
        let adapters = shards.indices.map { i in
            let adapter = mixture.adapter(rowRoles: shards[i].flatMap { encoded[$0].roles })
            adapter.loadBalancing = configuration.objective.loadBalancing
            if computeGradients { adapter.gradients = shardGradients[i] }
            return adapter
        }
        let decoder = engine.decoder
        let forwards = try BatchHalves.run(shards.count) { i in
            let tape = try decoder.trainingForward(sequences[i], adapter: adapters[i], activationMemory: configuration.activationMemory)
            let (ce, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets[i], lmHead: decoder.weights.lmHead,
                                                                         normalizer: Double(count))
            return (tape: tape, ce: ce, hiddenGradient: dHidden)
        }
        MixtureOfRolesAdapter.combineLoadBalancing(adapters)
        if computeGradients {
            if shards.count > 1 { halfGradients.zero() }
            _ = try BatchHalves.run(shards.count) { i in try decoder.backward(forwards[i].tape, hiddenGradient: forwards[i].hiddenGradient) }
            if shards.count > 1 {
                BatchHalves.addGradients(halfGradients.parameterPairs(mixture).map(\.gradient), into: gradients.parameterPairs(mixture).map(\.gradient))
            }
        }
        return (forwards.reduce(0) { $0 + $1.ce }, adapters[0].loadBalancingLoss, count)
    }

    /// One AdamW update on `batch`. Rejects an empty batch or one without agent tokens, and a
    /// step whose gradients are not finite, leaving the parameters untouched.
    public func trainStep(_ batch: [RoleAnnotatedConversation]) throws -> SFTStepMetrics {
        gradients.zero()
        let (ce, aux, tokens) = try lossAndGradients(batch, computeGradients: true)
        let orth = configuration.objective.orthogonality.lossAndGradients(mixture, addingGradientsTo: gradients.loras)
        let norm = GradientClipping.clip(gradients.parameterPairs(mixture).map(\.gradient), maxNorm: configuration.clipNorm)
        let schedule = LearningRateSchedule(warmupSteps: configuration.warmupSteps, totalSteps: plannedSteps, decay: configuration.decay, minimumFactor: 0.1)
        let factor = schedule.factor(step: optimizer.stepCount)
        try optimizer.step(learningRateScale: factor)
        let c = configuration
        return SFTStepMetrics(step: optimizer.stepCount, loss: c.objective.loss(crossEntropy: ce, loadBalancing: aux, orthogonality: orth),
                              crossEntropy: ce, loadBalancing: aux, orthogonality: orth, gradientNorm: Double(norm),
                              learningRate: Double(c.optimizer.learningRate * factor), tokens: tokens)
    }

    /// Mean cross-entropy per agent token over `data` (no update).
    public func evaluate(_ data: [RoleAnnotatedConversation]) throws -> Double {
        var total = 0.0, tokens = 0
        var start = 0
        while start < data.count {
            let batch = Array(data[start..<min(data.count, start + configuration.batchSize)])
            let (ce, _, n) = try lossAndGradients(batch, computeGradients: false)
            total += ce * Double(n); tokens += n
            start += configuration.batchSize
        }
        return total / Double(max(tokens, 1))
    }

    /// The whole run: `epochs` passes in a seeded order, a validation pass after each epoch,
    /// metrics appended to `output/metrics.jsonl`, the adapter written to
    /// `output/mixture_of_roles.safetensors`. `progress(metrics, totalSteps)` sees every step and
    /// may throw to stop. Returns the validation losses per epoch (empty without validation data).
    @discardableResult
    public func train(progress: ((SFTStepMetrics, Int) throws -> Void)? = nil) throws -> [Double] {
        var data = try RoleAnnotatedConversation.load(path: configuration.trainData)
        let validation = try configuration.validationData.map { try RoleAnnotatedConversation.load(path: $0) }
        try makeFolder(configuration.output)
        let perEpoch = (data.count + configuration.batchSize - 1) / configuration.batchSize
        plannedSteps = max(1, perEpoch * configuration.epochs)
        var lines: [String] = []
        var validationLosses: [Double] = []
        for epoch in 0..<configuration.epochs {
            data.shuffle(using: &generator)
            for b in 0..<perEpoch {
                let batch = Array(data[(b * configuration.batchSize)..<min(data.count, (b + 1) * configuration.batchSize)])
                let m = try trainStep(batch)
                lines.append(m.json.serialized)
                try progress?(m, plannedSteps)
            }
            if let validation {
                let v = try evaluate(validation)
                validationLosses.append(v)
                lines.append(JSONValue.object([("epoch", .number(Double(epoch + 1))), ("validation_cross_entropy", .number(v))]).serialized)
            }
            try writeFileAtomically(Array((lines.joined(separator: "\n") + "\n").utf8), to: joinPath(configuration.output, "metrics.jsonl"))
        }
        try mixture.save(to: joinPath(configuration.output, "mixture_of_roles.safetensors"))
        return validationLosses
    }
}

/// Creates `path` (and missing parents) as a folder.
func makeFolder(_ path: String) throws {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if !fileExists(current) && mkdir(current, 0o755) != 0 && !fileExists(current) {
            throw MoRAgentError.io(path: current, reason: String(cString: strerror(errno)))
        }
    }
}
