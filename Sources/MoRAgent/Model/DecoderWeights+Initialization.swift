#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension DecoderWeights {
    /// Weights initialised as transformers' `LlamaPreTrainedModel._init_weights` does for a model
    /// trained from scratch: every linear and embedding weight drawn from N(0, `standardDeviation`²)
    /// (`initializer_range`, 0.02), biases 0, RMSNorm weights 1, and the embedding row of
    /// `paddingTokenID` zeroed (`nn.Embedding`'s `padding_idx`). Seeded: the same seed gives the
    /// same bits on every machine (Box–Muller over `SeededGenerator`).
    public static func transformersInitialized(config: ModelConfig, seed: UInt64, standardDeviation: Float = 0.02,
                                               paddingTokenID: Int32? = nil) -> DecoderWeights {
        let w = DecoderWeights(config: config)
        var rng = SeededGenerator(seed: seed)
        func fillNormal(_ t: Tensor) {
            let p = t.pointer, std = Double(standardDeviation)
            var i = 0
            while i < t.count {
                // Box–Muller: two independent standard normals from two uniforms (u1 in (0, 1]).
                let u1 = 1 - rng.nextUnitDouble(), u2 = rng.nextUnitDouble()
                let radius = (-2 * log(u1)).squareRoot(), angle = 2 * Double.pi * u2
                p[i] = Float(std * radius * cos(angle))
                if i + 1 < t.count { p[i + 1] = Float(std * radius * sin(angle)) }
                i += 2
            }
        }
        fillNormal(w.embedding)
        if let pad = paddingTokenID, pad >= 0, Int(pad) < config.vocabularySize {
            (w.embedding.pointer + Int(pad) * config.hiddenSize).update(repeating: 0, count: config.hiddenSize)
        }
        for l in w.layers {
            for t in [l.qkv, l.output, l.gateUp, l.down] { fillNormal(t) }
            for t in [l.inputNorm, l.postAttentionNorm] { t.pointer.update(repeating: 1, count: t.count) }
        }
        w.finalNorm.pointer.update(repeating: 1, count: w.finalNorm.count)
        if !config.tieWordEmbeddings { fillNormal(w.lmHead) }
        return w
    }
}
