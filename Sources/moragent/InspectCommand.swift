import ArgumentParser
import MoRAgent

/// `moragent inspect MODEL_DIR`: what a model folder holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Architecture, parameter count, stored dtypes and memory of a model folder.")

    @Argument(help: "A Hugging Face model folder.") var modelDirectory: String
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let config = try ModelConfig.load(folder: modelDirectory)
        let weights = try DecoderWeights.load(folder: modelDirectory, config: config)
        let params = config.parameterCount
        let dtypes = weights.storedDTypes.sorted { $0.key < $1.key }
        let info: [(key: String, value: JSONValue)] = [
            ("architecture", .string(config.architecture.rawValue)),
            ("parameters", .number(Double(params))),
            ("layers", .number(Double(config.layerCount))),
            ("hidden_size", .number(Double(config.hiddenSize))),
            ("intermediate_size", .number(Double(config.intermediateSize))),
            ("heads", .number(Double(config.headCount))),
            ("kv_heads", .number(Double(config.keyValueHeadCount))),
            ("head_dim", .number(Double(config.headDimension))),
            ("vocab_size", .number(Double(config.vocabularySize))),
            ("tied_embeddings", .bool(config.tieWordEmbeddings)),
            ("rope_theta", .number(config.ropeTheta)),
            ("stored_dtypes", .object(dtypes.map { ($0.key, .number(Double($0.value))) })),
            ("memory_f32_bytes", .number(Double(params * 4))),
            ("kv_cache_bytes_per_token", .number(Double(2 * config.layerCount * config.keyValueWidth * 4))),
        ]
        if json {
            print(JSONValue.object(info).serialized)
        } else {
            for (k, v) in info { print("\(k): \(v.stringValue ?? v.serialized)") }
        }
    }
}
