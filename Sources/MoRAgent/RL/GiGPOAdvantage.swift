/// GiGPO (Feng et al. 2025; verl-agent's `compute_gigpo_outcome_advantage`, notes §A.3):
/// `A = A_E + w·A_S`. The episode advantage `A_E` is GRPO's (mean or mean/std normalised) on
/// trajectory returns; the step advantage `A_S` compares discounted step returns
/// `G_t = r_t + γ·G_{t+1}` among rows of a group that acted at the same anchor state (the same
/// observation, or one whose similarity ratio reaches a threshold). A singleton anchor group gets
/// `A_S = 0`. The invalid-action penalty is subtracted after discounting, so it does not spread.
public struct GiGPOAdvantage: Equatable, Sendable {
    /// Normalisation of both levels (verl's `gigpo.mode`).
    public enum Mode: String, Sendable { case meanNorm = "mean_norm", meanStdNorm = "mean_std_norm" }
    /// The mode (mean/std as in the ALFWorld script).
    public var mode: Mode = .meanStdNorm
    /// Discount `γ` (0.95).
    public var gamma = 0.95
    /// Weight `w` of the step advantage (1.0).
    public var stepWeight = 1.0
    /// Episode statistics over step rows (verl's default) or per trajectory (the paper's Eq. 3).
    public var statistics: GroupStatistics = .stepRows
    /// Subtracted from a row with an invalid action (0.1).
    public var invalidActionPenalty = 0.1
    /// Group anchors whose similarity ratio is at least this (nil: identical observations only).
    public var similarityThreshold: Double? = nil
    /// `ε` of the divisions.
    public var epsilon = 1e-6

    /// verl-agent's ALFWorld settings.
    public init() {}

    /// One advantage per row.
    public func advantages(_ rows: [StepRow]) throws -> [Double] {
        var episode = GRPOAdvantage()
        episode.normalizeByStd = mode == .meanStdNorm
        episode.statistics = statistics
        episode.invalidActionPenalty = invalidActionPenalty
        episode.epsilon = epsilon
        let aE = try episode.advantages(rows)
        let g = try stepReturns(rows)
        // Anchor groups within each episode group.
        var clusters: [[Int]] = []
        var byGroup: [Int: [Int]] = [:]
        for (i, r) in rows.enumerated() { byGroup[r.group, default: []].append(i) }
        for group in byGroup.keys.sorted() {
            var local: [(representative: String, members: [Int])] = []
            for i in byGroup[group]! {
                let o = rows[i].observation
                if let threshold = similarityThreshold {
                    if let c = local.firstIndex(where: { TextSimilarity.ratio($0.representative, o) >= threshold }) { local[c].members.append(i) }
                    else { local.append((o, [i])) }
                } else if let c = local.firstIndex(where: { $0.representative == o }) {
                    local[c].members.append(i)
                } else {
                    local.append((o, [i]))
                }
            }
            clusters += local.map(\.members)
        }
        var aS = [Double](repeating: 0, count: rows.count)
        for members in clusters where members.count > 1 {
            let (m, sd) = AdvantageMath.meanStd(members.map { g[$0] })
            for i in members { aS[i] = mode == .meanStdNorm ? (g[i] - m) / (sd + epsilon) : g[i] - m }
        }
        return rows.indices.map { aE[$0] + stepWeight * aS[$0] }
    }

    /// `G_t = r_t + γ·G_{t+1}` along each trajectory, then minus the row's penalty.
    public func stepReturns(_ rows: [StepRow]) throws -> [Double] {
        try AdvantageMath.validate(rows)
        var byTrajectory: [Int: [Int]] = [:]
        for (i, r) in rows.enumerated() { byTrajectory[r.trajectory, default: []].append(i) }
        var g = [Double](repeating: 0, count: rows.count)
        for members in byTrajectory.values {
            var next = 0.0
            for i in members.sorted(by: { rows[$0].step > rows[$1].step }) {
                next = rows[i].reward + gamma * next
                g[i] = next
            }
        }
        return rows.indices.map { g[$0] - (rows[$0].actionValid ? 0 : invalidActionPenalty) }
    }
}

/// Generalised advantage estimation for PPO (Schulman et al. 2016): per trajectory,
/// `δ_t = r_t + γ·V_{t+1} − V_t` (`V` after the last step is 0), `A_t = Σ_k (γλ)^k δ_{t+k}`,
/// and the value targets `A_t + V_t`.
public struct GAEAdvantage: Equatable, Sendable {
    /// `γ`.
    public var gamma = 0.95
    /// `λ`.
    public var lambda = 0.95

    /// The usual settings.
    public init() {}

    /// `(advantages, returns)` per row; `values[i]` is the value head's estimate at row i.
    public func advantages(_ rows: [StepRow], values: [Double]) throws -> (advantages: [Double], returns: [Double]) {
        try AdvantageMath.validate(rows)
        guard values.count == rows.count, values.allSatisfy(\.isFinite) else {
            throw MoRAgentError.invalidArgument("\(values.count) finite values needed for \(rows.count) rows")
        }
        var byTrajectory: [Int: [Int]] = [:]
        for (i, r) in rows.enumerated() { byTrajectory[r.trajectory, default: []].append(i) }
        var a = [Double](repeating: 0, count: rows.count)
        for members in byTrajectory.values {
            var nextValue = 0.0, running = 0.0
            for i in members.sorted(by: { rows[$0].step > rows[$1].step }) {
                let delta = rows[i].reward + gamma * nextValue - values[i]
                running = delta + gamma * lambda * running
                a[i] = running
                nextValue = values[i]
            }
        }
        return (a, rows.indices.map { a[$0] + values[$0] })
    }
}

/// The Ratcliff/Obershelp similarity `2·M / (|a| + |b|)` (M: characters in matching blocks,
/// found by recursively taking the longest common substring), which Python's
/// `difflib.SequenceMatcher.ratio` computes; difflib's "autojunk" heuristic for texts of 200+
/// characters is not applied.
public enum TextSimilarity {
    /// The ratio in [0, 1] (1 for two empty strings).
    public static func ratio(_ a: String, _ b: String) -> Double {
        let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
        guard !x.isEmpty || !y.isEmpty else { return 1 }
        return 2 * Double(matches(x[...], y[...])) / Double(x.count + y.count)
    }

    private static func matches(_ x: ArraySlice<Unicode.Scalar>, _ y: ArraySlice<Unicode.Scalar>) -> Int {
        guard !x.isEmpty, !y.isEmpty else { return 0 }
        // Longest common substring by dynamic programming over one row.
        var best = 0, bestX = x.startIndex, bestY = y.startIndex
        var previous = [Int](repeating: 0, count: y.count + 1)
        for (i, cx) in zip(x.indices, x) {
            var current = [Int](repeating: 0, count: y.count + 1)
            for (j, cy) in zip(y.indices, y) where cx == cy {
                let k = j - y.startIndex
                current[k + 1] = previous[k] + 1
                if current[k + 1] > best { best = current[k + 1]; bestX = i - best + 1; bestY = j - best + 1 }
            }
            previous = current
        }
        guard best > 0 else { return 0 }
        return best + matches(x[x.startIndex..<bestX], y[y.startIndex..<bestY])
            + matches(x[(bestX + best)...], y[(bestY + best)...])
    }
}
