/// How a LoRA expert is shaped: rank, scale and which projections it adapts (DESIGN.md §3).
public struct LoRAConfiguration: Equatable, Sendable {
    /// Default rank `r` of every adapted module.
    public var rank: Int
    /// `lora_alpha`; the scale is `alpha / r`, or `alpha / √r` with rsLoRA.
    public var alpha: Float
    /// rsLoRA scaling (Kalajdzievski 2023): `alpha / √r`, which keeps updates stable as r grows.
    public var useRSLoRA: Bool
    /// The projections adapted in every layer.
    public var targetModules: Set<ProjectionKind>
    /// Per-module ranks that differ from `rank`, by full module name
    /// (`model.layers.1.self_attn.q_proj`), as PEFT's `rank_pattern` records them.
    public var rankOverrides: [String: Int]
    /// Per-module alphas that differ from `alpha`, by full module name (PEFT's `alpha_pattern`).
    public var alphaOverrides: [String: Float]

    /// PA-MoE's experts by default: r = 32, alpha = 64, q_proj and v_proj (DESIGN.md §3).
    public init(rank: Int = 32, alpha: Float = 64, useRSLoRA: Bool = false,
                targetModules: Set<ProjectionKind> = [.q, .v],
                rankOverrides: [String: Int] = [:], alphaOverrides: [String: Float] = [:]) {
        self.rank = rank
        self.alpha = alpha
        self.useRSLoRA = useRSLoRA
        self.targetModules = targetModules
        self.rankOverrides = rankOverrides
        self.alphaOverrides = alphaOverrides
    }

    /// Throws when a field is out of range.
    public func validate() throws {
        guard rank > 0, rank <= 65536 else { throw MoRAgentError.invalidArgument("LoRA rank must be in 1...65536, got \(rank)") }
        guard alpha.isFinite else { throw MoRAgentError.invalidArgument("LoRA alpha must be finite") }
        guard !targetModules.isEmpty else { throw MoRAgentError.invalidArgument("LoRA needs at least one target module") }
        for (name, r) in rankOverrides where r <= 0 || r > 65536 { throw MoRAgentError.invalidArgument("LoRA rank for \(name) must be in 1...65536") }
        for (name, a) in alphaOverrides where !a.isFinite { throw MoRAgentError.invalidArgument("LoRA alpha for \(name) must be finite") }
    }

    /// The rank of module `kind` in layer `layer`.
    public func rank(layer: Int, kind: ProjectionKind) -> Int {
        rankOverrides[LoRAConfiguration.moduleName(layer: layer, kind: kind)] ?? rank
    }

    /// The scale `s` of module `kind` in layer `layer`, as PEFT computes it.
    public func scale(layer: Int, kind: ProjectionKind) -> Float {
        let name = LoRAConfiguration.moduleName(layer: layer, kind: kind)
        let r = Float(rankOverrides[name] ?? rank)
        let a = alphaOverrides[name] ?? alpha
        return useRSLoRA ? a / r.squareRoot() : a / r
    }

    /// The Hugging Face module path of a projection (`model.layers.3.mlp.up_proj`).
    public static func moduleName(layer: Int, kind: ProjectionKind) -> String {
        let block: String
        switch kind {
        case .q, .k, .v, .o: block = "self_attn"
        case .gate, .up, .down: block = "mlp"
        }
        return "model.layers.\(layer).\(block).\(kind.rawValue)"
    }
}
