import Foundation
import XCTest
@testable import MoRAgent

/// The generation progress hook (which the C ABI's progress/abort callback rides on) and the
/// guards that keep caller-chosen values from trapping: a huge `maxNewTokens`, and token ids in
/// config.json that do not fit in 32 bits.
final class GenerationProgressTests: XCTestCase {
    static let engine = try! Engine(folder: Fixtures.model("qwen2-tiny"))

    struct Stop: Error {}

    func testProgressIsReportedBeforePrefillAndAfterEveryStep() throws {
        var p = SamplingParameters()
        p.maxNewTokens = 5
        p.stopTokenIDs = []
        var calls: [[Int]] = []
        let out = try Self.engine.generate(prompts: [[5, 6, 7], [8]], parameters: p) { calls.append([$0, $1]) }
        XCTAssertEqual(calls, (0...5).map { [$0, 5] })
        XCTAssertEqual(out.map(\.ids.count), [5, 5])
    }

    func testThrowingFromProgressStopsGenerationWithThatError() {
        var p = SamplingParameters()
        p.maxNewTokens = 50
        p.stopTokenIDs = []
        var last = -1
        XCTAssertThrowsError(try Self.engine.generate(prompts: [[5]], parameters: p) { done, _ in
            last = done
            if done == 3 { throw Stop() }
        }) { XCTAssertTrue($0 is Stop) }
        XCTAssertEqual(last, 3)
    }

    /// The KV cache used to be sized for all of `maxNewTokens` up front, which overflowed (a
    /// trap) for a bound like Int.max that a stop token or the caller ends early.
    func testHugeMaxNewTokensReservesNothingUpFront() throws {
        var p = SamplingParameters()
        p.maxNewTokens = Int.max
        p.stopTokenIDs = []
        XCTAssertThrowsError(try Self.engine.generate(prompts: [[5]], parameters: p) { done, _ in
            if done == 2 { throw Stop() }
        }) { XCTAssertTrue($0 is Stop) }
        let greedy = try Self.engine.generate(prompts: [[5]], parameters: { var q = p; q.maxNewTokens = 3; return q }())[0]
        p.stopTokenIDs = [greedy.ids[2]]
        let stopped = try Self.engine.generate(prompts: [[5]], parameters: p)[0]
        XCTAssertEqual(stopped.stopReason, .stopToken)
        XCTAssertLessThanOrEqual(stopped.ids.count, 3)
    }

    /// EOS/BOS ids beyond Int32 used to trap in conversion; no token can have them, so they are
    /// dropped like non-integer ids.
    func testTokenIDsBeyondInt32InConfigAreIgnored() throws {
        let path = Fixtures.model("qwen2-tiny") + "/config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        func config(_ replacement: String) throws -> ModelConfig {
            let edited = text.replacingOccurrences(of: "\"eos_token_id\": 2", with: replacement)
                .replacingOccurrences(of: "\"bos_token_id\": 0", with: "\"bos_token_id\": 4294967296")
            XCTAssertNotEqual(edited, text)
            return try ModelConfig(json: try JSONValue.parse(bytes: Array(edited.utf8)), path: path)
        }
        XCTAssertEqual(try config("\"eos_token_id\": 10000000000").eosTokenIDs, [])
        XCTAssertEqual(try config("\"eos_token_id\": [2, 10000000000, 7]").eosTokenIDs, [2, 7])
        XCTAssertNil(try config("\"eos_token_id\": 2").bosTokenID)
    }
}
