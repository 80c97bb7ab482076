/// A frozen base model and its tokenizer: the immutable half of the engine (DESIGN.md §1),
/// shareable by any number of threads and policies.
public final class Engine: @unchecked Sendable {
    /// The decoder.
    public let decoder: Decoder
    /// The tokenizer from the folder's `tokenizer.json`, if it has one.
    public let tokenizer: Tokenizer?

    /// Wraps a decoder and an optional tokenizer.
    public init(decoder: Decoder, tokenizer: Tokenizer?) {
        self.decoder = decoder
        self.tokenizer = tokenizer
    }

    /// Loads a Hugging Face model folder: `config.json`, the weights, and `tokenizer.json` when present.
    public convenience init(folder: String) throws {
        let tokenizerPath = joinPath(folder, "tokenizer.json")
        let tokenizer = fileExists(tokenizerPath) ? try Tokenizer(path: tokenizerPath) : nil
        self.init(decoder: try Decoder(folder: folder), tokenizer: tokenizer)
    }

    /// The tokenizer, or an error saying the model has none.
    public func requireTokenizer() throws -> Tokenizer {
        guard let tokenizer else { throw MoRAgentError.invalidArgument("this model has no tokenizer.json; pass token ids") }
        return tokenizer
    }

    /// Generates a continuation of `prompt` (encoded without special tokens added).
    public func generate(prompt: String, parameters: SamplingParameters) throws -> GenerationResult {
        let ids = try requireTokenizer().encode(prompt)
        guard !ids.isEmpty else { throw MoRAgentError.invalidArgument("the prompt encodes to no tokens") }
        return try TextGenerator(engine: self).generate(prompts: [ids], parameters: parameters)[0]
    }

    /// Generates a continuation of each prompt of token ids, all decoded together; `progress`
    /// is told of every step and may throw to stop (see `GenerationProgress`).
    public func generate(prompts: [[Int32]], parameters: SamplingParameters,
                         progress: GenerationProgress? = nil) throws -> [GenerationResult] {
        try TextGenerator(engine: self).generate(prompts: prompts, parameters: parameters, progress: progress)
    }

    /// Generates with LoRA experts: prompt `i`'s tokens (prompt and generated) go through
    /// `routes[i]` of `experts`. `seeds` (one per prompt) replaces the samplers' default seeds
    /// (`parameters.seed + i·φ`).
    public func generate(prompts: [[Int32]], parameters: SamplingParameters, experts: ExpertSet, routes: [ExpertRoute],
                         seeds: [UInt64]? = nil) throws -> [GenerationResult] {
        guard routes.count == prompts.count else { throw MoRAgentError.invalidArgument("\(routes.count) routes for \(prompts.count) prompts") }
        _ = try ExpertMixtureAdapter(experts: experts, routes: routes, tokenCounts: routes.map { _ in 0 })  // validates the routes up front
        return try TextGenerator(engine: self).generate(prompts: prompts, parameters: parameters, seeds: seeds) { active, counts, _ in
            try ExpertMixtureAdapter(experts: experts, routes: active.map { routes[$0] }, tokenCounts: counts)
        }
    }
}
