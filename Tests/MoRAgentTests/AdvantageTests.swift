import XCTest
@testable import MoRAgent

/// Advantage estimators on one small group worked out by hand.
///
/// Group 0: trajectory 1 acts at "A" (reward 0) then "B" (reward 10, return 10); trajectory 2
/// acts once at "A" with an invalid action (reward 0, penalty 0.1); trajectory 3 acts at "A"
/// then "C" (rewards 0). A second group holds one trajectory alone.
final class AdvantageTests: XCTestCase {
    let rows = [
        StepRow(group: 0, trajectory: 1, step: 0, reward: 0, observation: "A"),
        StepRow(group: 0, trajectory: 1, step: 1, reward: 10, observation: "B"),
        StepRow(group: 0, trajectory: 2, step: 0, reward: 0, observation: "A", actionValid: false),
        StepRow(group: 0, trajectory: 3, step: 0, reward: 0, observation: "A"),
        StepRow(group: 0, trajectory: 3, step: 1, reward: 0, observation: "C"),
        StepRow(group: 1, trajectory: 4, step: 0, reward: 7, observation: "A"),
    ]

    func assertEqual(_ a: [Double], _ b: [Double], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6, file: file, line: line) }
    }

    func testGRPO() throws {
        // Scores per row: 10, 10, −0.1, 0, 0 (group 0); 7 alone.
        let s = [10, 10, -0.1, 0, 0]
        let mean = s.reduce(0, +) / 5                                   // 3.98
        let std = (s.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 4).squareRoot()   // unbiased
        var grpo = GRPOAdvantage()
        // The singleton group: mean 0, std 1, divided by std + ε as verl does.
        assertEqual(try grpo.advantages(rows), s.map { ($0 - mean) / (std + 1e-6) } + [7 / (1 + 1e-6)])
        grpo.normalizeByStd = false
        assertEqual(try grpo.advantages(rows), s.map { $0 - mean } + [7])
        // Per trajectory: returns 10, 0, 0 → mean 10/3, std √(100/3)/√... computed by hand.
        grpo.normalizeByStd = true
        grpo.statistics = .trajectories
        let tm = 10.0 / 3, tsd = (((10 - tm) * (10 - tm) + 2 * tm * tm) / 2).squareRoot()
        assertEqual(try grpo.advantages(rows), s.map { ($0 - tm) / (tsd + 1e-6) } + [7 / (1 + 1e-6)])
    }

    func testRLOO() throws {
        let s = [10, 10, -0.1, 0, 0]
        let mean = s.reduce(0, +) / 5
        assertEqual(try RLOOAdvantage().advantages(rows), s.map { ($0 - mean) * 5 / 4 } + [7])
        // Leave-one-out by definition for the first row: 10 − mean(10, −0.1, 0, 0).
        XCTAssertEqual(try RLOOAdvantage().advantages(rows)[0], 10 - (10 - 0.1) / 4, accuracy: 1e-9)
    }

    func testGiGPO() throws {
        let gigpo = GiGPOAdvantage()
        // Discounted step returns (γ 0.95), penalty after discounting.
        assertEqual(try gigpo.stepReturns(rows), [9.5, 10, -0.1, 0, 0, 7])
        let aE = try GRPOAdvantage().advantages(rows)
        // Anchor "A" in group 0 holds rows 0, 2, 3 (returns 9.5, −0.1, 0); "B", "C" and the other
        // group's "A" are singletons (A_S = 0): anchors never cross groups.
        let g = [9.5, -0.1, 0.0]
        let m = g.reduce(0, +) / 3, sd = (g.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 2).squareRoot()
        let aS = [(9.5 - m) / (sd + 1e-6), 0, (-0.1 - m) / (sd + 1e-6), (0 - m) / (sd + 1e-6), 0, 0]
        assertEqual(try gigpo.advantages(rows), zip(aE, aS).map { $0 + $1 })
        var meanOnly = gigpo
        meanOnly.mode = .meanNorm
        var grpoMean = GRPOAdvantage(); grpoMean.normalizeByStd = false
        let aSMean = [9.5 - m, 0, -0.1 - m, 0 - m, 0, 0]
        assertEqual(try meanOnly.advantages(rows), zip(try grpoMean.advantages(rows), aSMean).map { $0 + $1 })
        // Similarity grouping joins near-identical observations ("A" and "A!" are 0.67 similar).
        var similar = rows
        similar[3].observation = "You see a mug 1 on the table."
        similar[0].observation = "You see a mug 1 on the table!"
        similar[2].observation = "Nothing happens."
        var exact = GiGPOAdvantage(), fuzzy = GiGPOAdvantage()
        fuzzy.similarityThreshold = 0.95
        XCTAssertEqual(try exact.advantages(similar)[0], try GRPOAdvantage().advantages(similar)[0], accuracy: 1e-9, "alone at an exact anchor")
        XCTAssertNotEqual(try fuzzy.advantages(similar)[0], try exact.advantages(similar)[0], "joined a similar anchor")
        exact.stepWeight = 0
        assertEqual(try exact.advantages(rows), aE)
    }

    func testGAE() throws {
        let traj = [StepRow(group: 0, trajectory: 0, step: 0, reward: 0), StepRow(group: 0, trajectory: 0, step: 1, reward: 10)]
        let (a, r) = try GAEAdvantage().advantages(traj, values: [1, 2])
        // δ1 = 10 − 2 = 8; δ0 = 0 + 0.95·2 − 1 = 0.9; A0 = 0.9 + 0.95·0.95·8.
        assertEqual(a, [0.9 + 0.9025 * 8, 8])
        assertEqual(r, [0.9 + 0.9025 * 8 + 1, 10])
    }

    func testSimilarityRatioAndBadInput() throws {
        XCTAssertEqual(TextSimilarity.ratio("abcd", "abce"), 0.75, accuracy: 1e-12)
        XCTAssertEqual(TextSimilarity.ratio("hello world", "hello world!"), 22.0 / 23, accuracy: 1e-12)
        XCTAssertEqual(TextSimilarity.ratio("", ""), 1)
        XCTAssertEqual(TextSimilarity.ratio("abc", "xyz"), 0)
        var bad = rows
        bad[1].reward = .nan
        XCTAssertThrowsError(try GRPOAdvantage().advantages(bad))
        XCTAssertThrowsError(try GiGPOAdvantage().advantages([]))
        bad = rows
        bad[1].step = 0
        XCTAssertThrowsError(try RLOOAdvantage().advantages(bad), "a step given twice")
        bad = rows
        bad[1].group = 1
        XCTAssertThrowsError(try GRPOAdvantage().advantages(bad), "a trajectory in two groups")
        XCTAssertThrowsError(try GAEAdvantage().advantages(rows, values: [1]))
    }
}
