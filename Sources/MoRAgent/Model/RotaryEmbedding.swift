#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// RoPE angles as transformers computes them: `inv_freq[i] = θ^(−2i/D)` (adjusted by the
/// config's scaling), angle = position · inv_freq in f32, rotate-half layout.
public struct RotaryEmbedding: Sendable {
    /// `inv_freq[D/2]`.
    public let inverseFrequencies: [Float]

    /// The frequencies for `config`.
    public init(config: ModelConfig) {
        let d = config.headDimension
        var freqs = (0..<(d / 2)).map { i in 1.0 / pow(config.ropeTheta, Double(2 * i) / Double(d)) }
        switch config.ropeScaling {
        case .none: break
        case .linear(let factor): freqs = freqs.map { $0 / factor }
        case let .llama3(factor, low, high, original):
            // Llama 3.1: wavelengths longer than original/low are slowed by `factor`, shorter than
            // original/high kept, and the band between blended linearly in original/wavelength.
            let lowWavelength = original / low, highWavelength = original / high
            freqs = freqs.map { f in
                let wavelength = 2 * Double.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (original / wavelength - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
        inverseFrequencies = freqs.map { Float($0) }
    }

    /// Writes `cos` and `sin` of `position · inv_freq` (each `D/2` long) for one position.
    public func angles(position: Int, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        for (i, f) in inverseFrequencies.enumerated() {
            let angle = Double(p * f)
            c[i] = Float(cos(angle))
            s[i] = Float(sin(angle))
        }
    }
}
