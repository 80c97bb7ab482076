import CMoRAgent
import MoRAgent

/// Asks C code (a host's router callback, a plugin's `decide`) for one step's weights and checks
/// what it wrote, so a callback's failure or a NaN becomes MORAGENT_ERROR_CALLBACK with a message
/// naming the callback, before the core ever sees the weights.
enum ExternalWeights {
    /// The weights `call` writes for `context`, given a `moragent_step_features` whose strings
    /// live for the call and a zeroed buffer of `expertCount` floats (never NULL).
    static func collect(_ context: StepContext, expertCount: Int, source: String,
                        _ call: (UnsafePointer<moragent_step_features>, UnsafeMutablePointer<Float>) -> Int32) throws -> [Float] {
        var weights = [Float](repeating: 0, count: max(expertCount, 1))
        let answer = context.observation.withCString { observation in
            context.goal.withCString { goal in
                var features = moragent_step_features(
                    struct_size: MemoryLayout<moragent_step_features>.stride, episode: Int64(context.episode),
                    step: context.step, observation: observation, goal: goal, history_count: context.history.count)
                return withUnsafePointer(to: &features) { f in
                    weights.withUnsafeMutableBufferPointer { call(f, $0.baseAddress!) }
                }
            }
        }
        guard answer == 0 else {
            throw CallError.callback("\(source) returned \(answer) for step \(context.step) of episode \(context.episode)")
        }
        let chosen = Array(weights.prefix(expertCount))
        if let k = chosen.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
            throw CallError.callback("\(source) wrote \(chosen[k]) as the weight of expert \(k); weights must be finite and >= 0")
        }
        return chosen
    }
}
