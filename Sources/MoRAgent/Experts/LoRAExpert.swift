/// Where a LoRA module sits: a layer and a projection.
public struct LoRAModuleKey: Hashable, Sendable, Comparable {
    /// Layer index.
    public let layer: Int
    /// Projection.
    public let kind: ProjectionKind

    /// The key of `kind` in `layer`.
    public init(layer: Int, kind: ProjectionKind) {
        self.layer = layer
        self.kind = kind
    }

    public static func < (a: LoRAModuleKey, b: LoRAModuleKey) -> Bool {
        (a.layer, ProjectionKind.allCases.firstIndex(of: a.kind)!) < (b.layer, ProjectionKind.allCases.firstIndex(of: b.kind)!)
    }
}

/// One LoRA expert: a set of adapted projections over a frozen base (DESIGN.md §3). In PA-MoE
/// each expert is one of K such adapters; in Mixture-of-Roles each role owns a group of them.
public final class LoRAExpert: @unchecked Sendable {
    /// A name for logs and files.
    public var name: String
    /// The shape it was built with.
    public let configuration: LoRAConfiguration
    /// The adapted modules.
    public let modules: [LoRAModuleKey: LoRAModule]

    /// A new expert for a model of `model`, initialised as PEFT does (B = 0).
    public init(name: String, configuration: LoRAConfiguration, model: ModelConfig, seed: UInt64) throws {
        try configuration.validate()
        self.name = name
        self.configuration = configuration
        var generator = SeededGenerator(seed: seed)
        var modules: [LoRAModuleKey: LoRAModule] = [:]
        for layer in 0..<model.layerCount {
            for kind in ProjectionKind.allCases where configuration.targetModules.contains(kind) {
                let (inF, outF) = model.projectionShape(kind)
                modules[LoRAModuleKey(layer: layer, kind: kind)] = LoRAModule(
                    rank: configuration.rank(layer: layer, kind: kind), inFeatures: inF, outFeatures: outF,
                    scale: configuration.scale(layer: layer, kind: kind), generator: &generator)
            }
        }
        self.modules = modules
    }

    /// An expert from given modules (PEFT import); every module must fit `model`.
    public init(name: String, configuration: LoRAConfiguration, modules: [LoRAModuleKey: LoRAModule], model: ModelConfig) throws {
        for key in modules.keys.sorted() {
            let m = modules[key]!
            guard key.layer >= 0, key.layer < model.layerCount else {
                throw MoRAgentError.invalidArgument("expert \(name): layer \(key.layer) is outside the model's \(model.layerCount) layers")
            }
            let (inF, outF) = model.projectionShape(key.kind)
            guard m.inFeatures == inF, m.outFeatures == outF else {
                throw MoRAgentError.invalidArgument("expert \(name): \(LoRAConfiguration.moduleName(layer: key.layer, kind: key.kind)) is [\(m.outFeatures) x \(m.inFeatures)] but the model's projection is [\(outF) x \(inF)]")
            }
        }
        self.name = name
        self.configuration = configuration
        self.modules = modules
    }

    /// Number of trainable parameters.
    public var parameterCount: Int { modules.values.reduce(0) { $0 + $1.a.count + $1.b.count } }
}

extension ModelConfig {
    /// `(in, out)` features of a projection.
    public func projectionShape(_ kind: ProjectionKind) -> (in: Int, out: Int) {
        let hd = headCount * headDimension
        switch kind {
        case .q: return (hiddenSize, hd)
        case .k, .v: return (hiddenSize, keyValueWidth)
        case .o: return (hd, hiddenSize)
        case .gate, .up: return (hiddenSize, intermediateSize)
        case .down: return (intermediateSize, hiddenSize)
        }
    }
}
