import Foundation
@testable import MoRAgent

/// Paths of the committed reference fixtures written by `tools/make_fixtures.py`.
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static func model(_ name: String) -> String { root + "/models/" + name }
    static func tokenizer(_ name: String) -> String { root + "/tokenizers/" + name + "/tokenizer.json" }
    static let modelNames = ["qwen2-tiny", "llama-tiny", "mistral-tiny"]

    /// A fresh temporary folder, removed by the caller's `defer`.
    static func temporaryFolder() -> String {
        let path = NSTemporaryDirectory() + "moragent-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Fills every B of `experts` (modules in sorted order) with uniform values in ±`scale`:
    /// a fresh PEFT expert has B = 0 and changes nothing, so tests that need experts to matter use this.
    static func randomizeB(_ experts: [LoRAExpert], generator g: inout SeededGenerator, scale: Float) {
        for e in experts {
            for key in e.modules.keys.sorted() {
                let m = e.modules[key]!
                for i in 0..<m.b.count { m.b.pointer[i] = (g.nextUnitFloat() * 2 - 1) * scale }
            }
        }
    }

    /// `k` rank-4 experts on q/v of `model` with random B (seeds 5 and 6), as the policy tests use.
    static func policyExperts(_ k: Int, model: ModelConfig) throws -> ExpertSet {
        let set = try ExpertSet(model: model, count: k, configuration: LoRAConfiguration(rank: 4, alpha: 8), seed: 5)
        var g = SeededGenerator(seed: 6)
        randomizeB(set.experts, generator: &g, scale: 0.5)
        return set
    }
}
