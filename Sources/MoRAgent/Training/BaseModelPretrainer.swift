#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Settings of a base-model pretraining run (`moragent train base`): the shape of a small
/// `LlamaForCausalLM` and how to train it from scratch.
public struct BaseModelPretrainingConfiguration: Sendable {
    /// Model width `C`.
    public var hiddenSize = 128
    /// Decoder layers.
    public var layerCount = 2
    /// Query heads `H` (must divide `hiddenSize`; the head width must be even for RoPE).
    public var headCount = 4
    /// Key/value heads (GQA; must divide `headCount`).
    public var keyValueHeadCount = 2
    /// MLP width `I`.
    public var intermediateSize = 256
    /// RoPE base.
    public var ropeTheta: Double = 10_000
    /// RMSNorm epsilon.
    public var rmsNormEps: Float = 1e-6
    /// Standard deviation of the initial weights (transformers' `initializer_range`).
    public var initializerRange: Float = 0.02
    /// Most tokens of one training sequence (a line and its `</s>`); also the model's
    /// `max_position_embeddings`, since it never sees a later position.
    public var maxLength = 128
    /// Cut longer lines to `maxLength` tokens instead of rejecting the corpus.
    public var truncate = false
    /// Updates to run; nil means one pass over the corpus.
    public var steps: Int?
    /// Lines per update.
    public var batchSize = 16
    /// AdamW settings (lr 3e-3; no weight decay on norms, as transformers' `Trainer` does).
    public var optimizer = AdamW.Configuration()
    /// Linear warmup; nil means 5% of the steps.
    public var warmupSteps: Int?
    /// Cosine decay after warmup ends at this fraction of the peak learning rate.
    public var minimumLearningRateFactor: Float = 0.1
    /// Global gradient-norm limit (0: none).
    public var clipNorm: Float = 1
    /// Seed of the initial weights and of the data order.
    public var seed: UInt64 = 0
    /// When set (e.g. `<action>`), only the tokens after a line's first occurrence of this token
    /// are targets: the model learns to act, not to predict observations. Lines without it are
    /// skipped; a corpus with none of them is an error.
    public var lossMarker: String?
    /// What each half-batch's forward keeps for its backward: `.recompute` keeps only every
    /// layer's input and recomputes the rest in the backward, for about one more forward per
    /// step, with bit-identical weights (DESIGN.md §5).
    public var activationMemory = ActivationMemory.store

    /// The defaults above.
    public init() {
        optimizer.learningRate = 3e-3
    }

    /// Throws `invalidArgument` naming the first setting out of range.
    public func validate() throws {
        func check(_ ok: Bool, _ reason: @autoclosure () -> String) throws {
            if !ok { throw MoRAgentError.invalidArgument(reason()) }
        }
        try check(hiddenSize > 0 && intermediateSize > 0, "hidden size and intermediate size must be positive")
        try check(layerCount > 0, "a model needs at least one layer, got \(layerCount)")
        try check(headCount > 0 && keyValueHeadCount > 0, "head counts must be positive")
        try check(hiddenSize % headCount == 0, "hidden size \(hiddenSize) is not divisible by \(headCount) heads")
        try check((hiddenSize / headCount) % 2 == 0, "head width \(hiddenSize / headCount) is odd; RoPE needs pairs")
        try check(headCount % keyValueHeadCount == 0, "\(headCount) heads are not divisible by \(keyValueHeadCount) key/value heads")
        try check(ropeTheta.isFinite && ropeTheta > 0, "rope theta must be positive")
        try check(rmsNormEps.isFinite && rmsNormEps > 0, "the RMSNorm epsilon must be positive")
        try check(initializerRange.isFinite && initializerRange > 0, "the initializer range must be positive")
        try check(maxLength >= 2, "the maximum length must be at least 2 tokens, got \(maxLength)")
        try check(steps.map { $0 > 0 } ?? true, "steps must be positive")
        try check(batchSize > 0, "the batch size must be positive, got \(batchSize)")
        try check(warmupSteps.map { $0 >= 0 } ?? true, "warmup steps must be ≥ 0")
        try check((0...1).contains(minimumLearningRateFactor), "the minimum learning-rate factor must be in [0, 1]")
        try check(clipNorm.isFinite && clipNorm >= 0, "the clip norm must be ≥ 0")
        try check(optimizer.learningRate.isFinite && optimizer.learningRate > 0, "the learning rate must be positive")
    }
}

/// One pretraining update's numbers (what `moragent train base` prints).
public struct BaseModelStepMetrics: Equatable, Sendable {
    /// Update index (1-based).
    public var step: Int
    /// Updates the run will take.
    public var steps: Int
    /// Mean next-token cross-entropy over the batch's targets (nats).
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradientNorm: Double
    /// Learning rate used.
    public var learningRate: Double
    /// Tokens the batch ran through the model.
    public var tokens: Int
    /// Of those, the tokens predicted (targets of the loss).
    public var targets: Int
}

/// Trains a tiny `LlamaForCausalLM` from random weights on a text corpus, one line per sequence,
/// with every weight trainable (DESIGN.md §5: the frozen base of the demo is made by the library
/// itself), and writes it as a Hugging Face model folder.
///
/// A line becomes `encode(line) + [</s>]` (no BOS: the vocabulary has none, and the policy's
/// prompts start without one); the model learns to predict each next token, or with
/// `lossMarker` only the tokens after the marker, `</s>` included, so it also learns to end a
/// line. Batches are seeded draws without replacement (a fresh permutation per pass), packed
/// without padding. Same seed, corpus and settings → the same bytes on disk.
public final class BaseModelPretrainer {
    /// Settings.
    public let configuration: BaseModelPretrainingConfiguration
    /// The `tokenizer.json` content written beside the weights.
    public let tokenizerJSON: JSONValue
    /// The tokenizer read from it.
    public let tokenizer: Tokenizer
    /// The model being trained (its weights change with every step).
    public let decoder: Decoder
    /// Its gradients (of the whole batch, after each step).
    public let gradients: DecoderGradients
    /// The second half-batch's gradients, before they are added into `gradients`.
    private let halfGradients: DecoderGradients
    /// The padding token's id (`<pad>`), written as `pad_token_id` when the tokenizer has it.
    public let paddingTokenID: Int32?
    /// Updates taken.
    public private(set) var stepCount = 0
    /// AdamW over the matrices and embeddings (with weight decay) and over the norms (without).
    private let optimizers: [AdamW]
    private let parameters: [(name: String, value: Tensor, gradient: Tensor)]
    private let markerID: Int32?
    private var generator: SeededGenerator

    /// A randomly initialised model for the vocabulary of `tokenizerJSON`, whose `</s>` is the
    /// end-of-sequence token. Throws `invalidArgument` for settings out of range, a tokenizer
    /// without `</s>`, or a `lossMarker` it cannot encode as one token.
    public init(configuration: BaseModelPretrainingConfiguration, tokenizerJSON: JSONValue) throws {
        try configuration.validate()
        self.configuration = configuration
        self.tokenizerJSON = tokenizerJSON
        tokenizer = try Tokenizer(json: tokenizerJSON, path: "tokenizer.json")
        let eos = WordLevelTokenizerBuilder.endOfSequenceToken
        guard let eosID = tokenizer.id(of: eos) else { throw MoRAgentError.invalidArgument("the tokenizer has no \(eos) token to end sequences with") }
        paddingTokenID = tokenizer.id(of: WordLevelTokenizerBuilder.paddingToken)
        if let marker = configuration.lossMarker {
            guard let id = tokenizer.id(of: marker) else {
                throw MoRAgentError.invalidArgument("the loss marker \(marker.debugDescription) is not a token of the vocabulary")
            }
            markerID = id
        } else {
            markerID = nil
        }
        let c = configuration
        var config = ModelConfig(architecture: .llama, hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize,
                                 layerCount: c.layerCount, headCount: c.headCount, keyValueHeadCount: c.keyValueHeadCount,
                                 vocabularySize: tokenizer.vocabularySize, rmsNormEps: c.rmsNormEps, ropeTheta: c.ropeTheta,
                                 tieWordEmbeddings: true, maxPositionEmbeddings: c.maxLength)
        config.eosTokenIDs = [eosID]
        // The configuration goes through the reader the folder will be loaded with, so its limits
        // apply now rather than when the trained model is loaded.
        let checked = try ModelConfig(json: config.json(), path: "config.json")
        let weights = DecoderWeights.transformersInitialized(config: checked, seed: c.seed, standardDeviation: c.initializerRange,
                                                             paddingTokenID: paddingTokenID)
        decoder = Decoder(weights: weights)
        gradients = DecoderGradients(config: checked)
        halfGradients = DecoderGradients(config: checked)
        parameters = gradients.parameterPairs(weights)
        var noDecay = c.optimizer
        noDecay.weightDecay = 0
        let isNorm: (String) -> Bool = { $0.hasSuffix("norm.weight") || $0.hasSuffix(".bias") }
        optimizers = [try AdamW(parameters: parameters.filter { !isNorm($0.name) }.map { ($0.value, $0.gradient) }, configuration: c.optimizer),
                      try AdamW(parameters: parameters.filter { isNorm($0.name) }.map { ($0.value, $0.gradient) }, configuration: noDecay)]
        generator = SeededGenerator(seed: c.seed &+ 1)
    }

    /// The model's configuration (what `config.json` holds).
    public var modelConfig: ModelConfig { decoder.config }

    /// The training sequences of `lines` and which of their tokens are targets. Blank lines, and
    /// with a loss marker lines without it, are skipped; throws when nothing is left or a line
    /// is longer than `maxLength` tokens (with its `</s>`) and `truncate` is off.
    public func encode(lines: [String]) throws -> (sequences: [[Int32]], targets: [[Bool]]) {
        let eos = decoder.config.eosTokenIDs[0], limit = configuration.maxLength
        var sequences: [[Int32]] = [], targets: [[Bool]] = []
        var markerSeen = false
        for (index, line) in lines.enumerated() {
            var ids = tokenizer.encode(line)
            guard !ids.isEmpty else { continue }
            ids.append(eos)
            if ids.count > limit {
                guard configuration.truncate else {
                    throw MoRAgentError.invalidArgument("line \(index + 1) has \(ids.count) tokens with its \(WordLevelTokenizerBuilder.endOfSequenceToken), more than the maximum length \(limit) (raise it, or truncate)")
                }
                ids.removeLast(ids.count - limit)
            }
            var mask = [Bool](repeating: true, count: ids.count)
            if let markerID {
                guard let m = ids.firstIndex(of: markerID), m + 1 < ids.count else { continue }
                markerSeen = true
                for j in 0...m { mask[j] = false }
            }
            sequences.append(ids)
            targets.append(mask)
        }
        if let marker = configuration.lossMarker, !markerSeen {
            throw MoRAgentError.invalidArgument("no line of the corpus has a token after the loss marker \(marker.debugDescription)")
        }
        guard !sequences.isEmpty else { throw MoRAgentError.invalidArgument("the corpus has no non-blank lines") }
        return (sequences, targets)
    }

    /// One AdamW update on `sequences` (token ids, each a whole sequence from position 0) with
    /// `targets[s][j]` saying whether token `j` of sequence `s` is predicted; `totalSteps` sets
    /// the schedule's length. Throws, changing no weight, when the gradients are not finite.
    ///
    /// The batch is split in two halves of about equal tokens (`BatchHalves`), run on two threads
    /// with single-threaded BLAS, and their gradients summed (the loss of each half is divided by
    /// the whole batch's target count, so the sum is the batch mean's gradient). At this model
    /// size the products are too small for OpenBLAS's own threads (two gave 14% over one, hidden
    /// 128, 16 lines of ~100 tokens); two halves on two threads gave 1.5×. The sum runs in a
    /// fixed order, so the bytes stay reproducible.
    public func trainStep(_ sequences: [[Int32]], targets: [[Bool]], totalSteps: Int) throws -> BaseModelStepMetrics {
        let c = configuration
        guard !sequences.isEmpty, targets.count == sequences.count else {
            throw MoRAgentError.invalidArgument("\(targets.count) target masks for \(sequences.count) sequences")
        }
        let shards = BatchHalves.split(sequences.map(\.count))
        let labels = try shards.map { try TokenCrossEntropy.nextTokenTargets($0.map { sequences[$0] }, trainOn: $0.map { targets[$0] }) }
        let count = labels.reduce(0) { $0 + $1.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }
        guard count > 0 else { throw MoRAgentError.invalidArgument("the batch has no target tokens") }
        let shardGradients = [gradients, halfGradients].prefix(shards.count)
        let losses = try BatchHalves.run(shards.count) { i in
            let g = shardGradients[i]
            g.zero()
            let tape = try decoder.trainingForward(shards[i].map { sequences[$0] }, activationMemory: c.activationMemory)
            let (loss, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: labels[i], lmHead: decoder.weights.lmHead,
                                                                           normalizer: Double(count), lmHeadGradient: g.weights.lmHead)
            try decoder.backward(tape, hiddenGradient: dHidden, baseGradients: g)
            return loss
        }
        let loss = losses.reduce(0, +)
        if shards.count > 1 {
            BatchHalves.addGradients(halfGradients.parameterPairs(decoder.weights).map(\.gradient), into: parameters.map(\.gradient))
        }
        let norm = GradientClipping.clip(parameters.map(\.gradient), maxNorm: c.clipNorm)
        guard norm.isFinite else { throw MoRAgentError.invalidArgument("the gradients of step \(stepCount + 1) are not finite; the step was skipped") }
        let warmup = c.warmupSteps ?? totalSteps / 20
        let schedule = LearningRateSchedule(warmupSteps: warmup, totalSteps: totalSteps, decay: .cosine, minimumFactor: c.minimumLearningRateFactor)
        let factor = schedule.factor(step: stepCount)
        for optimizer in optimizers { try optimizer.step(learningRateScale: factor) }
        stepCount += 1
        return BaseModelStepMetrics(step: stepCount, steps: totalSteps, loss: loss, gradientNorm: Double(norm),
                                    learningRate: Double(c.optimizer.learningRate * factor), tokens: sequences.reduce(0) { $0 + $1.count },
                                    targets: count)
    }

    /// The whole run on `lines`: `encode(lines:)`, then `train(sequences:targets:progress:)`.
    @discardableResult
    public func train(lines: [String], progress: ((BaseModelStepMetrics) throws -> Void)? = nil) throws -> BaseModelStepMetrics {
        let (sequences, targets) = try encode(lines: lines)
        return try train(sequences: sequences, targets: targets, progress: progress)
    }

    /// The whole run on encoded lines (as `encode(lines:)` returns them): `steps` updates (one
    /// pass by default) of `batchSize` sequences in a seeded order. `progress` sees every step's
    /// metrics and may throw to stop the run (the error is rethrown). Returns the last step's
    /// metrics.
    @discardableResult
    public func train(sequences: [[Int32]], targets: [[Bool]], progress: ((BaseModelStepMetrics) throws -> Void)? = nil) throws -> BaseModelStepMetrics {
        guard !sequences.isEmpty, targets.count == sequences.count else {
            throw MoRAgentError.invalidArgument("\(targets.count) target masks for \(sequences.count) sequences")
        }
        let batch = min(configuration.batchSize, sequences.count)
        let total = configuration.steps ?? (sequences.count + batch - 1) / batch
        var order: [Int] = [], cursor = 0
        var last: BaseModelStepMetrics?
        for _ in 0..<total {
            var picked: [Int] = []
            while picked.count < batch {
                if cursor == order.count {
                    order = Array(sequences.indices)
                    order.shuffle(using: &generator)
                    cursor = 0
                }
                picked.append(order[cursor])
                cursor += 1
            }
            let m = try trainStep(picked.map { sequences[$0] }, targets: picked.map { targets[$0] }, totalSteps: total)
            try progress?(m)
            last = m
        }
        return last!
    }

    /// Writes the model as a Hugging Face folder: `config.json`, `generation_config.json`,
    /// `model.safetensors` (f32, HF tensor names), `tokenizer.json` and `tokenizer_config.json`
    /// (so `AutoTokenizer` loads it as a plain fast tokenizer). The files go to a temporary
    /// sibling folder, are fsynced, and the folder is renamed into place: `folder` appears
    /// complete or not at all. Throws if `folder` exists and is not an empty folder.
    public func save(to folder: String) throws {
        try Self.checkOutputFolder(folder)
        let c = decoder.config
        var extra: [(key: String, value: JSONValue)] = [("dtype", .string("float32")), ("initializer_range", .number(Double("\(configuration.initializerRange)") ?? 0.02)),
                                                        ("use_cache", .bool(true))]
        var generation: [(key: String, value: JSONValue)] = [("_from_model_config", .bool(true)), ("eos_token_id", .number(Double(c.eosTokenIDs[0])))]
        if let pad = paddingTokenID {
            extra.append(("pad_token_id", .number(Double(pad))))
            generation.append(("pad_token_id", .number(Double(pad))))
        }
        let special = [("eos_token", WordLevelTokenizerBuilder.endOfSequenceToken), ("pad_token", WordLevelTokenizerBuilder.paddingToken),
                       ("unk_token", WordLevelTokenizerBuilder.unknownToken)].filter { tokenizer.id(of: $0.1) != nil }
        let tokenizerConfig: [(key: String, value: JSONValue)] = [("clean_up_tokenization_spaces", .bool(false)),
                                                                  ("model_max_length", .number(Double(c.maxPositionEmbeddings))),
                                                                  ("tokenizer_class", .string("PreTrainedTokenizerFast"))]
            + special.map { ($0.0, .string($0.1)) }
        let files: [(name: String, json: JSONValue)] = [
            ("config.json", c.json(adding: extra)), ("generation_config.json", .object(generation)),
            ("tokenizer.json", tokenizerJSON), ("tokenizer_config.json", .object(tokenizerConfig)),
        ]

        let target = folder.count > 1 && folder.hasSuffix("/") ? String(folder.dropLast()) : folder
        let parent = target.contains("/") ? String(target[..<target.lastIndex(of: "/")!]) : "."
        if !parent.isEmpty { try makeFolder(parent) }
        var template = Array((target + ".tmp-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw MoRAgentError.io(path: target, reason: "cannot create a temporary folder: \(String(cString: strerror(errno)))") }
        let temporary = String(cString: made)
        chmod(temporary, 0o755)  // mkdtemp makes it private; a model folder is as readable as its files
        var written: [String] = []
        do {
            for (name, json) in files {
                let path = joinPath(temporary, name)
                written.append(path)
                try writeFileAtomically(Array((json.serialized + "\n").utf8), to: path)
            }
            let weights = joinPath(temporary, "model.safetensors")
            written.append(weights)
            try SafeTensorsWriter.write(decoder.weights.huggingFaceTensors, metadata: ["format": "pt"], to: weights)
            try Self.syncFolder(temporary)
            guard rename(temporary, target) == 0 else {
                throw MoRAgentError.io(path: target, reason: "rename failed: \(String(cString: strerror(errno)))")
            }
        } catch {
            for path in written { unlink(path) }
            rmdir(temporary)
            throw error
        }
        try Self.syncFolder(parent.isEmpty ? "/" : parent)
    }

    /// Builds the word-level tokenizer of `lines` with `tokenizer`, trains a model on them and
    /// saves it to `output`; `progress` as in `train`. Bad settings, a bad corpus or an output
    /// path that is taken fail before training, and a failed or stopped run writes nothing.
    @discardableResult
    public static func pretrain(lines: [String], tokenizer builder: WordLevelTokenizerBuilder = WordLevelTokenizerBuilder(),
                                configuration: BaseModelPretrainingConfiguration, output: String,
                                progress: ((BaseModelStepMetrics) throws -> Void)? = nil) throws -> BaseModelPretrainer {
        try configuration.validate()
        try checkOutputFolder(output)
        let trainer = try BaseModelPretrainer(configuration: configuration, tokenizerJSON: try builder.tokenizerJSON(lines: lines))
        try trainer.train(lines: lines, progress: progress)
        try trainer.save(to: output)
        return trainer
    }

    /// The lines of a UTF-8 text file (a trailing `\r` removed from each), blank ones kept so
    /// that the line numbers in `encode`'s errors are the file's (`encode` skips them).
    public static func corpusLines(path: String) throws -> [String] {
        // Split as bytes: as Characters, "\r\n" is one grapheme and never equals "\n".
        try readFileBytes(path).split(separator: 0x0A, omittingEmptySubsequences: false).map { line in
            String(decoding: line.last == 0x0D ? line.dropLast() : line, as: UTF8.self)
        }
    }

    /// Throws unless `folder` is free: absent, or an empty folder.
    public static func checkOutputFolder(_ folder: String) throws {
        guard !folder.isEmpty else { throw MoRAgentError.invalidArgument("the output folder path is empty") }
        guard fileExists(folder) else { return }
        guard let dir = opendir(folder) else { throw MoRAgentError.io(path: folder, reason: "exists and is not a readable folder") }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { throw MoRAgentError.invalidArgument("the output folder \(folder) exists and is not empty") }
        }
    }

    /// fsyncs a folder, so the names created or renamed in it survive a crash.
    private static func syncFolder(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw MoRAgentError.io(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
    }
}
