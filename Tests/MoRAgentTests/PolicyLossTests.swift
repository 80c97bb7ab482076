import XCTest
@testable import MoRAgent

/// The clipped surrogate against hand-computed values and finite differences.
final class PolicyLossTests: XCTestCase {
    /// hidden `[1, 2]` = (1, 0) and an LM head whose first column is the logits (2, 1, 0).
    let hidden = Tensor(shape: [1, 2], values: [1, 0])
    let head = Tensor(shape: [3, 2], values: [2, 0, 1, 0, 0, 0])
    var logp0: Float { 2 - log(exp(2) + exp(1) + 1) }

    func one(_ loss: ClippedPolicyLoss, advantage: Float, old: Float) throws -> (PolicyLossStatistics, Tensor) {
        try loss.lossAndGradient(hidden: hidden, lmHead: head, actions: ActionTokens(rows: [0], tokens: [0], oldLogProbabilities: [old], advantages: [advantage], sequences: [0]))
    }

    func testSurrogateBranches() throws {
        let loss = ClippedPolicyLoss()
        let p0 = exp(logp0)
        // Ratio 1.1 inside the clip range, A = 2: loss −A·r; dL/dlogit0 = −A·r·(1 − p0).
        var (s, g) = try one(loss, advantage: 2, old: logp0 - log(1.1))
        XCTAssertEqual(s.policyLoss, -2 * 1.1, accuracy: 1e-5)
        XCTAssertEqual(s.clipFraction, 0)
        XCTAssertEqual(g.values[0], -2 * 1.1 * (1 - p0) * 2 + -2 * 1.1 * (0 - exp(1 - (2 - logp0))) * 1, accuracy: 1e-5)
        XCTAssertEqual(s.approximateKL, Double(-log(1.1) as Float), accuracy: 1e-6)
        // Ratio 1.5, A = 2: clipped at 1.2, no gradient.
        (s, g) = try one(loss, advantage: 2, old: logp0 - log(1.5))
        XCTAssertEqual(s.policyLoss, -2 * 1.2, accuracy: 1e-5)
        XCTAssertEqual(s.clipFraction, 1)
        XCTAssertEqual(g.values, [0, 0])
        // Ratio 5, A = −1: the surrogate is 5, the dual clip caps it at 3 with no gradient.
        (s, g) = try one(loss, advantage: -1, old: logp0 - log(5))
        XCTAssertEqual(s.policyLoss, 3, accuracy: 1e-5)
        XCTAssertEqual(g.values, [0, 0])
        var noDual = loss; noDual.dualClip = nil
        (s, _) = try one(noDual, advantage: -1, old: logp0 - log(5))
        XCTAssertEqual(s.policyLoss, 5, accuracy: 1e-4)
        // Entropy of softmax(2, 1, 0).
        let z = exp(2.0) + exp(1.0) + 1, p = [exp(2.0) / z, exp(1.0) / z, 1 / z]
        XCTAssertEqual(s.entropy, -p.map { $0 * log($0) }.reduce(0, +), accuracy: 1e-5)
    }

    func testAggregationModes() throws {
        // Two sequences: one token (loss −1·r) and three tokens (losses −2·r each), ratios 1.
        let lp = logp0
        let actions = ActionTokens(rows: [0, 0, 0, 0], tokens: [0, 0, 0, 0], oldLogProbabilities: [lp, lp, lp, lp],
                                   advantages: [1, 2, 2, 2], sequences: [0, 1, 1, 1])
        var loss = ClippedPolicyLoss()
        XCTAssertEqual(try loss.lossAndGradient(hidden: hidden, lmHead: head, actions: actions).0.policyLoss, -(1 + 6) / 4.0, accuracy: 1e-5)
        loss.aggregation = .sequenceMeanTokenMean
        XCTAssertEqual(try loss.lossAndGradient(hidden: hidden, lmHead: head, actions: actions).0.policyLoss, -(1 + 2) / 2.0, accuracy: 1e-5)
    }

    /// The gradient with respect to the hidden states against central differences, with the KL
    /// term on and a mix of clipped and unclipped tokens.
    func testGradientMatchesFiniteDifferences() throws {
        var g = SeededGenerator(seed: 3)
        let h = Tensor(zeros: [4, 6]), w = Tensor(zeros: [9, 6])
        for t in [h, w] { for i in 0..<t.count { t.pointer[i] = g.nextUnitFloat() * 2 - 1 } }
        var loss = ClippedPolicyLoss(); loss.klCoefficient = 0.5; loss.aggregation = .sequenceMeanTokenMean
        let actions = ActionTokens(rows: [0, 1, 2, 3, 3], tokens: [1, 4, 8, 0, 2], oldLogProbabilities: [-2.0, -2.5, -1.0, -3.0, -2.2],
                                   advantages: [0.7, -1.2, 0.4, 1.5, -0.3], sequences: [0, 0, 1, 1, 2],
                                   referenceLogProbabilities: [-2.1, -2.0, -2.4, -2.2, -2.3])
        let (_, grad) = try loss.lossAndGradient(hidden: h, lmHead: w, actions: actions)
        for i in [0, 5, 7, 13, 18, 23] {
            let saved = h.pointer[i]
            h.pointer[i] = saved + 1e-2
            let up = try loss.lossAndGradient(hidden: h, lmHead: w, actions: actions).0.loss
            h.pointer[i] = saved - 1e-2
            let down = try loss.lossAndGradient(hidden: h, lmHead: w, actions: actions).0.loss
            h.pointer[i] = saved
            XCTAssertEqual(Double(grad.pointer[i]), (up - down) / 2e-2, accuracy: 2e-3, "hidden[\(i)]")
        }
    }

    func testBadInputsAreRejected() {
        let loss = ClippedPolicyLoss()
        func rejects(_ a: ActionTokens) { XCTAssertThrowsError(try loss.lossAndGradient(hidden: hidden, lmHead: head, actions: a)) }
        rejects(ActionTokens(rows: [], tokens: [], oldLogProbabilities: [], advantages: [], sequences: []))
        rejects(ActionTokens(rows: [0], tokens: [0], oldLogProbabilities: [-1], advantages: [.nan], sequences: [0]))
        rejects(ActionTokens(rows: [0], tokens: [0], oldLogProbabilities: [-1], advantages: [.infinity], sequences: [0]))
        rejects(ActionTokens(rows: [0], tokens: [0], oldLogProbabilities: [0.5], advantages: [1], sequences: [0]))
        rejects(ActionTokens(rows: [0, 0], tokens: [0], oldLogProbabilities: [-1], advantages: [1], sequences: [0]))
        rejects(ActionTokens(rows: [1], tokens: [0], oldLogProbabilities: [-1], advantages: [1], sequences: [0]))
        rejects(ActionTokens(rows: [0], tokens: [3], oldLogProbabilities: [-1], advantages: [1], sequences: [0]))
    }
}
