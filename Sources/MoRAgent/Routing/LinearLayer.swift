#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A dense layer `y = W x + b` with `W[out, in]`, PyTorch's `nn.Linear` layout and default
/// initialisation (uniform in ±1/√in for weights and bias), used by the routers' small networks.
public struct LinearLayer: @unchecked Sendable {
    /// `[out, in]`.
    public let weight: Tensor
    /// `[out]`, or nil for a bias-free layer.
    public let bias: Tensor?

    /// A seeded layer.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, generator: inout SeededGenerator) {
        weight = Tensor(zeros: [outFeatures, inFeatures])
        self.bias = bias ? Tensor(zeros: [outFeatures]) : nil
        let bound = 1 / Float(inFeatures).squareRoot()
        for i in 0..<weight.count { weight.pointer[i] = (generator.nextUnitFloat() * 2 - 1) * bound }
        if let b = self.bias { for i in 0..<b.count { b.pointer[i] = (generator.nextUnitFloat() * 2 - 1) * bound } }
    }

    /// Input features.
    public var inFeatures: Int { weight.shape[1] }
    /// Output features.
    public var outFeatures: Int { weight.shape[0] }

    /// `y[rows, out] = x[rows, in] Wᵀ + b`.
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        BLAS.linear(x, rows: rows, inFeatures: inFeatures, weight: weight.pointer, outFeatures: outFeatures, into: y)
        if let b = bias { for r in 0..<rows { Kernels.add(b.pointer, into: y + r * outFeatures, count: outFeatures) } }
    }

    /// `apply` on one vector.
    public func apply(_ x: [Float]) -> [Float] {
        var y = [Float](repeating: 0, count: outFeatures)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { apply(xp.baseAddress!, rows: 1, into: $0.baseAddress!) } }
        return y
    }

    /// Named tensors for saving (`prefix.weight`, `prefix.bias`).
    func namedTensors(_ prefix: String) -> [(name: String, tensor: Tensor)] {
        [(prefix + ".weight", weight)] + (bias.map { [(prefix + ".bias", $0)] } ?? [])
    }

    /// Reads this layer's tensors from `file`, checking shapes.
    func load(_ prefix: String, from file: SafeTensorsFile) throws {
        try file.readFloat32(prefix + ".weight", expectedShape: weight.shape, into: weight.pointer)
        if let b = bias { try file.readFloat32(prefix + ".bias", expectedShape: b.shape, into: b.pointer) }
    }
}

/// A stacked LSTM with PyTorch's equations and parameter layout (`weight_ih_l{k}[4H, in]`,
/// `weight_hh_l{k}[4H, H]`, gate order i, f, g, o): `c' = f⊙c + i⊙g`, `h' = o⊙tanh(c')`.
public struct LSTMNetwork: @unchecked Sendable {
    /// Per layer: input-to-hidden (with bias `b_ih`) and hidden-to-hidden (with `b_hh`).
    public let layers: [(input: LinearLayer, hidden: LinearLayer)]
    /// Hidden size `H`.
    public let hiddenSize: Int

    /// A seeded LSTM (PyTorch's init: every parameter uniform in ±1/√H).
    public init(inputSize: Int, hiddenSize: Int, layerCount: Int, generator: inout SeededGenerator) {
        self.hiddenSize = hiddenSize
        var layers: [(LinearLayer, LinearLayer)] = []
        for l in 0..<layerCount {
            let ih = LinearLayer(inFeatures: l == 0 ? inputSize : hiddenSize, outFeatures: 4 * hiddenSize, generator: &generator)
            let hh = LinearLayer(inFeatures: hiddenSize, outFeatures: 4 * hiddenSize, generator: &generator)
            let bound = 1 / Float(hiddenSize).squareRoot()
            for t in [ih.weight, ih.bias!, hh.weight, hh.bias!] {
                for i in 0..<t.count { t.pointer[i] = (generator.nextUnitFloat() * 2 - 1) * bound }
            }
            layers.append((ih, hh))
        }
        self.layers = layers
    }

    /// Runs the sequence `inputs[T][in]` from zero state; returns the top layer's last hidden state.
    public func lastHidden(_ inputs: [[Float]]) -> [Float] {
        var sequence = inputs
        var h = [Float](repeating: 0, count: hiddenSize)
        for (ih, hh) in layers {
            h = [Float](repeating: 0, count: hiddenSize)
            var c = [Float](repeating: 0, count: hiddenSize)
            var outputs: [[Float]] = []
            for x in sequence {
                let gx = ih.apply(x), gh = hh.apply(h)
                for j in 0..<hiddenSize {
                    let i = sigmoid(gx[j] + gh[j])
                    let f = sigmoid(gx[hiddenSize + j] + gh[hiddenSize + j])
                    let g = tanhf(gx[2 * hiddenSize + j] + gh[2 * hiddenSize + j])
                    let o = sigmoid(gx[3 * hiddenSize + j] + gh[3 * hiddenSize + j])
                    c[j] = f * c[j] + i * g
                    h[j] = o * tanhf(c[j])
                }
                outputs.append(h)
            }
            sequence = outputs
        }
        return h
    }

    /// Named tensors in PyTorch's `nn.LSTM` names under `prefix`.
    func namedTensors(_ prefix: String) -> [(name: String, tensor: Tensor)] {
        layers.enumerated().flatMap { l, pair in
            [("\(prefix).weight_ih_l\(l)", pair.input.weight), ("\(prefix).bias_ih_l\(l)", pair.input.bias!),
             ("\(prefix).weight_hh_l\(l)", pair.hidden.weight), ("\(prefix).bias_hh_l\(l)", pair.hidden.bias!)]
        }
    }

    func load(_ prefix: String, from file: SafeTensorsFile) throws {
        for (name, t) in namedTensors(prefix) { try file.readFloat32(name, expectedShape: t.shape, into: t.pointer) }
    }
}

@inline(__always) func sigmoid(_ x: Float) -> Float { 1 / (1 + expf(-x)) }
