/// One environment step of a rollout batch, as the advantage estimators see it (verl-agent's
/// step-wise layout, notes/anchor-systems.md §A.2).
public struct StepRow: Equatable, Sendable {
    /// The group: trajectories started from the same task instance (verl's `uid`).
    public var group: Int
    /// The trajectory (verl's `traj_uid`).
    public var trajectory: Int
    /// The step's position in its trajectory (0 first).
    public var step: Int
    /// The environment's reward for this step.
    public var reward: Double
    /// The observation the action was taken at (GiGPO's anchor state).
    public var observation: String
    /// Whether the action was well formed (an invalid one is penalised).
    public var actionValid: Bool

    /// A row.
    public init(group: Int, trajectory: Int, step: Int, reward: Double, observation: String = "", actionValid: Bool = true) {
        self.group = group
        self.trajectory = trajectory
        self.step = step
        self.reward = reward
        self.observation = observation
        self.actionValid = actionValid
    }
}

/// Which population group statistics are taken over.
public enum GroupStatistics: String, Sendable {
    /// Every step row adds its score (verl-agent's default `compute_mean_std_cross_steps`):
    /// longer trajectories weigh more.
    case stepRows = "step-rows"
    /// Each trajectory counts once (the GiGPO paper's Eq. 3).
    case trajectories
}

/// Shared pieces of the estimators.
enum AdvantageMath {
    /// Throws on non-finite rewards and on two rows claiming the same (trajectory, step).
    static func validate(_ rows: [StepRow]) throws {
        guard !rows.isEmpty else { throw MoRAgentError.invalidArgument("no step rows") }
        var seen = Set<[Int]>()
        for (i, r) in rows.enumerated() {
            guard r.reward.isFinite else { throw MoRAgentError.invalidArgument("row \(i) has reward \(r.reward)") }
            guard r.step >= 0, seen.insert([r.trajectory, r.step]).inserted else {
                throw MoRAgentError.invalidArgument("row \(i): trajectory \(r.trajectory) has step \(r.step) twice (or a negative step)")
            }
        }
        var groupOf: [Int: Int] = [:]
        for r in rows {
            if let g = groupOf[r.trajectory], g != r.group { throw MoRAgentError.invalidArgument("trajectory \(r.trajectory) appears in groups \(g) and \(r.group)") }
            groupOf[r.trajectory] = r.group
        }
    }

    /// Mean and unbiased standard deviation; a single value gives (0, 1) as verl does.
    static func meanStd(_ xs: [Double]) -> (mean: Double, std: Double) {
        guard xs.count > 1 else { return (0, 1) }
        let m = xs.reduce(0, +) / Double(xs.count)
        let v = xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1)
        return (m, v.squareRoot())
    }

    /// Each trajectory's return (the sum of its rewards).
    static func returns(_ rows: [StepRow]) -> [Int: Double] {
        var out: [Int: Double] = [:]
        for r in rows { out[r.trajectory, default: 0] += r.reward }
        return out
    }

    /// The values each group's statistics are taken over: every row's score, or each
    /// trajectory's return once.
    static func populations(_ rows: [StepRow], scores: [Double], statistics: GroupStatistics) -> [Int: [Double]] {
        var population: [Int: [Double]] = [:]
        switch statistics {
        case .stepRows:
            for (i, r) in rows.enumerated() { population[r.group, default: []].append(scores[i]) }
        case .trajectories:
            let totals = returns(rows)
            var seen = Set<Int>()
            for r in rows where seen.insert(r.trajectory).inserted { population[r.group, default: []].append(totals[r.trajectory]!) }
        }
        return population
    }

    /// Per row: its trajectory's return minus the row's invalid-action penalty.
    static func scores(_ rows: [StepRow], penalty: Double) -> [Double] {
        let totals = returns(rows)
        return rows.map { totals[$0.trajectory]! - ($0.actionValid ? 0 : penalty) }
    }
}
