/// K LoRA experts over one base model (PA-MoE's expert pool, DESIGN.md §3).
public final class ExpertSet: @unchecked Sendable {
    /// The base model's shapes; every expert fits them.
    public let model: ModelConfig
    /// The experts, indexed by expert id.
    public private(set) var experts: [LoRAExpert]

    /// An empty set for `model`.
    public init(model: ModelConfig) {
        self.model = model
        experts = []
    }

    /// `count` new experts named `expert0…`, each seeded with `seed + id` (B = 0: each starts as the base).
    public convenience init(model: ModelConfig, count: Int, configuration: LoRAConfiguration, seed: UInt64) throws {
        self.init(model: model)
        guard count >= 0 else { throw MoRAgentError.invalidArgument("expert count must be ≥ 0") }
        for k in 0..<count {
            try add(LoRAExpert(name: "expert\(k)", configuration: configuration, model: model, seed: seed &+ UInt64(k)))
        }
    }

    /// Adds `expert` (checked against the model) and returns its id.
    @discardableResult
    public func add(_ expert: LoRAExpert) throws -> Int {
        for key in expert.modules.keys.sorted() {
            let m = expert.modules[key]!
            let (inF, outF) = model.projectionShape(key.kind)
            guard key.layer < model.layerCount, m.inFeatures == inF, m.outFeatures == outF else {
                throw MoRAgentError.invalidArgument("expert \(expert.name) does not fit this model at \(LoRAConfiguration.moduleName(layer: key.layer, kind: key.kind))")
            }
        }
        experts.append(expert)
        return experts.count - 1
    }

    /// Number of experts.
    public var count: Int { experts.count }
}

/// Which experts a sequence's tokens go through, and with what weights.
public enum ExpertRoute: Equatable, Sendable {
    /// The base model alone (LoRA off: also the reference policy for a KL term).
    case base
    /// One expert, weight 1 (hard routing, PA-MoE's phase and trajectory routers).
    case expert(Int)
    /// A weighted mixture (soft routing): each expert's delta scaled by its weight.
    case mixture([(expert: Int, weight: Float)])

    public static func == (a: ExpertRoute, b: ExpertRoute) -> Bool {
        switch (a, b) {
        case (.base, .base): return true
        case let (.expert(x), .expert(y)): return x == y
        case let (.mixture(x), .mixture(y)): return x.count == y.count && zip(x, y).allSatisfy { $0.expert == $1.expert && $0.weight == $1.weight }
        default: return false
        }
    }
}
