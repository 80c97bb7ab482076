import XCTest
@testable import MoRAgent

/// Gradients against PyTorch + PEFT (`tools/fixtures_gradients.py`): cross-entropy over the
/// reference batch (a global mean over its 21 targets, as transformers computes it), LoRA
/// gradients of three PEFT adapters, with and without a target mask, and base-weight gradients
/// under full fine-tuning. Each tensor must match within 1e-3 relative error (‖ours − ref‖ / ‖ref‖).
final class GradientReferenceTests: XCTestCase {
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, norm = 0.0
        for (x, y) in zip(a, b) { diff += Double(x - y) * Double(x - y); norm += Double(y) * Double(y) }
        return (diff / max(norm, 1e-30)).squareRoot()
    }

    func batch(_ model: String) throws -> [[Int32]] {
        try readJSONFile(Fixtures.model(model) + "/reference.json")["batch"]!.arrayValue!.map { $0.arrayValue!.map { Int32($0.intValue!) } }
    }

    func testLoRAGradientsMatchPEFT() throws {
        for (model, expert) in [("qwen2-tiny", "expert0"), ("qwen2-tiny", "expert1"), ("llama-tiny", "expert0")] {
            let decoder = try Decoder(folder: Fixtures.model(model))
            let experts = ExpertSet(model: decoder.config)
            try experts.add(PEFTAdapter.load(folder: Fixtures.root + "/adapters/\(model)/\(expert)", model: decoder.config))
            let sequences = try batch(model)
            let folder = Fixtures.root + "/gradients/\(model)/\(expert)"
            let info = try readJSONFile(folder + "/gradients.json")
            for (file, lossKey, mask) in [("gradients", "loss", nil as [[Bool]]?),
                                          ("masked_gradients", "masked_loss", sequences.map { s in s.indices.map { $0 >= s.count - 3 } })] {
                let grads = ExpertGradients(experts: experts)
                let adapter = try ExpertMixtureAdapter(experts: experts, routes: sequences.map { _ in .expert(0) }, tokenCounts: sequences.map(\.count))
                adapter.gradients = grads
                let tape = try decoder.trainingForward(sequences, adapter: adapter)
                let (loss, dHidden, _) = try TokenCrossEntropy.lossAndGradient(
                    hidden: tape.hidden, targets: try TokenCrossEntropy.nextTokenTargets(sequences, trainOn: mask), lmHead: decoder.weights.lmHead)
                try decoder.backward(tape, hiddenGradient: dHidden)
                let expectedLoss = info[lossKey]!.doubleValue!
                XCTAssertEqual(loss, expectedLoss, accuracy: 1e-4 * abs(expectedLoss), "\(model) \(expert) \(lossKey)")
                let reference = try SafeTensorsFile(path: folder + "/\(file).safetensors")
                var compared = 0
                for (key, m) in experts.experts[0].modules {
                    let prefix = "grad." + PEFTAdapter.prefix + LoRAConfiguration.moduleName(layer: key.layer, kind: key.kind)
                    let g = grads[0, key]!
                    for (suffix, ours) in [(".lora_A.weight", g.a), (".lora_B.weight", g.b)] {
                        let ref = try reference.tensor(prefix + suffix, expectedShape: suffix.contains("_A") ? m.a.shape : m.b.shape)
                        XCTAssertLessThan(relativeError(ours.values, ref.values), 1e-3, "\(model) \(expert) \(file) \(prefix)\(suffix)")
                        compared += 1
                    }
                }
                XCTAssertEqual(compared, reference.entries.count)
            }
        }
    }

    func testFullFineTuningGradientsMatchPyTorch() throws {
        let decoder = try Decoder(folder: Fixtures.model("qwen2-tiny"))
        let sequences = try batch("qwen2-tiny")
        let grads = DecoderGradients(config: decoder.config)
        let tape = try decoder.trainingForward(sequences)
        let (loss, dHidden, _) = try TokenCrossEntropy.lossAndGradient(hidden: tape.hidden, targets: try TokenCrossEntropy.nextTokenTargets(sequences),
                                                                       lmHead: decoder.weights.lmHead, lmHeadGradient: grads.weights.lmHead)
        try decoder.backward(tape, hiddenGradient: dHidden, baseGradients: grads)
        let folder = Fixtures.root + "/gradients/qwen2-tiny/full"
        XCTAssertEqual(loss, try readJSONFile(folder + "/gradients.json")["loss"]!.doubleValue!, accuracy: 1e-3)
        let reference = try SafeTensorsFile(path: folder + "/gradients.safetensors")
        let g = grads.weights, c = decoder.config
        let q = c.headCount * c.headDimension
        let ours: [(String, [Float])] = [
            ("model.embed_tokens.weight", g.embedding.values),
            ("model.layers.0.self_attn.q_proj.weight", Array(g.layers[0].qkv.values[0..<(q * c.hiddenSize)])),
            ("model.layers.0.self_attn.q_proj.bias", Array(g.layers[0].qkvBias!.values[0..<q])),
            ("model.layers.1.mlp.down_proj.weight", g.layers[1].down.values),
            ("model.layers.1.input_layernorm.weight", g.layers[1].inputNorm.values),
            ("model.norm.weight", g.finalNorm.values),
        ]
        for (name, values) in ours {
            XCTAssertLessThan(relativeError(values, try reference.tensor("grad." + name).values), 1e-3, name)
        }
    }
}
