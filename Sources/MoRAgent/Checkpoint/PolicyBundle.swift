/// A trainer's whole state as one folder (DESIGN.md §8): `manifest.json` (format version,
/// configuration summary, counters, the RNG state), `experts.safetensors` (every expert's LoRA
/// tensors), `router.safetensors` (a phase router, with its temperature), `trainer.safetensors`
/// (AdamW's moments, token-router gates, the value head) and `samples.json` (the diversity
/// loss's per-expert buffers). Written atomically (`AtomicFolder`): a crash leaves the previous
/// bundle whole. Loading it into a trainer built with the same settings over the same experts
/// resumes exactly: the next update equals the one the saved trainer would have made.
public enum PolicyBundle {
    /// The manifest's format name and version.
    public static let format = "moragent.policy_bundle"
    public static let version = 1

    /// Saves `trainer`'s state to the folder `path` (replacing a previous bundle atomically).
    public static func save(_ trainer: PolicyTrainer, to path: String) throws {
        let policy = trainer.policy
        let g = trainer.generator.state
        let lora = policy.experts.experts.first?.configuration
        let manifest: JSONValue = .object([
            ("format", .string(format)), ("version", .number(Double(version))),
            ("estimator", .string(trainer.configuration.estimator.name)),
            ("expert_count", .number(Double(policy.experts.count))),
            ("lora_rank", lora.map { .number(Double($0.rank)) } ?? .null),
            ("model_hidden_size", .number(Double(policy.engine.decoder.config.hiddenSize))),
            ("model_layers", .number(Double(policy.engine.decoder.config.layerCount))),
            ("updates", .number(Double(trainer.updateCount))),
            ("optimizer_steps", .number(Double(trainer.optimizer.stepCount))),
            ("generator_state", .array([g.0, g.1, g.2, g.3].map { .string(String($0, radix: 16)) })),
            ("router_temperature", trainer.phaseRouter.map { .number(Double($0.temperature)) } ?? .null),
            ("sampling_seed", .string(String(policy.sampling.seed))),
            ("parameters", .array(trainer.parameterNames.map { .string($0) })),
        ])
        let samples: JSONValue = .array(trainer.samples.samples.map { list in
            .array(list.map { .object([("prompt", .array($0.prompt.map { .number(Double($0)) })),
                                       ("action", .array($0.action.map { .number(Double($0)) }))]) })
        })
        try AtomicFolder.write(path) { staging in
            try SafeTensorsWriter.write(expertTensors(trainer), to: staging + "/experts.safetensors")
            if let router = trainer.phaseRouter { try router.save(to: staging + "/router.safetensors") }
            var state: [(name: String, tensor: Tensor)] = []
            for (name, m) in zip(trainer.parameterNames, trainer.optimizer.moments) { state += [("m." + name, m.m), ("v." + name, m.v)] }
            if let token = trainer.tokenRouter { state += token.gates.enumerated().map { ("token_router.gates.\($0.offset)", $0.element.weight) } }
            if let head = trainer.valueHead { state += [("value_head.weight", head.layer.weight), ("value_head.bias", head.layer.bias!)] }
            try SafeTensorsWriter.write(state, to: staging + "/trainer.safetensors")
            try writeFileAtomically(Array(samples.serialized.utf8), to: staging + "/samples.json")
            try writeFileAtomically(Array(manifest.serialized.utf8), to: staging + "/manifest.json")
        }
    }

    /// Every expert's A and B under the trainer's parameter names.
    static func expertTensors(_ trainer: PolicyTrainer) -> [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        for (e, expert) in trainer.policy.experts.experts.enumerated() {
            for key in expert.modules.keys.sorted() {
                let m = expert.modules[key]!, stem = "experts.\(e).layers.\(key.layer).\(key.kind.rawValue)"
                out += [(stem + ".lora_A", m.a), (stem + ".lora_B", m.b)]
            }
        }
        return out
    }

    /// Restores the state saved at `path` into `trainer` (and its policy's experts and router).
    /// Everything is read and checked before anything changes: a missing, malformed or
    /// mismatched bundle throws (naming the file and the problem) and leaves the trainer as it was.
    public static func load(from path: String, into trainer: PolicyTrainer) throws {
        let manifestPath = path + "/manifest.json"
        func bad(_ file: String, _ reason: String) -> MoRAgentError { .malformedFile(path: path + "/" + file, reason: reason) }
        let manifest = try readJSONFile(manifestPath)
        guard manifest["format"]?.stringValue == format else {
            throw bad("manifest.json", "not a MoRAgent policy bundle manifest")
        }
        guard manifest["version"]?.intValue == version else { throw bad("manifest.json", "unsupported bundle version \(manifest["version"]?.serialized ?? "none")") }
        guard manifest["estimator"]?.stringValue == trainer.configuration.estimator.name else {
            throw bad("manifest.json", "saved for estimator \(manifest["estimator"]?.stringValue ?? "?"), the trainer uses \(trainer.configuration.estimator.name)")
        }
        guard manifest["expert_count"]?.intValue == trainer.policy.experts.count else {
            throw bad("manifest.json", "saved with \(manifest["expert_count"]?.serialized ?? "?") experts, the policy has \(trainer.policy.experts.count)")
        }
        guard let names = manifest["parameters"]?.arrayValue?.compactMap(\.stringValue), names == trainer.parameterNames else {
            throw bad("manifest.json", "the saved parameter list differs from this trainer's (other experts, targets, router or estimator)")
        }
        guard let updates = manifest["updates"]?.intValue, updates >= 0, let steps = manifest["optimizer_steps"]?.intValue, steps >= 0 else {
            throw bad("manifest.json", "counters missing or negative")
        }
        guard let words = manifest["generator_state"]?.arrayValue?.compactMap({ $0.stringValue.flatMap { UInt64($0, radix: 16) } }), words.count == 4 else {
            throw bad("manifest.json", "generator_state is not four hexadecimal words")
        }
        // Read every tensor into fresh buffers first.
        let expertFile = try SafeTensorsFile(path: path + "/experts.safetensors")
        let experts = try expertTensors(trainer).map { try expertFile.tensor($0.name, expectedShape: $0.tensor.shape) }
        var router: PhaseRouter?
        if let live = trainer.phaseRouter {
            let loaded = try PhaseRouter.load(from: path + "/router.safetensors")
            guard loaded.configuration == live.configuration, loaded.modelHiddenSize == live.modelHiddenSize else {
                throw bad("router.safetensors", "the saved phase router has another configuration than the policy's")
            }
            router = loaded
        }
        let stateFile = try SafeTensorsFile(path: path + "/trainer.safetensors")
        let moments = try zip(trainer.parameterNames, trainer.optimizer.moments).map {
            (try stateFile.tensor("m." + $0.0, expectedShape: $0.1.m.shape), try stateFile.tensor("v." + $0.0, expectedShape: $0.1.v.shape))
        }
        let gates = try trainer.tokenRouter?.gates.enumerated().map { try stateFile.tensor("token_router.gates.\($0.offset)", expectedShape: $0.element.weight.shape) }
        let head = try trainer.valueHead.map { h in
            (try stateFile.tensor("value_head.weight", expectedShape: h.layer.weight.shape), try stateFile.tensor("value_head.bias", expectedShape: h.layer.bias!.shape))
        }
        guard let lists = try readJSONFile(path + "/samples.json").arrayValue, lists.count == trainer.policy.experts.count else {
            throw bad("samples.json", "expected one sample list per expert")
        }
        var buffer = ExpertSampleBuffer(experts: trainer.policy.experts.count, capacity: trainer.configuration.objective.diversity.bufferCapacity)
        let vocabulary = Int32(trainer.policy.engine.decoder.config.vocabularySize)
        for (k, list) in lists.enumerated() {
            for entry in list.arrayValue ?? [] {
                func ids(_ key: String) throws -> [Int32] {
                    guard let values = entry[key]?.arrayValue?.compactMap({ $0.intValue.map(Int32.init) }),
                          values.count == entry[key]?.arrayValue?.count, values.allSatisfy({ (0..<vocabulary).contains($0) }) else {
                        throw bad("samples.json", "a sample's \(key) is not a list of token ids")
                    }
                    return values
                }
                do { try buffer.record(ExpertSample(prompt: try ids("prompt"), action: try ids("action")), expert: k) }
                catch let e as MoRAgentError { if case .malformedFile = e { throw e }; throw bad("samples.json", "\(e)") }
            }
        }
        // Commit.
        for (live, saved) in zip(expertTensors(trainer), experts) { live.tensor.pointer.update(from: saved.pointer, count: saved.count) }
        if let live = trainer.phaseRouter, let router {
            for (l, s) in zip(live.namedTensors, router.namedTensors) { l.tensor.pointer.update(from: s.tensor.pointer, count: s.tensor.count) }
            live.temperature = router.temperature
        }
        for (live, saved) in zip(trainer.optimizer.moments, moments) {
            live.m.pointer.update(from: saved.0.pointer, count: saved.0.count)
            live.v.pointer.update(from: saved.1.pointer, count: saved.1.count)
        }
        if let gates, let token = trainer.tokenRouter {
            for (l, s) in zip(token.gates, gates) { l.weight.pointer.update(from: s.pointer, count: s.count) }
        }
        if let head, let live = trainer.valueHead {
            live.layer.weight.pointer.update(from: head.0.pointer, count: head.0.count)
            live.layer.bias!.pointer.update(from: head.1.pointer, count: head.1.count)
        }
        trainer.optimizer.restore(stepCount: steps)
        trainer.updateCount = updates
        trainer.generator = SeededGenerator(state: (words[0], words[1], words[2], words[3]))
        trainer.samples = buffer
    }
}
