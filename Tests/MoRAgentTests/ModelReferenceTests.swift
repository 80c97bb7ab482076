import XCTest
@testable import MoRAgent

/// The decoder against transformers' own outputs on three tiny random checkpoints
/// (`tools/fixtures_models.py`): Qwen2 (q/k/v bias, tied, GQA, f32), Llama (untied, llama3 RoPE
/// scaling, rope_theta 5e5, bf16 in two shards) and Mistral (explicit head_dim 32, f16).
final class ModelReferenceTests: XCTestCase {
    struct Reference {
        let batch: [[Int32]]
        let greedy: [[Int32]]
        let logits: Tensor   // [3, 13, V], right-padded
        let hidden: Tensor   // [3, 13, C]
    }

    func reference(_ name: String) throws -> Reference {
        let folder = Fixtures.model(name)
        let json = try readJSONFile(folder + "/reference.json")
        func ids(_ key: String) -> [[Int32]] {
            json[key]!.arrayValue!.map { $0.arrayValue!.map { Int32($0.intValue!) } }
        }
        let tensors = try SafeTensorsFile(path: folder + "/reference.safetensors")
        return Reference(batch: ids("batch"), greedy: ids("greedy"),
                         logits: try tensors.tensor("logits"), hidden: try tensors.tensor("hidden"))
    }

    /// A padded batch's logits and final hidden states at every real position, within 1e-4
    /// (max abs) of transformers in f32. Our batch is packed, so this also checks that padding
    /// and masking on the transformers side and packing on ours agree.
    func testBatchLogitsAndHiddenMatchTransformers() throws {
        for name in Fixtures.modelNames {
            let decoder = try Decoder(folder: Fixtures.model(name))
            let ref = try reference(name)
            let c = decoder.config
            let out = try decoder.forward(ref.batch.map { DecoderSequence(tokens: $0, cache: KVCache(config: c)) }, logits: .all)
            let padded = ref.logits.shape[1]
            var worstLogit: Float = 0, worstHidden: Float = 0
            for (s, seq) in ref.batch.enumerated() {
                for t in 0..<seq.count {
                    let row = out.rowRanges[s].lowerBound + t
                    for v in 0..<c.vocabularySize {
                        worstLogit = max(worstLogit, abs(out.logits![row, v] - ref.logits.pointer[(s * padded + t) * c.vocabularySize + v]))
                    }
                    for j in 0..<c.hiddenSize {
                        worstHidden = max(worstHidden, abs(out.hidden[row, j] - ref.hidden.pointer[(s * padded + t) * c.hiddenSize + j]))
                    }
                }
            }
            XCTAssertLessThan(worstLogit, 1e-4, "\(name) logits")
            XCTAssertLessThan(worstHidden, 1e-4, "\(name) hidden states")
        }
    }

    /// 20-token greedy continuations, decoded with the KV cache, are transformers' tokens exactly
    /// (EOS does not stop these: the reference ignores it too).
    func testGreedyContinuationsMatchTransformers() throws {
        for name in Fixtures.modelNames {
            let decoder = try Decoder(folder: Fixtures.model(name))
            let ref = try reference(name)
            for (prompt, expected) in zip(ref.batch, ref.greedy) {
                let cache = KVCache(config: decoder.config)
                var out = try decoder.forward([DecoderSequence(tokens: prompt, cache: cache)], logits: .last)
                var generated: [Int32] = []
                for _ in 0..<expected.count {
                    let next = Int32(TokenSampler.argmax(out.logits!.pointer, count: decoder.config.vocabularySize))
                    generated.append(next)
                    out = try decoder.forward([DecoderSequence(tokens: [next], cache: cache)], logits: .last)
                }
                XCTAssertEqual(generated, expected, "\(name) greedy continuation of \(prompt)")
            }
        }
    }

    /// The config fields that differ between the three fixtures are read as transformers reads them.
    func testConfigsParse() throws {
        let qwen = try ModelConfig.load(folder: Fixtures.model("qwen2-tiny"))
        XCTAssertEqual(qwen.architecture, .qwen2)
        XCTAssertTrue(qwen.tieWordEmbeddings && qwen.qkvBias)
        XCTAssertEqual(qwen.keyValueHeadCount, 2)
        XCTAssertNil(qwen.slidingWindow)
        let llama = try ModelConfig.load(folder: Fixtures.model("llama-tiny"))
        XCTAssertEqual(llama.ropeTheta, 500_000)
        XCTAssertEqual(llama.ropeScaling, .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 64))
        XCTAssertFalse(llama.tieWordEmbeddings)
        let mistral = try ModelConfig.load(folder: Fixtures.model("mistral-tiny"))
        XCTAssertEqual(mistral.headDimension, 32)
        XCTAssertEqual(mistral.eosTokenIDs, [2])
        // The RoPE frequencies after llama3 scaling equal transformers' inv_freq.
        let expected = try readJSONFile(Fixtures.model("llama-tiny") + "/reference.json")["rope_inv_freq"]!.arrayValue!.map { Float($0.doubleValue!) }
        let ours = RotaryEmbedding(config: llama).inverseFrequencies
        for (a, b) in zip(ours, expected) { XCTAssertEqual(a, b, accuracy: abs(b) * 1e-6) }
    }

    /// Weights stored as bf16 and f16 are recorded as such; tied models need no lm_head tensor.
    func testStoredDTypes() throws {
        for (name, dtype) in [("qwen2-tiny", "F32"), ("llama-tiny", "BF16"), ("mistral-tiny", "F16")] {
            let w = try DecoderWeights.load(folder: Fixtures.model(name), config: try ModelConfig.load(folder: Fixtures.model(name)))
            XCTAssertEqual(Array(w.storedDTypes.keys), [dtype], name)
        }
    }
}
