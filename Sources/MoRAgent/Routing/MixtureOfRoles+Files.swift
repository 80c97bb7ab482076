extension MixtureOfRoles {
    /// Every parameter by name: `lora{i}.{layer}.{module}.lora_A|lora_B`, `router.{role}.{layer}.{module}`,
    /// `gate.{role}.{layer}.{module}`.
    public var namedTensors: [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        for (i, e) in loras.experts.enumerated() {
            for key in e.modules.keys.sorted() {
                let m = e.modules[key]!, base = "lora\(i).\(key.layer).\(key.kind.rawValue)"
                out += [(base + ".lora_A", m.a), (base + ".lora_B", m.b)]
            }
        }
        for role in AgentRole.allCases {
            for key in routers[role.rawValue].keys.sorted() { out.append(("router.\(role).\(key.layer).\(key.kind.rawValue)", routers[role.rawValue][key]!.weight)) }
            for key in sharedGates[role.rawValue].keys.sorted() { out.append(("gate.\(role).\(key.layer).\(key.kind.rawValue)", sharedGates[role.rawValue][key]!.weight)) }
        }
        return out
    }

    /// Writes the adapter to one safetensors file (atomically), its configuration in the metadata.
    public func save(to path: String) throws {
        let c = configuration
        let meta: JSONValue = .object([
            ("format", .string("moragent.mixture_of_roles")), ("version", .number(1)),
            ("routed_counts", .array(c.routedCounts.map { .number(Double($0)) })), ("top_k", .array(c.topK.map { .number(Double($0)) })),
            ("rank", .number(Double(c.rank))), ("scale", .number(Double(c.scale))), ("shared_gate", .bool(c.sharedGate)),
            ("target_modules", .array(ProjectionKind.allCases.filter { c.targetModules.contains($0) }.map { .string($0.rawValue) })),
        ])
        try SafeTensorsWriter.write(namedTensors, metadata: ["moragent": meta.serialized], to: path)
    }

    /// Reads an adapter written by `save` for a model of `model`.
    public static func load(from path: String, model: ModelConfig) throws -> MixtureOfRoles {
        let file = try SafeTensorsFile(path: path)
        func bad(_ reason: String) -> MoRAgentError { .malformedFile(path: path, reason: reason) }
        guard let text = file.metadata["moragent"], let meta = try? JSONValue.parse(text),
              meta["format"]?.stringValue == "moragent.mixture_of_roles" else { throw bad("not a MoRAgent Mixture-of-Roles file") }
        var c = MixtureOfRolesConfiguration()
        guard let counts = meta["routed_counts"]?.arrayValue?.compactMap(\.intValue), let topK = meta["top_k"]?.arrayValue?.compactMap(\.intValue),
              let rank = meta["rank"]?.intValue, let scale = meta["scale"]?.doubleValue,
              let targets = meta["target_modules"]?.arrayValue?.compactMap({ $0.stringValue.flatMap(ProjectionKind.init(rawValue:)) }) else {
            throw bad("incomplete configuration metadata")
        }
        c.routedCounts = counts; c.topK = topK; c.rank = rank; c.scale = Float(scale)
        c.sharedGate = meta["shared_gate"]?.boolValue ?? false
        c.targetModules = Set(targets)
        let mor: MixtureOfRoles
        do { mor = try MixtureOfRoles(configuration: c, model: model, seed: 0) } catch { throw bad("\(error)") }
        for (name, t) in mor.namedTensors { try file.readFloat32(name, expectedShape: t.shape, into: t.pointer) }
        return mor
    }
}
