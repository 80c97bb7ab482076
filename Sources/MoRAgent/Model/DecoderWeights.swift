/// The seven linear projections of a decoder layer, by their Hugging Face module names
/// (also the names LoRA `target_modules` use).
public enum ProjectionKind: String, CaseIterable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"
}

/// One decoder layer's weights, f32, in Hugging Face's `[out, in]` layout. q/k/v are stored
/// fused as one `[(H+2·KVH)·D, C]` matrix and gate/up as one `[2·I, C]` matrix, so each pair of
/// products is one BLAS call (one pass over the input, one sgemv per layer at decode).
public final class DecoderLayerWeights: @unchecked Sendable {
    /// `[C]` RMSNorm before attention.
    public let inputNorm: Tensor
    /// `[(H+2·KVH)·D, C]`: rows of q, then k, then v.
    public let qkv: Tensor
    /// `[(H+2·KVH)·D]` or nil.
    public let qkvBias: Tensor?
    /// `[C, H·D]`.
    public let output: Tensor
    /// `[C]` or nil.
    public let outputBias: Tensor?
    /// `[C]` RMSNorm before the MLP.
    public let postAttentionNorm: Tensor
    /// `[2·I, C]`: rows of gate, then up.
    public let gateUp: Tensor
    /// `[2·I]` or nil.
    public let gateUpBias: Tensor?
    /// `[C, I]`.
    public let down: Tensor
    /// `[C]` or nil.
    public let downBias: Tensor?

    init(config c: ModelConfig) {
        let w = c.hiddenSize, i = c.intermediateSize
        inputNorm = Tensor(zeros: [w])
        qkv = Tensor(zeros: [c.qkvWidth, w])
        qkvBias = c.qkvBias ? Tensor(zeros: [c.qkvWidth]) : nil
        output = Tensor(zeros: [w, c.headCount * c.headDimension])
        outputBias = c.outputBias ? Tensor(zeros: [w]) : nil
        postAttentionNorm = Tensor(zeros: [w])
        gateUp = Tensor(zeros: [2 * i, w])
        gateUpBias = c.mlpBias ? Tensor(zeros: [2 * i]) : nil
        down = Tensor(zeros: [w, i])
        downBias = c.mlpBias ? Tensor(zeros: [w]) : nil
    }

    /// The rows of the fused matrix that hold projection `kind`, and that matrix.
    public func slice(of kind: ProjectionKind, config c: ModelConfig) -> (matrix: Tensor, bias: Tensor?, rows: Range<Int>) {
        let q = c.headCount * c.headDimension, kv = c.keyValueWidth, i = c.intermediateSize
        switch kind {
        case .q: return (qkv, qkvBias, 0..<q)
        case .k: return (qkv, qkvBias, q..<(q + kv))
        case .v: return (qkv, qkvBias, (q + kv)..<(q + 2 * kv))
        case .o: return (output, outputBias, 0..<c.hiddenSize)
        case .gate: return (gateUp, gateUpBias, 0..<i)
        case .up: return (gateUp, gateUpBias, i..<(2 * i))
        case .down: return (down, downBias, 0..<c.hiddenSize)
        }
    }
}

/// All weights of a decoder, f32.
public final class DecoderWeights: @unchecked Sendable {
    /// The configuration the shapes follow.
    public let config: ModelConfig
    /// `[V, C]` token embeddings.
    public let embedding: Tensor
    /// Layers in order.
    public let layers: [DecoderLayerWeights]
    /// `[C]` final RMSNorm.
    public let finalNorm: Tensor
    /// `[V, C]`; the same storage as `embedding` when tied.
    public let lmHead: Tensor
    /// How many stored elements had each on-disk dtype (for `moragent inspect`); empty for built weights.
    public private(set) var storedDTypes: [String: Int] = [:]

    /// Zero weights of the right shapes.
    public init(config: ModelConfig) {
        self.config = config
        embedding = Tensor(zeros: [config.vocabularySize, config.hiddenSize])
        layers = (0..<config.layerCount).map { _ in DecoderLayerWeights(config: config) }
        finalNorm = Tensor(zeros: [config.hiddenSize])
        lmHead = config.tieWordEmbeddings ? embedding : Tensor(zeros: [config.vocabularySize, config.hiddenSize])
    }

    /// Random weights (benchmarks and tests): matrices uniform in ±`scale`/√fan-in, embeddings
    /// with std 0.02·`scale` (transformers' initialisation, so logits have the magnitude the
    /// PyTorch peer's random models have), norms 1.
    public static func random(config: ModelConfig, seed: UInt64, scale: Float = 1) -> DecoderWeights {
        let w = DecoderWeights(config: config)
        var rng = SeededGenerator(seed: seed)
        func fill(_ t: Tensor, bound: Float) {
            let p = t.pointer
            for i in 0..<t.count { p[i] = (rng.nextUnitFloat() * 2 - 1) * bound }
        }
        func fillMatrix(_ t: Tensor) { fill(t, bound: scale / Float(t.shape[1]).squareRoot()) }
        fill(w.embedding, bound: 0.02 * Float(3).squareRoot() * scale)
        for l in w.layers {
            for t in [l.qkv, l.output, l.gateUp, l.down] { fillMatrix(t) }
            for b in [l.qkvBias, l.outputBias, l.gateUpBias, l.downBias].compactMap({ $0 }) { fill(b, bound: 0.1 * scale) }
            l.inputNorm.pointer.update(repeating: 1, count: l.inputNorm.count)
            l.postAttentionNorm.pointer.update(repeating: 1, count: l.postAttentionNorm.count)
        }
        w.finalNorm.pointer.update(repeating: 1, count: w.finalNorm.count)
        if !config.tieWordEmbeddings { fillMatrix(w.lmHead) }
        return w
    }

    /// Loads the weights of a Hugging Face model folder (`model.safetensors`, or the shards of
    /// `model.safetensors.index.json`), converting each tensor to f32 once, checking every shape
    /// against `config`.
    public static func load(folder: String, config c: ModelConfig) throws -> DecoderWeights {
        var source = try WeightSource(folder: folder)
        let hd = c.headCount * c.headDimension, kv = c.keyValueWidth, width = c.hiddenSize, inter = c.intermediateSize
        // Every tensor the config implies, checked against the headers before any allocation, so a
        // config that disagrees with its weights fails cleanly whatever sizes it claims.
        var expected: [(String, [Int])] = [("model.embed_tokens.weight", [c.vocabularySize, width]), ("model.norm.weight", [width])]
        for i in 0..<c.layerCount {
            let p = "model.layers.\(i)."
            expected += [(p + "input_layernorm.weight", [width]), (p + "post_attention_layernorm.weight", [width]),
                         (p + "self_attn.q_proj.weight", [hd, width]), (p + "self_attn.k_proj.weight", [kv, width]),
                         (p + "self_attn.v_proj.weight", [kv, width]), (p + "self_attn.o_proj.weight", [width, hd]),
                         (p + "mlp.gate_proj.weight", [inter, width]), (p + "mlp.up_proj.weight", [inter, width]),
                         (p + "mlp.down_proj.weight", [width, inter])]
            if c.qkvBias { expected += [(p + "self_attn.q_proj.bias", [hd]), (p + "self_attn.k_proj.bias", [kv]), (p + "self_attn.v_proj.bias", [kv])] }
            if c.outputBias { expected.append((p + "self_attn.o_proj.bias", [width])) }
            if c.mlpBias { expected += [(p + "mlp.gate_proj.bias", [inter]), (p + "mlp.up_proj.bias", [inter]), (p + "mlp.down_proj.bias", [width])] }
        }
        if !c.tieWordEmbeddings { expected.append(("lm_head.weight", [c.vocabularySize, width])) }
        for (name, shape) in expected { try source.check(name, shape: shape) }

        let w = DecoderWeights(config: c)
        func read(_ name: String, _ shape: [Int], into p: UnsafeMutablePointer<Float>) throws {
            try source.read(name, shape: shape, into: p)
        }
        try read("model.embed_tokens.weight", [c.vocabularySize, width], into: w.embedding.pointer)
        for (i, l) in w.layers.enumerated() {
            let prefix = "model.layers.\(i)."
            try read(prefix + "input_layernorm.weight", [width], into: l.inputNorm.pointer)
            try read(prefix + "self_attn.q_proj.weight", [hd, width], into: l.qkv.pointer)
            try read(prefix + "self_attn.k_proj.weight", [kv, width], into: l.qkv.pointer + hd * width)
            try read(prefix + "self_attn.v_proj.weight", [kv, width], into: l.qkv.pointer + (hd + kv) * width)
            if let b = l.qkvBias {
                try read(prefix + "self_attn.q_proj.bias", [hd], into: b.pointer)
                try read(prefix + "self_attn.k_proj.bias", [kv], into: b.pointer + hd)
                try read(prefix + "self_attn.v_proj.bias", [kv], into: b.pointer + hd + kv)
            }
            try read(prefix + "self_attn.o_proj.weight", [width, hd], into: l.output.pointer)
            if let b = l.outputBias { try read(prefix + "self_attn.o_proj.bias", [width], into: b.pointer) }
            try read(prefix + "post_attention_layernorm.weight", [width], into: l.postAttentionNorm.pointer)
            try read(prefix + "mlp.gate_proj.weight", [inter, width], into: l.gateUp.pointer)
            try read(prefix + "mlp.up_proj.weight", [inter, width], into: l.gateUp.pointer + inter * width)
            try read(prefix + "mlp.down_proj.weight", [width, inter], into: l.down.pointer)
            if let b = l.gateUpBias {
                try read(prefix + "mlp.gate_proj.bias", [inter], into: b.pointer)
                try read(prefix + "mlp.up_proj.bias", [inter], into: b.pointer + inter)
            }
            if let b = l.downBias { try read(prefix + "mlp.down_proj.bias", [width], into: b.pointer) }
        }
        try read("model.norm.weight", [width], into: w.finalNorm.pointer)
        if !c.tieWordEmbeddings {
            try read("lm_head.weight", [c.vocabularySize, width], into: w.lmHead.pointer)
        }
        w.storedDTypes = source.dtypeCounts
        return w
    }
}

/// Where a model's tensors live: one safetensors file, or shards named by an index.
struct WeightSource {
    /// Tensor name → the file holding it.
    private var files: [String: SafeTensorsFile] = [:]
    /// Elements read per on-disk dtype.
    private(set) var dtypeCounts: [String: Int] = [:]
    private let description: String

    init(folder: String) throws {
        let single = joinPath(folder, "model.safetensors")
        let index = joinPath(folder, "model.safetensors.index.json")
        if fileExists(single) {
            let f = try SafeTensorsFile(path: single)
            for name in f.entries.keys { files[name] = f }
            description = single
        } else if fileExists(index) {
            let json = try readJSONFile(index)
            guard let map = json["weight_map"]?.objectValue else {
                throw MoRAgentError.malformedFile(path: index, reason: "no \"weight_map\" object")
            }
            var shards: [String: SafeTensorsFile] = [:]
            for (name, value) in map {
                guard let shard = value.stringValue, !shard.contains("/") else {
                    throw MoRAgentError.malformedFile(path: index, reason: "weight_map entry for \"\(name)\" is not a file name in the folder")
                }
                if shards[shard] == nil { shards[shard] = try SafeTensorsFile(path: joinPath(folder, shard)) }
                guard shards[shard]!.entries[name] != nil else {
                    throw MoRAgentError.malformedFile(path: joinPath(folder, shard), reason: "missing tensor \"\(name)\" that \(index) places there")
                }
                files[name] = shards[shard]
            }
            description = index
        } else {
            throw MoRAgentError.io(path: folder, reason: "no model.safetensors or model.safetensors.index.json in the folder")
        }
    }

    /// Throws unless `name` exists with `shape` and a float dtype (reads nothing).
    func check(_ name: String, shape: [Int]) throws {
        guard let f = files[name], let e = f.entries[name] else { throw MoRAgentError.malformedFile(path: description, reason: "missing tensor \"\(name)\"") }
        guard e.shape == shape else {
            throw MoRAgentError.malformedFile(path: f.path, reason: "tensor \"\(name)\" has shape \(e.shape) but the config implies \(shape)")
        }
        guard e.dtype.isConvertibleToFloat32 else {
            throw MoRAgentError.unsupported("\(f.path): tensor \"\(name)\" has dtype \(e.dtype.rawValue); weights must be F32, F16 or BF16")
        }
    }

    mutating func read(_ name: String, shape: [Int], into p: UnsafeMutablePointer<Float>) throws {
        guard let f = files[name] else { throw MoRAgentError.malformedFile(path: description, reason: "missing tensor \"\(name)\"") }
        try f.readFloat32(name, expectedShape: shape, into: p)
        if let e = f.entries[name] { dtypeCounts[e.dtype.rawValue, default: 0] += e.count }
    }
}
