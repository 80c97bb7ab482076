import CMoRAgent
import MoRAgent

/// What a `moragent_trainer *` points to: the core trainer and its policy's handle, whose busy
/// flag serialises every call on the pair (the trainer mutates the policy's experts and record).
final class TrainerHandle: CHandle {
    static let cName = "moragent_trainer"

    let trainer: PolicyTrainer
    let policy: PolicyHandle
    /// The last update's statistics as JSON ("{}" before the first).
    var lastStats = "{}"

    init(_ trainer: PolicyTrainer, policy: PolicyHandle) {
        self.trainer = trainer
        self.policy = policy
    }
}

/// The work behind the reinforcement-learning entry points.
enum TrainerCalls {
    /// Size of `moragent_trainer_params` in version 0.4, the smallest `struct_size` accepted.
    static let paramsFirstSize = MemoryLayout<moragent_trainer_params>.stride

    static func beginEpisode(_ policy: OpaquePointer?, _ episode: Int64, _ group: Int64) throws {
        try resolvePolicy(policy).exclusively { try $0.beginEpisode(Int(episode), group: Int(group)) }
    }

    static func stepReward(_ policy: OpaquePointer?, _ episode: Int64, _ reward: Double) throws {
        try resolvePolicy(policy).exclusively { try $0.addStepReward(Int(episode), reward: reward) }
    }

    static func recordedSteps(_ policy: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) throws {
        let out = try CInput.required(out, "out_steps")
        out.pointee = try resolvePolicy(policy).exclusively { $0.recordedStepCount }
    }

    static func defaultParams(_ params: UnsafeMutablePointer<moragent_trainer_params>?) throws {
        let params = try CInput.required(params, "params")
        let size = try CInput.structSize(params, firstSize: paramsFirstSize, "params", "moragent_trainer_params")
        // The core's defaults are the single source of the documented ones.
        let c = PolicyTrainerConfiguration(), g = GiGPOAdvantage(), gae = GAEAdvantage()
        var p = moragent_trainer_params()
        p.struct_size = size
        p.advantage = Int32(MORAGENT_ADVANTAGE_GIGPO.rawValue)
        p.normalize_by_std = g.mode == .meanStdNorm ? 1 : 0
        p.per_trajectory_statistics = g.statistics == .trajectories ? 1 : 0
        p.gamma = g.gamma
        p.gae_lambda = gae.lambda
        p.step_weight = g.stepWeight
        p.similarity_threshold = g.similarityThreshold ?? 0
        p.invalid_action_penalty = g.invalidActionPenalty
        p.learning_rate = c.optimizer.learningRate
        p.weight_decay = c.optimizer.weightDecay
        p.max_grad_norm = c.maxGradientNorm
        p.warmup_updates = 0
        p.total_updates = 0
        p.cosine = 1
        let o = c.objective
        p.clip_low = o.surrogate.clipLow
        p.clip_high = o.surrogate.clipHigh
        p.dual_clip = o.surrogate.dualClip ?? 0
        p.sequence_mean = o.surrogate.aggregation == .tokenMean ? 0 : 1
        p.kl_coefficient = o.surrogate.klCoefficient
        p.train_router = c.trainRouter ? 1 : 0
        p.balance_coefficient = o.balance.coefficient
        p.switch_coefficient = o.switching.coefficient
        p.switch_lambda = o.switching.lambda
        p.diversity_coefficient = o.diversity.coefficient
        p.diversity_interval = Int32(o.diversity.interval)
        p.diversity_samples = Int32(o.diversity.samples)
        p.diversity_buffer = Int32(o.diversity.bufferCapacity)
        p.diversity_margin = Float(o.diversity.margin)
        p.mini_batches = Int32(c.miniBatches)
        p.epochs = Int32(c.epochs)
        p.chunk_steps = Int32(c.chunkSteps)
        p.seed = c.seed
        p.metrics_path = nil
        p.rollout_capacity = 1 << 16
        p.router_learning_rate_scale = c.routerLearningRateScale
        p.recompute_activations = c.activationMemory == .recompute ? 1 : 0
        params.pointee = p
    }

    /// The core configuration, metrics path and rollout capacity of a C parameter struct.
    static func configuration(_ params: UnsafePointer<moragent_trainer_params>?) throws -> (PolicyTrainerConfiguration, String?, Int) {
        var defaults = moragent_trainer_params()
        defaults.struct_size = paramsFirstSize
        try withUnsafeMutablePointer(to: &defaults) { try defaultParams($0) }
        if let params { _ = try CInput.structSize(params, firstSize: paramsFirstSize, "params", "moragent_trainer_params") }
        let p = params?.pointee ?? defaults
        func finite(_ x: Double, _ name: String) throws -> Double {
            guard x.isFinite else { throw CallError.invalidArgument("params->\(name) is \(x)") }
            return x
        }
        func count(_ x: Int32, _ name: String) throws -> Int {
            guard x >= 1 else { throw CallError.invalidArgument("params->\(name) is \(x); it must be at least 1") }
            return Int(x)
        }
        var c = PolicyTrainerConfiguration()
        let penalty = try finite(p.invalid_action_penalty, "invalid_action_penalty")
        let gamma = try finite(p.gamma, "gamma"), lambda = try finite(p.gae_lambda, "gae_lambda")
        guard (0...1).contains(gamma), (0...1).contains(lambda) else { throw CallError.invalidArgument("params->gamma and gae_lambda must lie in [0, 1]") }
        let threshold = try finite(p.similarity_threshold, "similarity_threshold")
        guard (0...1).contains(threshold) else { throw CallError.invalidArgument("params->similarity_threshold must lie in [0, 1]") }
        let statistics: GroupStatistics = p.per_trajectory_statistics != 0 ? .trajectories : .stepRows
        switch p.advantage {
        case Int32(MORAGENT_ADVANTAGE_GRPO.rawValue):
            var e = GRPOAdvantage(); e.normalizeByStd = p.normalize_by_std != 0; e.statistics = statistics; e.invalidActionPenalty = penalty
            c.estimator = .grpo(e)
        case Int32(MORAGENT_ADVANTAGE_RLOO.rawValue):
            var e = RLOOAdvantage(); e.statistics = statistics; e.invalidActionPenalty = penalty
            c.estimator = .rloo(e)
        case Int32(MORAGENT_ADVANTAGE_GIGPO.rawValue):
            var e = GiGPOAdvantage()
            e.mode = p.normalize_by_std != 0 ? .meanStdNorm : .meanNorm
            e.statistics = statistics; e.invalidActionPenalty = penalty; e.gamma = gamma
            e.stepWeight = try finite(p.step_weight, "step_weight")
            e.similarityThreshold = threshold > 0 ? threshold : nil
            c.estimator = .gigpo(e)
        case Int32(MORAGENT_ADVANTAGE_PPO.rawValue):
            var e = GAEAdvantage(); e.gamma = gamma; e.lambda = lambda
            c.estimator = .ppo(e)
        default:
            throw CallError.invalidArgument("params->advantage is \(p.advantage); expected a moragent_advantage (0-3)")
        }
        for (v, name) in [(p.learning_rate, "learning_rate"), (p.weight_decay, "weight_decay"), (p.clip_low, "clip_low"), (p.clip_high, "clip_high"),
                          (p.dual_clip, "dual_clip"), (p.kl_coefficient, "kl_coefficient")] {
            guard v.isFinite, v >= 0 else { throw CallError.invalidArgument("params->\(name) is \(v); it must be finite and ≥ 0") }
        }
        c.optimizer.learningRate = p.learning_rate
        c.optimizer.weightDecay = p.weight_decay
        c.maxGradientNorm = p.max_grad_norm
        guard p.warmup_updates >= 0, p.total_updates >= 0 else { throw CallError.invalidArgument("params->warmup_updates and total_updates must be ≥ 0") }
        c.schedule = p.total_updates > 0
            ? LearningRateSchedule(warmupSteps: Int(p.warmup_updates), totalSteps: Int(p.total_updates), decay: p.cosine != 0 ? .cosine : .linear)
            : LearningRateSchedule(warmupSteps: Int(p.warmup_updates), totalSteps: max(1, Int(p.warmup_updates)), decay: .constant)
        c.objective.surrogate.clipLow = p.clip_low
        c.objective.surrogate.clipHigh = p.clip_high
        c.objective.surrogate.dualClip = p.dual_clip == 0 ? nil : p.dual_clip
        c.objective.surrogate.aggregation = p.sequence_mean != 0 ? .sequenceMeanTokenMean : .tokenMean
        c.objective.surrogate.klCoefficient = p.kl_coefficient
        c.trainRouter = p.train_router != 0
        c.routerLearningRateScale = p.router_learning_rate_scale
        c.activationMemory = p.recompute_activations != 0 ? .recompute : .store
        c.objective.balance.coefficient = p.balance_coefficient
        c.objective.switching.coefficient = p.switch_coefficient
        c.objective.switching.lambda = p.switch_lambda
        c.objective.diversity.coefficient = p.diversity_coefficient
        c.objective.diversity.interval = try count(p.diversity_interval, "diversity_interval")
        c.objective.diversity.samples = try count(p.diversity_samples, "diversity_samples")
        c.objective.diversity.bufferCapacity = try count(p.diversity_buffer, "diversity_buffer")
        c.objective.diversity.margin = Double(p.diversity_margin)
        c.miniBatches = try count(p.mini_batches, "mini_batches")
        c.epochs = try count(p.epochs, "epochs")
        c.chunkSteps = try count(p.chunk_steps, "chunk_steps")
        c.seed = p.seed
        let metrics = try CInput.optionalCString(p.metrics_path, "params->metrics_path")
        let capacity = try CInput.size(p.rollout_capacity, "params->rollout_capacity")
        guard capacity >= 1 else { throw CallError.invalidArgument("params->rollout_capacity is 0") }
        return (c, metrics, capacity)
    }

    static func create(_ policy: OpaquePointer?, _ params: UnsafePointer<moragent_trainer_params>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_trainer")
        out.pointee = nil
        let policyHandle = try resolvePolicy(policy)
        let (configuration, metrics, capacity) = try configuration(params)
        let trainer = try policyHandle.exclusively { p -> PolicyTrainer in
            let t = try PolicyTrainer(policy: p, configuration: configuration)
            p.rolloutCapacity = capacity
            return t
        }
        trainer.metricsPath = metrics
        out.pointee = HandleRegistry.shared.register(TrainerHandle(trainer, policy: policyHandle))
    }

    static func free(_ trainer: OpaquePointer?) throws {
        try HandleRegistry.shared.free(trainer, as: TrainerHandle.self, "trainer")
    }

    static func update(_ trainer: OpaquePointer?, _ progress: moragent_progress_fn?, _ user: UnsafeMutableRawPointer?) throws {
        let handle = try resolve(trainer)
        let observer: ((Int, Int) throws -> Void)? = progress.map { callback in
            { done, total in
                let answer = callback(done, total, user)
                guard answer == 0 else { throw CallError.aborted("the progress callback returned \(answer) after pass \(done) of \(total)") }
            }
        }
        let stats = try handle.policy.exclusively { _ in try handle.trainer.update(progress: observer) }
        handle.lastStats = stats.json.serialized
        LogSink.emit(MORAGENT_LOG_LEVEL_DEBUG, "update \(stats.update): \(stats.episodes) episodes, \(stats.steps) steps, success \(stats.successRate)")
    }

    static func lastStats(_ trainer: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(trainer)
        let text = try handle.policy.exclusively { _ in handle.lastStats }
        try CInput.writeText(Array(text.utf8), buffer, capacity, outLength, "the statistics")
    }

    static func save(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) throws {
        let handle = try resolve(trainer)
        let path = try CInput.cString(path, "path")
        try handle.policy.exclusively { _ in try PolicyBundle.save(handle.trainer, to: path) }
    }

    static func load(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) throws {
        let handle = try resolve(trainer)
        let path = try CInput.cString(path, "path")
        try handle.policy.exclusively { _ in try PolicyBundle.load(from: path, into: handle.trainer) }
    }

    static func exportExpert(_ trainer: OpaquePointer?, _ expert: Int, _ folder: UnsafePointer<CChar>?) throws {
        let handle = try resolve(trainer)
        let folder = try CInput.cString(folder, "folder")
        try handle.policy.exclusively { p in
            guard (0..<p.experts.count).contains(expert) else {
                throw CallError.invalidArgument("expert \(expert) is outside 0..<\(p.experts.count)")
            }
            try PEFTAdapter.save(p.experts.experts[expert], folder: folder)
        }
    }

    private static func resolve(_ trainer: OpaquePointer?) throws -> TrainerHandle {
        try HandleRegistry.shared.resolve(trainer, as: TrainerHandle.self, "trainer")
    }

    private static func resolvePolicy(_ policy: OpaquePointer?) throws -> PolicyHandle {
        try HandleRegistry.shared.resolve(policy, as: PolicyHandle.self, "policy")
    }
}
