import ArgumentParser
import Foundation
import MoRAgent

/// `moragent train base`: a word-level tokenizer and a tiny `LlamaForCausalLM` pretrained from
/// scratch on a text corpus (one line per sequence), written as a Hugging Face model folder.
struct TrainBaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "base",
        abstract: "Pretrain a tiny base model (word-level tokenizer + LlamaForCausalLM) on a corpus of lines.",
        discussion: """
        Each non-blank line of the corpus is one sequence: its words, then </s>. The tokenizer has \
        <unk> <pad> </s>, the added tokens <action> </action>, then the corpus's words by frequency.

        Prints a JSON line every --log-every steps (loss averaged over those steps, tokens/s of \
        training) and a final JSON line; writes OUT/config.json, model.safetensors, tokenizer.json, \
        tokenizer_config.json and generation_config.json (the folder appears only when complete).
        """)

    @Option(help: "The corpus: a UTF-8 text file, one training sequence per line.") var corpus: String
    @Option(help: "The model folder to create (absent or empty).") var out: String
    @Option(help: "Hidden size.") var hidden = 128
    @Option(help: "Decoder layers.") var layers = 2
    @Option(help: "Attention heads.") var heads = 4
    @Option(help: "Key/value heads (GQA).") var kvHeads = 2
    @Option(help: "MLP intermediate size.") var intermediate = 256
    @Option(help: "Updates to run (default: one pass over the corpus).") var steps: Int?
    @Option(help: "Lines per update.") var batch = 16
    @Option(help: "Peak learning rate (warmup, then cosine decay to 10%).") var lr: Float = 3e-3
    @Option(help: "AdamW weight decay (not applied to norms).") var weightDecay: Float = 0.01
    @Option(help: "Warmup steps (default: 5% of the steps).") var warmup: Int?
    @Option(help: "Global gradient-norm limit (0: none).") var clipNorm: Float = 1
    @Option(help: "Seed of the initial weights and the data order.") var seed: UInt64 = 0
    @Option(help: "Most tokens per line, </s> included; also max_position_embeddings.") var maxLength = 128
    @Flag(help: "Cut longer lines instead of failing.") var truncate = false
    @Option(help: "Train only on the tokens after this token in each line (e.g. '<action>').") var maskAfter: String?
    @Option(help: "Leave out words seen fewer times than this (they become <unk>).") var minFrequency = 1
    @Option(help: "RoPE base.") var ropeTheta: Double = 10_000
    @Option(help: "Print metrics every this many steps.") var logEvery = 10
    @Flag(help: "Keep only each layer's input and recompute the rest in the backward (less memory, about one more forward per step).")
    var recompute = false

    func run() throws {
        var c = BaseModelPretrainingConfiguration()
        c.hiddenSize = hidden; c.layerCount = layers; c.headCount = heads; c.keyValueHeadCount = kvHeads
        c.intermediateSize = intermediate; c.steps = steps; c.batchSize = batch; c.optimizer.learningRate = lr
        c.optimizer.weightDecay = weightDecay; c.warmupSteps = warmup; c.clipNorm = clipNorm; c.seed = seed
        c.maxLength = maxLength; c.truncate = truncate; c.lossMarker = maskAfter; c.ropeTheta = ropeTheta
        c.activationMemory = recompute ? .recompute : .store
        try c.validate()
        try BaseModelPretrainer.checkOutputFolder(out)
        var builder = WordLevelTokenizerBuilder()
        builder.minimumFrequency = minFrequency
        // As BaseModelPretrainer.pretrain, in steps, so setup and training are timed apart.
        let setupStart = Date()
        let lines = try BaseModelPretrainer.corpusLines(path: corpus)
        let trainer = try BaseModelPretrainer(configuration: c, tokenizerJSON: try builder.tokenizerJSON(lines: lines))
        let (sequences, targets) = try trainer.encode(lines: lines)
        let start = Date()
        var tokens = 0
        var window: [Double] = []
        try trainer.train(sequences: sequences, targets: targets) { m in
            tokens += m.tokens
            window.append(m.loss)
            guard m.step % max(1, logEvery) == 0 || m.step == m.steps else { return }
            let seconds = Date().timeIntervalSince(start)
            let line: JSONValue = .object([
                ("step", .number(Double(m.step))), ("steps", .number(Double(m.steps))),
                ("loss", .number((window.reduce(0, +) / Double(window.count)).rounded(toPlaces: 4))),
                ("grad_norm", .number(m.gradientNorm.rounded(toPlaces: 4))), ("lr", .number(m.learningRate)),
                ("tokens", .number(Double(tokens))), ("seconds", .number(seconds.rounded(toPlaces: 2))),
                ("tokens_per_s", .number((Double(tokens) / seconds).rounded(toPlaces: 1))),
            ])
            window.removeAll()
            print(line.serialized)
            fflush(stdout)
        }
        let trainSeconds = Date().timeIntervalSince(start)
        try trainer.save(to: out)
        let summary: JSONValue = .object([
            ("out", .string(out)), ("lines", .number(Double(sequences.count))),
            ("vocab_size", .number(Double(trainer.modelConfig.vocabularySize))),
            ("parameters", .number(Double(trainer.modelConfig.parameterCount))),
            ("steps", .number(Double(trainer.stepCount))), ("tokens", .number(Double(tokens))),
            ("setup_seconds", .number(start.timeIntervalSince(setupStart).rounded(toPlaces: 2))),
            ("train_seconds", .number(trainSeconds.rounded(toPlaces: 2))),
            ("tokens_per_s", .number((Double(tokens) / trainSeconds).rounded(toPlaces: 1))),
            ("seconds", .number(Date().timeIntervalSince(setupStart).rounded(toPlaces: 2))),
        ])
        print(summary.serialized)
    }
}
