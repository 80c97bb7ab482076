#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Hugging Face PEFT's on-disk LoRA format: `adapter_config.json` + `adapter_model.safetensors`
/// with keys like `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, so experts
/// move both ways between this engine and PEFT (DESIGN.md §3, notes/anchor-systems.md §D).
public enum PEFTAdapter {
    static let prefix = "base_model.model."

    /// Reads a PEFT LoRA adapter folder as an expert for `model`. Honours `lora_alpha`, `use_rslora`,
    /// `rank_pattern` and `alpha_pattern` (ranks come from the tensors themselves); rejects what
    /// it cannot represent (DoRA, LoRA biases, fan-in-fan-out layers, embedding LoRA) naming it.
    public static func load(folder: String, model: ModelConfig, name: String? = nil) throws -> LoRAExpert {
        let configPath = joinPath(folder, "adapter_config.json")
        let weightsPath = joinPath(folder, "adapter_model.safetensors")
        let json = try readJSONFile(configPath)
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: configPath, reason: reason) }
        guard json.objectValue != nil else { throw bad("not a JSON object") }
        guard let type = json["peft_type"]?.stringValue else { throw bad("missing \"peft_type\"") }
        guard type == "LORA" else { throw MoRAgentError.unsupported("\(configPath): peft_type \"\(type)\" (only LORA)") }
        guard let rank = json["r"]?.intValue, rank > 0 else { throw bad("\"r\" is not a positive integer") }
        guard let alpha = json["lora_alpha"]?.doubleValue, alpha.isFinite else { throw bad("\"lora_alpha\" is not a number") }
        let rslora = json["use_rslora"]?.boolValue ?? false
        if json["use_dora"]?.boolValue == true { throw MoRAgentError.unsupported("\(configPath): DoRA adapters") }
        if json["fan_in_fan_out"]?.boolValue == true { throw MoRAgentError.unsupported("\(configPath): fan_in_fan_out layers") }
        if let bias = json["bias"]?.stringValue, bias != "none" { throw MoRAgentError.unsupported("\(configPath): bias \"\(bias)\"") }
        if json["lora_bias"]?.boolValue == true { throw MoRAgentError.unsupported("\(configPath): lora_bias") }
        func patterns(_ key: String) throws -> [(String, Double)] {
            guard let v = json[key], !v.isNull else { return [] }
            guard let o = v.objectValue else { throw bad("\"\(key)\" is not an object") }
            return try o.map { k, v in
                guard let x = v.doubleValue, x.isFinite else { throw bad("\"\(key)\" entry \"\(k)\" is not a number") }
                return (k, x)
            }
        }
        let rankPattern = try patterns("rank_pattern"), alphaPattern = try patterns("alpha_pattern")

        let file = try SafeTensorsFile(path: weightsPath)
        var a: [LoRAModuleKey: Tensor] = [:], b: [LoRAModuleKey: Tensor] = [:]
        for key in file.entries.keys.sorted() {
            guard let (module, isA) = parseKey(key) else {
                throw MoRAgentError.unsupported("\(weightsPath): tensor \"\(key)\" is not a LoRA A/B weight of a decoder projection")
            }
            let t = try file.tensor(key)
            guard t.shape.count == 2 else { throw MoRAgentError.malformedFile(path: weightsPath, reason: "tensor \"\(key)\" is not a matrix") }
            if isA { a[module] = t } else { b[module] = t }
        }
        var modules: [LoRAModuleKey: LoRAModule] = [:]
        var rankOverrides: [String: Int] = [:], alphaOverrides: [String: Float] = [:]
        var targets: Set<ProjectionKind> = []
        for key in a.keys.sorted() {
            let at = a[key]!
            let moduleName = LoRAConfiguration.moduleName(layer: key.layer, kind: key.kind)
            guard let bt = b[key] else { throw MoRAgentError.malformedFile(path: weightsPath, reason: "\(moduleName) has lora_A but no lora_B") }
            guard bt.shape[1] == at.shape[0] else {
                throw MoRAgentError.malformedFile(path: weightsPath, reason: "\(moduleName): lora_A \(at.shape) and lora_B \(bt.shape) disagree on the rank")
            }
            let r = at.shape[0]
            if let (_, pr) = matchPattern(rankPattern, moduleName), Int(pr) != r {
                throw MoRAgentError.malformedFile(path: weightsPath, reason: "\(moduleName) has rank \(r) but rank_pattern says \(Int(pr))")
            }
            if r != rank { rankOverrides[moduleName] = r }
            var moduleAlpha = Float(alpha)
            if let (_, pa) = matchPattern(alphaPattern, moduleName) { moduleAlpha = Float(pa); alphaOverrides[moduleName] = moduleAlpha }
            let scale = rslora ? moduleAlpha / Float(r).squareRoot() : moduleAlpha / Float(r)
            modules[key] = try LoRAModule(a: at, b: bt, scale: scale)
            targets.insert(key.kind)
        }
        if let orphan = b.keys.first(where: { a[$0] == nil }) {
            throw MoRAgentError.malformedFile(path: weightsPath, reason: "\(LoRAConfiguration.moduleName(layer: orphan.layer, kind: orphan.kind)) has lora_B but no lora_A")
        }
        guard !modules.isEmpty else { throw MoRAgentError.malformedFile(path: weightsPath, reason: "no LoRA tensors") }
        let configuration = LoRAConfiguration(rank: rank, alpha: Float(alpha), useRSLoRA: rslora, targetModules: targets,
                                              rankOverrides: rankOverrides, alphaOverrides: alphaOverrides)
        let lastComponent = folder.split(separator: "/").last.map(String.init) ?? "expert"
        return try LoRAExpert(name: name ?? lastComponent, configuration: configuration, modules: modules, model: model)
    }

    /// Writes `expert` as a PEFT adapter folder (created if missing). Each file is written
    /// atomically (temporary file, fsync, rename).
    public static func save(_ expert: LoRAExpert, folder: String, baseModel: String = "") throws {
        if !fileExists(folder) && mkdir(folder, 0o755) != 0 {
            throw MoRAgentError.io(path: folder, reason: String(cString: strerror(errno)))
        }
        let c = expert.configuration
        let keys = expert.modules.keys.sorted()
        var tensors: [(name: String, tensor: Tensor)] = []
        for key in keys {
            let m = expert.modules[key]!
            let base = prefix + LoRAConfiguration.moduleName(layer: key.layer, kind: key.kind)
            tensors.append((base + ".lora_A.weight", m.a))
            tensors.append((base + ".lora_B.weight", m.b))
        }
        let targets = ProjectionKind.allCases.filter { k in keys.contains { $0.kind == k } }.map { JSONValue.string($0.rawValue) }
        let config: JSONValue = .object([
            ("peft_type", .string("LORA")),
            ("task_type", .string("CAUSAL_LM")),
            ("base_model_name_or_path", .string(baseModel)),
            ("r", .number(Double(c.rank))),
            ("lora_alpha", .number(Double(c.alpha))),
            ("use_rslora", .bool(c.useRSLoRA)),
            ("target_modules", .array(targets)),
            ("rank_pattern", .object(c.rankOverrides.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })),
            ("alpha_pattern", .object(c.alphaOverrides.sorted { $0.key < $1.key }.map { ($0.key, .number(Double($0.value))) })),
            ("lora_dropout", .number(0)),
            ("bias", .string("none")),
            ("fan_in_fan_out", .bool(false)),
            ("use_dora", .bool(false)),
            ("init_lora_weights", .bool(true)),
            ("inference_mode", .bool(true)),
            ("modules_to_save", .null),
        ])
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: joinPath(folder, "adapter_model.safetensors"))
        try writeFileAtomically(Array(config.serialized.utf8), to: joinPath(folder, "adapter_config.json"))
    }

    /// `base_model.model.model.layers.N.(self_attn|mlp).X_proj.lora_(A|B).weight` → (key, isA).
    static func parseKey(_ key: String) -> (LoRAModuleKey, Bool)? {
        guard key.hasPrefix(prefix) else { return nil }
        let parts = key.dropFirst(prefix.count).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 7, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]), layer >= 0,
              let kind = ProjectionKind(rawValue: String(parts[4])), parts[6] == "weight" else { return nil }
        let expectedBlock: Substring = [.q, .k, .v, .o].contains(kind) ? "self_attn" : "mlp"
        guard parts[3] == expectedBlock, parts[5] == "lora_A" || parts[5] == "lora_B" else { return nil }
        return (LoRAModuleKey(layer: layer, kind: kind), parts[5] == "lora_A")
    }

    /// The first pattern that matches `moduleName` as PEFT matches them: the pattern, read as a
    /// regular expression, must match a dot-separated suffix of the name (`(.*\.)?(pattern)$`).
    static func matchPattern(_ patterns: [(String, Double)], _ moduleName: String) -> (String, Double)? {
        for (pattern, value) in patterns {
            if moduleName == pattern || moduleName.hasSuffix("." + pattern) { return (pattern, value) }
            if let regex = try? Regex("^(.*\\.)?(\(pattern))$"), moduleName.wholeMatch(of: regex) != nil { return (pattern, value) }
        }
        return nil
    }
}
