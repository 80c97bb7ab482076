import ArgumentParser
import MoRAgent

/// `moragent generate`: a continuation from a model folder.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate a continuation of a prompt (text or token ids).")

    @Option(help: "A Hugging Face model folder.") var model: String
    @Option(help: "The prompt text (encoded without added special tokens).") var prompt: String?
    @Option(help: "The prompt as comma-separated token ids.") var promptIds: String?
    @Option(help: "Most tokens to generate.") var maxNewTokens = 64
    @Option(help: "Softmax temperature; 0 is greedy.") var temperature: Float = 0
    @Option(help: "Keep the K most likely tokens (0: all).") var topK = 0
    @Option(help: "Nucleus mass to keep (1: all).") var topP: Float = 1
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Stop once the text contains this string (repeatable).") var stop: [String] = []
    @Flag(help: "Keep going past the model's end-of-sequence tokens.") var ignoreEos = false
    @Flag(help: "Print one JSON object: ids, text, logprobs, entropies, stop_reason.") var json = false

    func validate() throws {
        guard (prompt == nil) != (promptIds == nil) else { throw ValidationError("give exactly one of --prompt and --prompt-ids") }
    }

    func run() throws {
        let engine = try Engine(folder: model)
        var parameters = SamplingParameters()
        parameters.maxNewTokens = maxNewTokens
        parameters.temperature = temperature
        parameters.topK = topK
        parameters.topP = topP
        parameters.seed = seed
        parameters.stopStrings = stop
        if ignoreEos { parameters.stopTokenIDs = [] }
        let result: GenerationResult
        if let prompt {
            result = try engine.generate(prompt: prompt, parameters: parameters)
        } else {
            var ids: [Int32] = []
            for part in promptIds!.split(separator: ",", omittingEmptySubsequences: false) {
                guard let id = Int32(part.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--prompt-ids: \"\(part)\" is not a token id")
                }
                ids.append(id)
            }
            result = try engine.generate(prompts: [ids], parameters: parameters)[0]
        }
        if json {
            let object: JSONValue = .object([
                ("ids", .array(result.ids.map { .number(Double($0)) })),
                ("text", .string(result.text)),
                ("logprobs", .array(result.logProbabilities.map { .number(Double($0)) })),
                ("entropies", .array(result.entropies.map { .number(Double($0)) })),
                ("stop_reason", .string(result.stopReason.rawValue)),
            ])
            print(object.serialized)
        } else {
            print(engine.tokenizer == nil ? result.ids.map(String.init).joined(separator: ",") : result.text)
        }
    }
}
