extension DecoderWeights {
    /// Every stored tensor under its Hugging Face name, in the order `load(folder:config:)`
    /// reads them: the fused q/k/v and gate/up matrices (and biases) split back into `q_proj`,
    /// `k_proj`, `v_proj`, `gate_proj`, `up_proj` as views (no copies), so that
    /// `SafeTensorsWriter` writes a `model.safetensors` transformers loads. Tied embeddings are
    /// listed once, as `model.embed_tokens.weight` (what `save_pretrained` writes).
    public var huggingFaceTensors: [(name: String, tensor: Tensor)] {
        let c = config
        var out: [(name: String, tensor: Tensor)] = [("model.embed_tokens.weight", embedding)]
        for (i, l) in layers.enumerated() {
            let p = "model.layers.\(i)."
            func add(_ kind: ProjectionKind, _ module: String) {
                let (matrix, bias, rows) = l.slice(of: kind, config: c)
                out.append((p + module + "." + kind.rawValue + ".weight", matrix.rows(rows)))
                if let bias { out.append((p + module + "." + kind.rawValue + ".bias", bias.rows(rows))) }
            }
            out.append((p + "input_layernorm.weight", l.inputNorm))
            for kind in [ProjectionKind.q, .k, .v, .o] { add(kind, "self_attn") }
            out.append((p + "post_attention_layernorm.weight", l.postAttentionNorm))
            for kind in [ProjectionKind.gate, .up, .down] { add(kind, "mlp") }
        }
        out.append(("model.norm.weight", finalNorm))
        if !c.tieWordEmbeddings { out.append(("lm_head.weight", lmHead)) }
        return out
    }
}
