import XCTest
@testable import MoRAgent

/// LoRA experts against PEFT 0.21 (`tools/fixtures_adapters.py`): adapters with non-zero B,
/// plain and rsLoRA scaling, rank/alpha patterns, all seven projections, on Qwen2 and Llama.
final class PEFTParityTests: XCTestCase {
    func adapterFolder(_ model: String, _ expert: String) -> String { Fixtures.root + "/adapters/\(model)/\(expert)" }

    func batch(_ model: String) throws -> [[Int32]] {
        let json = try readJSONFile(Fixtures.model(model) + "/reference.json")
        return json["batch"]!.arrayValue!.map { $0.arrayValue!.map { Int32($0.intValue!) } }
    }

    /// Largest |ours − reference| over the real positions of the padded `[3, 13, V]` reference.
    func worst(_ out: DecoderOutput, _ reference: Tensor, batch: [[Int32]], sequences: [Int]? = nil) -> Float {
        let v = reference.shape[2], padded = reference.shape[1]
        var w: Float = 0
        for s in sequences ?? Array(batch.indices) {
            for t in 0..<batch[s].count {
                let row = out.rowRanges[s].lowerBound + t
                for j in 0..<v { w = max(w, abs(out.logits![row, j] - reference.pointer[(s * padded + t) * v + j])) }
            }
        }
        return w
    }

    func run(_ decoder: Decoder, _ batch: [[Int32]], _ experts: ExpertSet, _ routes: [ExpertRoute]) throws -> DecoderOutput {
        let adapter = try ExpertMixtureAdapter(experts: experts, routes: routes, tokenCounts: batch.map(\.count))
        return try decoder.forward(batch.map { DecoderSequence(tokens: $0, cache: KVCache(config: decoder.config)) }, logits: .all, adapter: adapter)
    }

    /// Each PEFT adapter loaded here gives PEFT's logits within 1e-4 on the whole batch.
    func testAdaptersMatchPEFT() throws {
        for (model, expert) in [("qwen2-tiny", "expert0"), ("qwen2-tiny", "expert1"), ("qwen2-tiny", "expert2"), ("llama-tiny", "expert0")] {
            let decoder = try Decoder(folder: Fixtures.model(model))
            let set = ExpertSet(model: decoder.config)
            try set.add(try PEFTAdapter.load(folder: adapterFolder(model, expert), model: decoder.config))
            let b = try batch(model)
            let out = try run(decoder, b, set, [.expert(0), .expert(0), .expert(0)])
            let reference = try SafeTensorsFile(path: adapterFolder(model, expert) + "/reference.safetensors")
            XCTAssertLessThan(worst(out, try reference.tensor("logits"), batch: b), 1e-4, "\(model) \(expert)")
            // The adapter matters at this tolerance: PEFT moved logits by far more than 1e-4.
            XCTAssertGreaterThan(try reference.tensor("delta_logits").values.map(abs).max()!, 0.1)
        }
    }

    /// PEFT's scales, including rsLoRA and the rank/alpha patterns of expert2.
    func testScalesAndPatternsAreRead() throws {
        let config = try ModelConfig.load(folder: Fixtures.model("qwen2-tiny"))
        let e1 = try PEFTAdapter.load(folder: adapterFolder("qwen2-tiny", "expert1"), model: config)
        XCTAssertTrue(e1.modules.values.allSatisfy { $0.scale == 4 })
        XCTAssertEqual(e1.modules.count, 14)
        let e2 = try PEFTAdapter.load(folder: adapterFolder("qwen2-tiny", "expert2"), model: config)
        XCTAssertEqual(e2.modules[LoRAModuleKey(layer: 1, kind: .q)]!.rank, 2)
        XCTAssertEqual(e2.modules[LoRAModuleKey(layer: 1, kind: .q)]!.scale, 8)
        XCTAssertEqual(e2.modules[LoRAModuleKey(layer: 0, kind: .v)]!.scale, 5.0 / 16)
        XCTAssertEqual(e2.modules[LoRAModuleKey(layer: 1, kind: .v)]!.scale, 1)
    }

    /// A 0.7/0.3 soft mixture of expert0 and expert1 in every projection, and a batch whose rows
    /// use expert0, expert1 and the base model, against PEFT.
    func testMixtureAndMixedBatchMatchPEFT() throws {
        let decoder = try Decoder(folder: Fixtures.model("qwen2-tiny"))
        let set = ExpertSet(model: decoder.config)
        for e in ["expert0", "expert1"] { try set.add(try PEFTAdapter.load(folder: adapterFolder("qwen2-tiny", e), model: decoder.config)) }
        let b = try batch("qwen2-tiny")
        let mixture = try SafeTensorsFile(path: Fixtures.root + "/adapters/qwen2-tiny/mixture_reference.safetensors")
        let soft = try run(decoder, b, set, Array(repeating: .mixture([(0, 0.7), (1, 0.3)]), count: 3))
        XCTAssertLessThan(worst(soft, try mixture.tensor("logits_mix"), batch: b), 1e-4)
        let mixed = try run(decoder, b, set, [.expert(0), .expert(1), .base])
        let e0 = try SafeTensorsFile(path: adapterFolder("qwen2-tiny", "expert0") + "/reference.safetensors").tensor("logits")
        let e1 = try SafeTensorsFile(path: adapterFolder("qwen2-tiny", "expert1") + "/reference.safetensors").tensor("logits")
        let base = try SafeTensorsFile(path: Fixtures.model("qwen2-tiny") + "/reference.safetensors").tensor("logits")
        XCTAssertLessThan(worst(mixed, e0, batch: b, sequences: [0]), 1e-4)
        XCTAssertLessThan(worst(mixed, e1, batch: b, sequences: [1]), 1e-4)
        XCTAssertLessThan(worst(mixed, base, batch: b, sequences: [2]), 1e-4)
    }

    /// Exporting an imported PEFT adapter writes the same tensors, byte for byte.
    func testReExportIsBitIdentical() throws {
        let config = try ModelConfig.load(folder: Fixtures.model("qwen2-tiny"))
        let original = adapterFolder("qwen2-tiny", "expert2")
        let expert = try PEFTAdapter.load(folder: original, model: config)
        let folder = Fixtures.temporaryFolder(); defer { try? FileManager.default.removeItem(atPath: folder) }
        try PEFTAdapter.save(expert, folder: folder + "/e2")
        let a = try SafeTensorsFile(path: original + "/adapter_model.safetensors")
        let b = try SafeTensorsFile(path: folder + "/e2/adapter_model.safetensors")
        XCTAssertEqual(Set(a.entries.keys), Set(b.entries.keys))
        for key in a.entries.keys { XCTAssertEqual(try a.tensor(key).values, try b.tensor(key).values, key) }
        let config2 = try readJSONFile(folder + "/e2/adapter_config.json")
        XCTAssertEqual(config2["rank_pattern"]?["model.layers.1.self_attn.q_proj"]?.intValue, 2)
        XCTAssertEqual(config2["alpha_pattern"]?["model.layers.0.self_attn.v_proj"]?.doubleValue, 5)
    }
}
