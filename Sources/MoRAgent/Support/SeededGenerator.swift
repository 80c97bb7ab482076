/// A seeded pseudo-random generator (xoshiro256**, state filled by SplitMix64).
///
/// Sampling, initialisation and data shuffling all draw from it, so the same seed gives the same
/// tokens and parameters on every run and machine (no dependence on the system RNG). Its state is
/// four words, small enough to store in a checkpoint.
public struct SeededGenerator: RandomNumberGenerator, Equatable, Sendable {
    /// The generator's state.
    public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

    /// A generator seeded with `seed`.
    public init(seed: UInt64) {
        var s = seed
        func splitMix() -> UInt64 {
            s &+= 0x9E37_79B9_7F4A_7C15
            var z = s
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    /// A generator continuing from a saved `state`.
    public init(state: (UInt64, UInt64, UInt64, UInt64)) { self.state = state }

    public static func == (a: SeededGenerator, b: SeededGenerator) -> Bool {
        a.state.0 == b.state.0 && a.state.1 == b.state.1 && a.state.2 == b.state.2 && a.state.3 == b.state.3
    }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// A uniform float in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// A uniform double in [0, 1) with 53 random bits.
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1p-53 }
}
