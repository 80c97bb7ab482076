import Foundation
import XCTest
@testable import MoRAgent

/// Every malformed model folder fails with an error that names the file and the problem.
final class ModelLoadingErrorTests: XCTestCase {
    /// A copy of the Qwen2 fixture in a temporary folder, to damage.
    func copyOfModel(_ name: String = "qwen2-tiny") throws -> String {
        let folder = Fixtures.temporaryFolder()
        for file in try FileManager.default.contentsOfDirectory(atPath: Fixtures.model(name)) {
            try FileManager.default.copyItem(atPath: Fixtures.model(name) + "/" + file, toPath: folder + "/" + file)
        }
        return folder
    }

    /// Loads the folder and returns the error's description (failing the test if it loads).
    func loadError(_ folder: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try Decoder(folder: folder)
            XCTFail("loaded a damaged model", file: file, line: line)
            return ""
        } catch {
            return "\(error)"
        }
    }

    /// A safetensors file built by hand: a header (given as text) and `dataBytes` zero bytes.
    func writeSafeTensors(header: String, dataBytes: Int, headerLength: UInt64? = nil, to path: String) throws {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (headerLength ?? UInt64(header.utf8.count)).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8))
        bytes.append(contentsOf: [UInt8](repeating: 0, count: dataBytes))
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func testMissingConfig() throws {
        let folder = try copyOfModel(); defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.removeItem(atPath: folder + "/config.json")
        let e = loadError(folder)
        XCTAssertTrue(e.contains("config.json") && e.contains("No such file"), e)
    }

    func testMalformedConfig() throws {
        let folder = try copyOfModel(); defer { try? FileManager.default.removeItem(atPath: folder) }
        try "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": 64,".write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        var e = loadError(folder)
        XCTAssertTrue(e.contains("config.json") && e.contains("invalid JSON"), e)
        try "{\"architectures\": [\"Qwen2ForCausalLM\"], \"hidden_size\": \"big\"}".write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        e = loadError(folder)
        XCTAssertTrue(e.contains("config.json") && e.contains("hidden_size"), e)
        try "{\"architectures\": [\"GPT2LMHeadModel\"]}".write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        e = loadError(folder)
        XCTAssertTrue(e.contains("config.json") && e.contains("GPT2LMHeadModel"), e)
    }

    /// Absurd sizes fail before anything is allocated (they used to trap on allocation).
    func testImplausibleSizesFailCleanly() throws {
        let folder = try copyOfModel(); defer { try? FileManager.default.removeItem(atPath: folder) }
        let original = try String(contentsOfFile: folder + "/config.json", encoding: .utf8)
        for (from, to, expected) in [("\"vocab_size\": 512", "\"vocab_size\": 100000000000000", "vocab_size"),
                                     ("\"vocab_size\": 512", "\"vocab_size\": 20000000", "config implies [20000000, 64]"),
                                     ("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 4000", "model.safetensors"),
                                     ("\"eos_token_id\": 2", "\"eos_token_id\": 99999999999", "")] {
            try original.replacingOccurrences(of: from, with: to).write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
            if expected.isEmpty {
                XCTAssertEqual(try Decoder(folder: folder).config.eosTokenIDs, [], "an EOS id beyond Int32 is dropped, not trapped on")
            } else {
                let e = loadError(folder)
                XCTAssertTrue(e.contains(expected), e)
            }
        }
    }

    func testShapeThatDisagreesWithConfig() throws {
        let folder = try copyOfModel(); defer { try? FileManager.default.removeItem(atPath: folder) }
        var config = try String(contentsOfFile: folder + "/config.json", encoding: .utf8)
        config = config.replacingOccurrences(of: "\"intermediate_size\": 176", with: "\"intermediate_size\": 200")
        try config.write(toFile: folder + "/config.json", atomically: true, encoding: .utf8)
        let e = loadError(folder)
        XCTAssertTrue(e.contains("model.safetensors") && e.contains("gate_proj") && e.contains("config implies"), e)
    }

    func testTruncatedFile() throws {
        let folder = try copyOfModel(); defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 1000).write(to: URL(fileURLWithPath: path))
        let e = loadError(folder)
        XCTAssertTrue(e.contains("model.safetensors") && e.contains("outside the data buffer"), e)
    }

    func testMissingTensor() throws {
        let folder = try copyOfModel("llama-tiny"); defer { try? FileManager.default.removeItem(atPath: folder) }
        // Drop lm_head from the untied model: rewrite shard 2 without it.
        let shard = folder + "/model-00002-of-00002.safetensors"
        let file = try SafeTensorsFile(path: shard)
        let kept = try file.entries.keys.sorted().filter { $0 != "lm_head.weight" }.map { (name: $0, tensor: try file.tensor($0)) }
        try SafeTensorsWriter.write(kept, to: shard)
        let index = try String(contentsOfFile: folder + "/model.safetensors.index.json", encoding: .utf8)
        try index.replacingOccurrences(of: "\"lm_head.weight\": \"model-00002-of-00002.safetensors\",", with: "")
            .write(toFile: folder + "/model.safetensors.index.json", atomically: true, encoding: .utf8)
        let e = loadError(folder)
        XCTAssertTrue(e.contains("model.safetensors.index.json") && e.contains("missing tensor \"lm_head.weight\""), e)
    }

    func testBadSafeTensorsHeaders() throws {
        let folder = Fixtures.temporaryFolder(); defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/x.safetensors"
        func error(_ header: String, dataBytes: Int, headerLength: UInt64? = nil) throws -> String {
            try writeSafeTensors(header: header, dataBytes: dataBytes, headerLength: headerLength, to: path)
            do { _ = try SafeTensorsFile(path: path); return "loaded" } catch { return "\(error)" }
        }
        let good = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        XCTAssertEqual(try error(good, dataBytes: 8), "loaded")
        let cases: [(String, Int, UInt64?, String)] = [
            (good, 8, 1 << 40, "exceeds the limit"),
            (good, 8, 5000, "runs past the end of the file"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, 9, nil, "not valid JSON"),
            (#"["a"]"#, 0, nil, "does not start with '{'"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#, 8, nil, "outside the data buffer"),
            (#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, 8, nil, "unknown dtype \"Q4\""),
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, nil, "needs 12"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, nil, "overlaps"),
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, nil, "a hole"),
            (good, 12, nil, "bytes after the last tensor"),
            (#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, 8, nil, "bad dimension"),
        ]
        for (header, bytes, length, expected) in cases {
            let e = try error(header, dataBytes: bytes, headerLength: length)
            XCTAssertTrue(e.contains("x.safetensors") && e.contains(expected), "\(header): \(e)")
        }
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: path))
        XCTAssertTrue(try error("", dataBytes: 0).contains("x.safetensors"))
        // A non-float tensor cannot be read as weights.
        try writeSafeTensors(header: #"{"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 8, to: path)
        XCTAssertThrowsError(try SafeTensorsFile(path: path).tensor("a")) { XCTAssertTrue("\($0)".contains("I32")) }
    }

    func testSafeTensorsRoundTrip() throws {
        let folder = Fixtures.temporaryFolder(); defer { try? FileManager.default.removeItem(atPath: folder) }
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5]), b = Tensor(shape: [1], values: [.pi])
        try SafeTensorsWriter.write([("a", a), ("b", b)], metadata: ["format": "pt"], to: folder + "/t.safetensors")
        let file = try SafeTensorsFile(path: folder + "/t.safetensors")
        XCTAssertEqual(try file.tensor("a").values, a.values)
        XCTAssertEqual(try file.tensor("b").shape, [1])
        XCTAssertEqual(file.metadata, ["format": "pt"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/t.safetensors.tmp-\(getpid())"))
    }
}
