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
}
