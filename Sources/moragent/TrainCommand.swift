import ArgumentParser
import Foundation
import MoRAgent

/// `moragent train …`: training runs (adapters on a frozen base, and the tiny base itself).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Train adapters and tiny base models.",
                                                    subcommands: [TrainSFTCommand.self, TrainBaseCommand.self])
}

/// `moragent train sft --config FILE`: Mixture-of-Roles SFT on role-annotated JSON lines.
struct TrainSFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sft",
        abstract: "Mixture-of-Roles SFT from a JSON config (model, train_data, output, epochs, learning_rate, …).",
        discussion: """
        Config keys: model, train_data, output (required); validation_data, epochs (4), batch_size (4),
        max_length (512), learning_rate (5e-5), weight_decay, warmup_steps, schedule (constant|linear|cosine),
        clip_norm (1), seed, routed_counts ([4,4,3]), top_k ([3,3,2]), rank (16), scale (1), shared_gate,
        target_modules, load_balancing_coefficient (1e-3), orthogonality_coefficient (1e-4),
        recompute_activations (false: true keeps only each layer's input and recomputes the rest in the
        backward, less memory for about one more forward per step).
        Writes OUTPUT/metrics.jsonl and OUTPUT/mixture_of_roles.safetensors; progress goes to stderr.
        """)

    @Option(help: "The JSON configuration file.") var config: String

    func run() throws {
        let configuration = try MixtureOfRolesSFTConfiguration.load(path: config)
        let engine = try Engine(folder: configuration.model)
        let trainer = try MixtureOfRolesTrainer(configuration: configuration, engine: engine)
        let start = Date()
        let validation = try trainer.train { m, total in
            let line = String(format: "step %d/%d  loss %.4f  ce %.4f  aux %.4f  orth %.4f  lr %.2e  %.1f s\n",
                              m.step, total, m.loss, m.crossEntropy, m.loadBalancing, m.orthogonality, m.learningRate, Date().timeIntervalSince(start))
            FileHandle.standardError.write(line.data(using: .utf8)!)
        }
        let summary: JSONValue = .object([
            ("steps", .number(Double(trainer.optimizer.stepCount))),
            ("validation_cross_entropy", .array(validation.map { .number($0) })),
            ("adapter", .string(configuration.output + "/mixture_of_roles.safetensors")),
            ("metrics", .string(configuration.output + "/metrics.jsonl")),
        ])
        print(summary.serialized)
    }
}
