extension ModelConfig {
    /// The `config.json` transformers would write for this configuration (keys sorted, as its
    /// `to_json_string` sorts them), for models this library trains itself; `ModelConfig(json:)`
    /// reads it back equal. `extra` members (e.g. `pad_token_id`, `dtype`) are merged in.
    public func json(adding extra: [(key: String, value: JSONValue)] = []) -> JSONValue {
        func number(_ x: Int) -> JSONValue { .number(Double(x)) }
        func id(_ x: Int32?) -> JSONValue { x.map { .number(Double($0)) } ?? .null }
        var members: [(key: String, value: JSONValue)] = [
            ("architectures", .array([.string(architecture.rawValue)])),
            ("head_dim", number(headDimension)),
            ("hidden_act", .string("silu")),
            ("hidden_size", number(hiddenSize)),
            ("intermediate_size", number(intermediateSize)),
            ("max_position_embeddings", number(maxPositionEmbeddings)),
            ("num_attention_heads", number(headCount)),
            ("num_hidden_layers", number(layerCount)),
            ("num_key_value_heads", number(keyValueHeadCount)),
            // The shortest decimal that reads back as the same Float (1e-06, not 9.99999997e-07).
            ("rms_norm_eps", .number(Double("\(rmsNormEps)") ?? Double(rmsNormEps))),
            ("rope_theta", .number(ropeTheta)),
            ("tie_word_embeddings", .bool(tieWordEmbeddings)),
            ("vocab_size", number(vocabularySize)),
            ("bos_token_id", id(bosTokenID)),
            ("eos_token_id", eosTokenIDs.count == 1 ? id(eosTokenIDs[0]) : .array(eosTokenIDs.map { id($0) })),
        ]
        switch ropeScaling {
        case .none:
            members.append(("rope_scaling", .null))
        case .linear(let factor):
            members.append(("rope_scaling", .object([("factor", .number(factor)), ("rope_type", .string("linear"))])))
        case let .llama3(factor, low, high, original):
            members.append(("rope_scaling", .object([("factor", .number(factor)), ("high_freq_factor", .number(high)),
                                                     ("low_freq_factor", .number(low)), ("original_max_position_embeddings", .number(original)),
                                                     ("rope_type", .string("llama3"))])))
        }
        switch architecture {
        case .llama:
            members += [("model_type", .string("llama")), ("attention_bias", .bool(qkvBias)), ("mlp_bias", .bool(mlpBias))]
        case .qwen2:
            members += [("model_type", .string("qwen2")), ("use_sliding_window", .bool(slidingWindow != nil)),
                        ("sliding_window", slidingWindow.map(number) ?? .null)]
        case .mistral:
            members += [("model_type", .string("mistral")), ("sliding_window", slidingWindow.map(number) ?? .null)]
        }
        for member in extra {
            members.removeAll { $0.key == member.key }
            members.append(member)
        }
        return .object(members.sorted { $0.key < $1.key })
    }
}
