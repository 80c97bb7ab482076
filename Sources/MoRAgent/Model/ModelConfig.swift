/// The architectures the decoder implements. All three are the same Llama-family block
/// (pre-RMSNorm, GQA attention with RoPE, SwiGLU MLP); they differ in biases and defaults.
public enum DecoderArchitecture: String, CaseIterable, Sendable {
    case llama = "LlamaForCausalLM"
    case qwen2 = "Qwen2ForCausalLM"
    case mistral = "MistralForCausalLM"
}

/// How RoPE frequencies are adjusted for long contexts (`rope_scaling` / `rope_parameters`).
public enum RopeScaling: Equatable, Sendable {
    /// Plain RoPE.
    case none
    /// Position interpolation: every frequency divided by `factor`.
    case linear(factor: Double)
    /// Llama 3.1's piecewise scaling (low frequencies divided by `factor`, high kept, a smooth
    /// ramp in between), as transformers' `_compute_llama3_parameters` defines it.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Double)
}

/// The fields of a Hugging Face `config.json` that the decoder needs, validated.
public struct ModelConfig: Equatable, Sendable {
    /// Which architecture (from `architectures[0]`).
    public var architecture: DecoderArchitecture
    /// Model width `C`.
    public var hiddenSize: Int
    /// MLP width `I`.
    public var intermediateSize: Int
    /// Number of decoder layers.
    public var layerCount: Int
    /// Query heads `H`.
    public var headCount: Int
    /// Key/value heads (GQA); divides `headCount`.
    public var keyValueHeadCount: Int
    /// Width of one head `D` (`head_dim`, else `hiddenSize / headCount`).
    public var headDimension: Int
    /// Vocabulary size `V`.
    public var vocabularySize: Int
    /// RMSNorm epsilon.
    public var rmsNormEps: Float
    /// RoPE base.
    public var ropeTheta: Double
    /// RoPE frequency scaling.
    public var ropeScaling: RopeScaling
    /// Whether the LM head reuses the token embedding matrix.
    public var tieWordEmbeddings: Bool
    /// Bias on q/k/v projections (always for Qwen2; `attention_bias` for Llama).
    public var qkvBias: Bool
    /// Bias on the output projection (`attention_bias` for Llama; never for Qwen2/Mistral).
    public var outputBias: Bool
    /// Bias on the MLP projections (`mlp_bias`, Llama only).
    public var mlpBias: Bool
    /// Longest context the model was configured for.
    public var maxPositionEmbeddings: Int
    /// Sliding attention window, if the model uses one.
    public var slidingWindow: Int?
    /// Beginning-of-sequence token, if any.
    public var bosTokenID: Int32?
    /// End-of-sequence tokens (generation stops at any of them).
    public var eosTokenIDs: [Int32]

    /// Parses and validates `config.json` content; `path` is only for error messages.
    public init(json: JSONValue, path: String) throws {
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: path, reason: reason) }
        guard json.objectValue != nil else { throw bad("not a JSON object") }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let v = json[key], !v.isNull else {
                if let value { return value }
                throw bad("missing \"\(key)\"")
            }
            guard let i = v.intValue else { throw bad("\"\(key)\" is not an integer") }
            return i
        }
        func double(_ object: JSONValue, _ key: String) throws -> Double? {
            guard let v = object[key], !v.isNull else { return nil }
            guard let d = v.doubleValue, d.isFinite else { throw bad("\"\(key)\" is not a number") }
            return d
        }
        guard let names = json["architectures"]?.arrayValue, let first = names.first?.stringValue else {
            throw bad("missing \"architectures\"")
        }
        guard let arch = DecoderArchitecture(rawValue: first) else {
            throw MoRAgentError.unsupported("\(path): architecture \"\(first)\" (supported: \(DecoderArchitecture.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        architecture = arch
        hiddenSize = try int("hidden_size")
        intermediateSize = try int("intermediate_size")
        layerCount = try int("num_hidden_layers")
        headCount = try int("num_attention_heads")
        keyValueHeadCount = try int("num_key_value_heads", default: headCount)
        vocabularySize = try int("vocab_size")
        guard hiddenSize > 0, intermediateSize > 0, layerCount > 0, headCount > 0, keyValueHeadCount > 0, vocabularySize > 0 else {
            throw bad("sizes must be positive")
        }
        guard headCount % keyValueHeadCount == 0 else {
            throw bad("num_attention_heads (\(headCount)) is not a multiple of num_key_value_heads (\(keyValueHeadCount))")
        }
        if let hd = json["head_dim"], !hd.isNull {
            guard let d = hd.intValue, d > 0 else { throw bad("\"head_dim\" is not a positive integer") }
            headDimension = d
        } else {
            guard hiddenSize % headCount == 0 else { throw bad("hidden_size is not a multiple of num_attention_heads") }
            headDimension = hiddenSize / headCount
        }
        guard headDimension % 2 == 0 else { throw bad("head dimension \(headDimension) is odd; RoPE needs pairs") }
        // Sizes beyond any real model are rejected here, before shapes are multiplied (which
        // could overflow) or memory is allocated for them. Counted in Double so the check cannot trap.
        let limits: [(String, Int, Int)] = [("hidden_size", hiddenSize, 1 << 20), ("intermediate_size", intermediateSize, 1 << 22),
                                            ("num_hidden_layers", layerCount, 1 << 12), ("num_attention_heads", headCount, 1 << 12),
                                            ("head dimension", headDimension, 1 << 14), ("vocab_size", vocabularySize, 1 << 25)]
        for (name, value, limit) in limits where value > limit { throw bad("\(name) \(value) is implausibly large (limit \(limit))") }
        let h = Double(hiddenSize), heads = Double(headCount + 2 * keyValueHeadCount) * Double(headDimension)
        let parameters = Double(layerCount) * (h * heads + h * Double(headCount * headDimension) + 3 * h * Double(intermediateSize)) + 2 * Double(vocabularySize) * h
        guard parameters < 1e12 else { throw bad("the configuration describes \(parameters) parameters, more than this engine can hold") }
        rmsNormEps = Float(try double(json, "rms_norm_eps") ?? 1e-6)
        maxPositionEmbeddings = try int("max_position_embeddings", default: 4096)

        // transformers ≥ 5 writes `rope_parameters` (holding rope_theta); older files have a
        // top-level `rope_theta` and an optional `rope_scaling`.
        let ropeObject = [json["rope_parameters"], json["rope_scaling"]].compactMap { $0 }.first { !$0.isNull }
        ropeTheta = try double(json, "rope_theta") ?? (ropeObject.map { try double($0, "rope_theta") } ?? nil) ?? 10000
        ropeScaling = .none
        if let rope = ropeObject {
            guard rope.objectValue != nil else { throw bad("rope parameters are not an object") }
            let kind = rope["rope_type"]?.stringValue ?? rope["type"]?.stringValue ?? "default"
            switch kind {
            case "default": ropeScaling = .none
            case "linear":
                guard let f = try double(rope, "factor"), f > 0 else { throw bad("linear rope scaling needs a positive \"factor\"") }
                ropeScaling = .linear(factor: f)
            case "llama3":
                guard let f = try double(rope, "factor"), let lo = try double(rope, "low_freq_factor"),
                      let hi = try double(rope, "high_freq_factor"), let orig = try double(rope, "original_max_position_embeddings"),
                      f > 0, hi > lo, orig > 0 else {
                    throw bad("llama3 rope scaling needs factor, low_freq_factor < high_freq_factor and original_max_position_embeddings")
                }
                ropeScaling = .llama3(factor: f, lowFrequencyFactor: lo, highFrequencyFactor: hi, originalMaxPositions: orig)
            default:
                throw MoRAgentError.unsupported("\(path): rope type \"\(kind)\" (supported: default, linear, llama3)")
            }
        }
        guard ropeTheta > 0 else { throw bad("rope_theta must be positive") }

        let attentionBias = json["attention_bias"]?.boolValue ?? false
        switch arch {
        case .qwen2:
            qkvBias = true; outputBias = false; mlpBias = false
            tieWordEmbeddings = json["tie_word_embeddings"]?.boolValue ?? false
            let useWindow = json["use_sliding_window"]?.boolValue ?? false
            slidingWindow = useWindow ? try json["sliding_window"].flatMap { $0.isNull ? nil : try int("sliding_window") } : nil
        case .llama:
            qkvBias = attentionBias; outputBias = attentionBias
            mlpBias = json["mlp_bias"]?.boolValue ?? false
            tieWordEmbeddings = json["tie_word_embeddings"]?.boolValue ?? false
            slidingWindow = nil
        case .mistral:
            qkvBias = false; outputBias = false; mlpBias = false
            tieWordEmbeddings = json["tie_word_embeddings"]?.boolValue ?? false
            slidingWindow = try json["sliding_window"].flatMap { $0.isNull ? nil : try int("sliding_window") }
        }
        if let w = slidingWindow, w <= 0 { throw bad("sliding_window must be positive") }
        // Ids that do not fit in Int32 are dropped like non-integers: no token can have them, and
        // converting them would trap.
        bosTokenID = json["bos_token_id"]?.intValue.flatMap { Int32(exactly: $0) }
        switch json["eos_token_id"] {
        case .number?: eosTokenIDs = json["eos_token_id"]!.intValue.flatMap { Int32(exactly: $0) }.map { [$0] } ?? []
        case .array(let a)?: eosTokenIDs = a.compactMap { $0.intValue.flatMap { Int32(exactly: $0) } }
        default: eosTokenIDs = []
        }
    }

    /// Reads `config.json` from a model folder.
    public static func load(folder: String) throws -> ModelConfig {
        let path = joinPath(folder, "config.json")
        return try ModelConfig(json: try readJSONFile(path), path: path)
    }

    /// A configuration built in code (benchmarks, tests, models trained from scratch).
    public init(architecture: DecoderArchitecture = .qwen2, hiddenSize: Int, intermediateSize: Int, layerCount: Int,
                headCount: Int, keyValueHeadCount: Int, headDimension: Int? = nil, vocabularySize: Int,
                rmsNormEps: Float = 1e-6, ropeTheta: Double = 1e6, tieWordEmbeddings: Bool = true,
                maxPositionEmbeddings: Int = 4096) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.headDimension = headDimension ?? hiddenSize / headCount
        self.vocabularySize = vocabularySize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = .none
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = architecture == .qwen2
        self.outputBias = false
        self.mlpBias = false
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.slidingWindow = nil
        self.bosTokenID = nil
        self.eosTokenIDs = []
    }

    /// The shapes of `shared/bench/pytorch_peer.py`, so benchmarks compare like with like.
    public static func benchmarkShape(_ name: String) -> ModelConfig? {
        switch name {
        case "tiny":
            return ModelConfig(hiddenSize: 256, intermediateSize: 1024, layerCount: 4, headCount: 4,
                               keyValueHeadCount: 2, vocabularySize: 4096)
        case "qwen05b":
            return ModelConfig(hiddenSize: 896, intermediateSize: 4864, layerCount: 24, headCount: 14,
                               keyValueHeadCount: 2, vocabularySize: 151_936)
        default: return nil
        }
    }

    /// Width of the fused q/k/v projection output: `(H + 2·KVH)·D`.
    public var qkvWidth: Int { (headCount + 2 * keyValueHeadCount) * headDimension }
    /// Width of one position's keys (or values) in the cache: `KVH·D`.
    public var keyValueWidth: Int { keyValueHeadCount * headDimension }

    /// Number of parameters (tied embeddings counted once).
    public var parameterCount: Int {
        let c = hiddenSize, i = intermediateSize, d = headDimension
        var layer = c * qkvWidth + headCount * d * c + 3 * c * i + 2 * c
        if qkvBias { layer += qkvWidth }
        if outputBias { layer += c }
        if mlpBias { layer += 2 * i + c }
        return layerCount * layer + vocabularySize * c * (tieWordEmbeddings ? 1 : 2) + c
    }
}
