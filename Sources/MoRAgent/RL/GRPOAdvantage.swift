/// GRPO's outcome advantage (DESIGN.md §6; verl's `compute_grpo_outcome_advantage`): within a
/// group, `A = (S − mean) / (std + ε)`, or `S − mean` without the std; `S` the trajectory's
/// return less the row's invalid-action penalty. A group of one gets mean 0 and std 1.
public struct GRPOAdvantage: Equatable, Sendable {
    /// Divide by the group's standard deviation.
    public var normalizeByStd = true
    /// Which population the statistics are taken over.
    public var statistics: GroupStatistics = .stepRows
    /// Subtracted from the score of a row whose action was invalid (verl's default 0.1).
    public var invalidActionPenalty = 0.1
    /// `ε` of the division.
    public var epsilon = 1e-6

    /// verl-agent's defaults.
    public init() {}

    /// One advantage per row.
    public func advantages(_ rows: [StepRow]) throws -> [Double] {
        try AdvantageMath.validate(rows)
        let s = AdvantageMath.scores(rows, penalty: invalidActionPenalty)
        let stats = AdvantageMath.populations(rows, scores: s, statistics: statistics).mapValues(AdvantageMath.meanStd)
        return rows.indices.map { i in
            let (m, sd) = stats[rows[i].group]!
            return normalizeByStd ? (s[i] - m) / (sd + epsilon) : s[i] - m
        }
    }
}

/// RLOO (Ahmadian et al. 2024; verl's `compute_rloo_outcome_advantage`): each score against the
/// mean of the others in its group, `A = S − mean_{others}` = `(S − mean)·n/(n−1)`. A group of one
/// keeps its raw score.
public struct RLOOAdvantage: Equatable, Sendable {
    /// Which population the leave-one-out baseline is taken over.
    public var statistics: GroupStatistics = .stepRows
    /// Subtracted from the score of a row whose action was invalid.
    public var invalidActionPenalty = 0.1

    /// verl-agent's defaults.
    public init() {}

    /// One advantage per row.
    public func advantages(_ rows: [StepRow]) throws -> [Double] {
        try AdvantageMath.validate(rows)
        let s = AdvantageMath.scores(rows, penalty: invalidActionPenalty)
        let population = AdvantageMath.populations(rows, scores: s, statistics: statistics)
        return rows.indices.map { i in
            let p = population[rows[i].group]!
            guard p.count > 1 else { return s[i] }
            let n = Double(p.count), mean = p.reduce(0, +) / n
            return (s[i] - mean) * n / (n - 1)
        }
    }
}
