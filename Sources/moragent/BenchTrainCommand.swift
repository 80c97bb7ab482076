import ArgumentParser
import Foundation
import MoRAgent

/// `moragent bench train`: one LoRA training step as the PyTorch peer runs it (r = 32, alpha 64 on
/// q_proj and v_proj, base frozen, AdamW lr 1e-4, batch 4 × 256, cross-entropy on every next
/// token, forward + backward + step), with the process's peak resident memory. The batch runs as
/// the library's trainers run it: two halves on two threads (`BatchHalves`), or with
/// `--whole-batch` as one pass on OpenBLAS's threads, to measure what the split gains.
/// `--recompute` runs it with `ActivationMemory.recompute`, to measure what that trades.
struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "A LoRA training step (peer workload), as JSON.")

    @Option(help: "A Hugging Face model folder.") var model: String?
    @Option(help: "A named random shape: tiny or qwen05b.") var shape: String?
    @Option(help: "Timed repetitions (median reported).") var repeats = 5
    @Option(help: "OpenBLAS threads.") var threads = 2
    @Option(help: "Sequences per step.") var batch = 4
    @Option(help: "Tokens per sequence.") var length = 256
    @Flag(help: "Keep only each layer's input and recompute the rest in the backward.") var recompute = false
    @Flag(help: "One pass over the whole batch on OpenBLAS's threads instead of two halves on two threads.") var wholeBatch = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard length >= 2 else { throw ValidationError("--length must be at least 2 (a sequence of one token has no next token to predict)") }
    }

    func run() throws {
        let decoder: Decoder
        if let model { decoder = try Decoder(folder: model) }
        else if let shape, let config = ModelConfig.benchmarkShape(shape) { decoder = Decoder(weights: DecoderWeights.random(config: config, seed: 0)) }
        else { throw ValidationError("give --model DIR or --shape tiny|qwen05b") }
        BLAS.threads = threads
        let c = decoder.config
        let experts = try ExpertSet(model: c, count: 1, configuration: LoRAConfiguration(rank: 32, alpha: 64, targetModules: [.q, .v]), seed: 1)
        var g = SeededGenerator(seed: 2)
        let sequences = (0..<batch).map { _ in (0..<length).map { _ in Int32(g.next() % UInt64(c.vocabularySize)) } }
        let shards = wholeBatch ? [Array(sequences.indices)] : BatchHalves.split(sequences.map(\.count))
        let gradients = shards.map { _ in ExpertGradients(experts: experts) }
        let pairs = gradients.map { $0.parameterPairs(experts) }
        var oc = AdamW.Configuration(); oc.learningRate = 1e-4
        let optimizer = try AdamW(parameters: pairs[0], configuration: oc)
        let targets = try shards.map { try TokenCrossEntropy.nextTokenTargets($0.map { sequences[$0] }) }
        let targetCount = Double(targets.reduce(0) { $0 + $1.filter { $0 >= 0 }.count })
        var times: [Double] = []
        var loss = 0.0, tapeBytes = 0
        for r in 0...repeats {
            let t = ForwardBenchmark.now()
            let results = try BatchHalves.run(shards.count) { i in
                gradients[i].zero()
                let part = shards[i].map { sequences[$0] }
                let adapter = try ExpertMixtureAdapter(experts: experts, routes: part.map { _ in .expert(0) }, tokenCounts: part.map(\.count))
                adapter.gradients = gradients[i]
                let tape = try decoder.trainingForward(part, adapter: adapter, activationMemory: recompute ? .recompute : .store)
                let (l, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: targets[i], lmHead: decoder.weights.lmHead,
                                                                            normalizer: targetCount)
                try decoder.backward(tape, hiddenGradient: dHidden)
                return (loss: l, tapeBytes: tape.byteCount)
            }
            if shards.count > 1 {
                BatchHalves.addGradients(pairs[1].map(\.gradient), into: pairs[0].map(\.gradient))
            }
            try optimizer.step()
            loss = results.reduce(0) { $0 + $1.loss }
            tapeBytes = results.reduce(0) { $0 + $1.tapeBytes }
            if r > 0 { times.append(ForwardBenchmark.now() - t) }
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let step = ForwardBenchmark.median(times)
        let result: JSONValue = .object([
            ("engine", .string("moragent")), ("config", .string(model ?? shape!)), ("threads", .number(Double(threads))),
            ("batch", .number(Double(batch))), ("length", .number(Double(length))), ("recompute", .bool(recompute)),
            ("halves", .number(Double(shards.count))),
            ("train_step_s", .number(step.rounded(toPlaces: 4))),
            ("train_tokens_per_s", .number((Double(batch * length) / step).rounded(toPlaces: 1))),
            ("trainable_params", .number(Double(experts.experts[0].parameterCount))),
            ("last_loss", .number(loss.rounded(toPlaces: 4))),
            ("tape_mb", .number((Double(tapeBytes) / 1_048_576).rounded(toPlaces: 1))),
            ("peak_rss_mb", .number((Double(usage.ru_maxrss) / 1024).rounded(toPlaces: 1))),
        ])
        print(result.serialized)
    }
}
