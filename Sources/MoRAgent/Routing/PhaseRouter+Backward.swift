#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Gradient buffers for every phase-router parameter, in `PhaseRouter.namedTensors` order.
public final class PhaseRouterGradients: @unchecked Sendable {
    /// `(name, gradient)` pairs shaped like the parameters.
    public let tensors: [(name: String, tensor: Tensor)]

    /// Zero gradients for `router`.
    public init(router: PhaseRouter) { tensors = router.namedTensors.map { ($0.name, Tensor(zeros: $0.tensor.shape)) } }

    /// Sets every gradient to zero.
    public func zero() { for (_, t) in tensors { t.pointer.update(repeating: 0, count: t.count) } }

    /// `(parameter, gradient)` pairs for an optimiser.
    public func parameterPairs(_ router: PhaseRouter) -> [(value: Tensor, gradient: Tensor)] {
        zip(router.namedTensors, tensors).map { ($0.tensor, $1.tensor) }
    }
}

/// What the router's forward keeps for its backward.
public struct PhaseRouterTrace {
    let inputs: PhaseRouter.Inputs
    let query: [Float]                 // [A]
    let keys: Tensor, values: Tensor   // [Tg, A]
    let attention: [[Float]]           // [heads][Tg]
    let attended: [Float]              // [A]
    let aligned: [Float]               // [A]
    let lstm: [[LSTMStep]]             // [layer][time]
    let mlpInput: [Float]              // [A + H]: [aligned; h_enc]
    let mlpPre: [Float]                // [M] before ReLU
    let mlpHidden: [Float]             // [M]
    /// `p = softmax(logits / τ)`.
    public let probabilities: [Float]
    let temperature: Float
}

/// One LSTM cell evaluation.
struct LSTMStep {
    let input: [Float], previousHidden: [Float], previousCell: [Float]
    let i: [Float], f: [Float], g: [Float], o: [Float], cell: [Float]
}

extension LSTMNetwork {
    /// `lastHidden`, keeping every cell's state for backpropagation through time.
    func traced(_ inputs: [[Float]]) -> (hidden: [Float], steps: [[LSTMStep]]) {
        var sequence = inputs
        var all: [[LSTMStep]] = []
        var h = [Float](repeating: 0, count: hiddenSize)
        for (ih, hh) in layers {
            h = [Float](repeating: 0, count: hiddenSize)
            var c = [Float](repeating: 0, count: hiddenSize)
            var steps: [LSTMStep] = []
            var outputs: [[Float]] = []
            for x in sequence {
                let gx = ih.apply(x), gh = hh.apply(h)
                let n = hiddenSize
                let i = (0..<n).map { sigmoid(gx[$0] + gh[$0]) }
                let f = (0..<n).map { sigmoid(gx[n + $0] + gh[n + $0]) }
                let g = (0..<n).map { tanhf(gx[2 * n + $0] + gh[2 * n + $0]) }
                let o = (0..<n).map { sigmoid(gx[3 * n + $0] + gh[3 * n + $0]) }
                let cNew = (0..<n).map { f[$0] * c[$0] + i[$0] * g[$0] }
                let hNew = (0..<n).map { o[$0] * tanhf(cNew[$0]) }
                steps.append(LSTMStep(input: x, previousHidden: h, previousCell: c, i: i, f: f, g: g, o: o, cell: cNew))
                h = hNew; c = cNew
                outputs.append(h)
            }
            all.append(steps)
            sequence = outputs
        }
        return (h, all)
    }
}

extension PhaseRouter {
    /// The forward of `logits`/`probabilities`, keeping what the backward needs.
    public func tracedForward(_ inputs: Inputs) -> PhaseRouterTrace {
        let a = configuration.attentionDimension, heads = configuration.attentionHeads, dh = a / heads
        let q = query.apply(inputs.observation)
        let tg = inputs.goal.rows
        let k = Tensor(zeros: [tg, a]), v = Tensor(zeros: [tg, a])
        var weights: [[Float]] = Array(repeating: [], count: heads)
        var attended = [Float](repeating: 0, count: a)
        if tg > 0 {
            key.apply(inputs.goal.pointer, rows: tg, into: k.pointer)
            value.apply(inputs.goal.pointer, rows: tg, into: v.pointer)
            let scale = 1 / Float(dh).squareRoot()
            for h in 0..<heads {
                var s = (0..<tg).map { j in (0..<dh).reduce(Float(0)) { $0 + q[h * dh + $1] * k.pointer[j * a + h * dh + $1] } * scale }
                s.withUnsafeMutableBufferPointer { _ = Kernels.softmax($0.baseAddress!, count: tg) }
                weights[h] = s
                for j in 0..<tg { for e in 0..<dh { attended[h * dh + e] += s[j] * v.pointer[j * a + h * dh + e] } }
            }
        }
        let aligned = output.apply(attended)
        let (recurrent, steps) = lstm.traced(inputs.history)
        let mlpInput = aligned + recurrent
        let pre = mlpHidden.apply(mlpInput)
        let hidden = pre.map { max(0, $0) }
        return PhaseRouterTrace(inputs: inputs, query: q, keys: k, values: v, attention: weights, attended: attended, aligned: aligned,
                                lstm: steps, mlpInput: mlpInput, mlpPre: pre, mlpHidden: hidden, probabilities: probabilities(mlpOut.apply(hidden)), temperature: temperature)
    }

    /// Backpropagates `dL/dp` (`probabilityGradient[K]`) through softmax(·/τ), the MLP, the LSTM
    /// (through time) and the goal cross-attention, adding into `gradients`. The base model's
    /// encodings are frozen inputs.
    public func backward(_ trace: PhaseRouterTrace, probabilityGradient dp: [Float], into gradients: PhaseRouterGradients) {
        let grads = Dictionary(uniqueKeysWithValues: gradients.tensors.map { ($0.name, $0.tensor) })
        let p = trace.probabilities
        let inner = zip(dp, p).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        let dLogits = (0..<p.count).map { p[$0] * (dp[$0] - inner) / trace.temperature }
        // MLP head.
        let dHidden = linearBackward(mlpOut, "mlp.2", input: trace.mlpHidden, outputGradient: dLogits, grads)
        let dPre = (0..<dHidden.count).map { trace.mlpPre[$0] > 0 ? dHidden[$0] : 0 }
        let dConcat = linearBackward(mlpHidden, "mlp.0", input: trace.mlpInput, outputGradient: dPre, grads)
        let a = configuration.attentionDimension
        let dAligned = Array(dConcat[0..<a]), dRecurrent = Array(dConcat[a...])
        lstmBackward(trace.lstm, topHiddenGradient: dRecurrent, grads)
        // Goal cross-attention.
        let dAttended = linearBackward(output, "attention.output", input: trace.attended, outputGradient: dAligned, grads)
        let tg = trace.keys.rows
        guard tg > 0 else { return }
        let heads = configuration.attentionHeads, dh = a / heads, scale = 1 / Float(dh).squareRoot()
        var dQuery = [Float](repeating: 0, count: a)
        let dKeys = Tensor(zeros: [tg, a]), dValues = Tensor(zeros: [tg, a])
        for h in 0..<heads {
            let w = trace.attention[h]
            var dw = [Float](repeating: 0, count: tg)
            for j in 0..<tg {
                for e in 0..<dh {
                    dw[j] += dAttended[h * dh + e] * trace.values.pointer[j * a + h * dh + e]
                    dValues.pointer[j * a + h * dh + e] += w[j] * dAttended[h * dh + e]
                }
            }
            let s = zip(w, dw).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            for j in 0..<tg {
                let ds = w[j] * (dw[j] - s) * scale
                for e in 0..<dh {
                    dQuery[h * dh + e] += ds * trace.keys.pointer[j * a + h * dh + e]
                    dKeys.pointer[j * a + h * dh + e] += ds * trace.query[h * dh + e]
                }
            }
        }
        _ = linearBackward(query, "attention.query", input: trace.inputs.observation, outputGradient: dQuery, grads)
        let goal = trace.inputs.goal, c = modelHiddenSize
        for j in 0..<tg {
            let row = Array(UnsafeBufferPointer(start: goal.pointer + j * c, count: c))
            _ = linearBackward(key, "attention.key", input: row, outputGradient: Array(UnsafeBufferPointer(start: dKeys.pointer + j * a, count: a)), grads)
            _ = linearBackward(value, "attention.value", input: row, outputGradient: Array(UnsafeBufferPointer(start: dValues.pointer + j * a, count: a)), grads)
        }
    }

    /// `y = W x + b`: adds `dW += dy ⊗ x`, `db += dy` and returns `dx = Wᵀ dy`.
    private func linearBackward(_ layer: LinearLayer, _ name: String, input x: [Float], outputGradient dy: [Float],
                                _ grads: [String: Tensor]) -> [Float] {
        let out = layer.outFeatures, inF = layer.inFeatures
        let dW = grads[name + ".weight"]!.pointer
        for o in 0..<out where dy[o] != 0 { for i in 0..<inF { dW[o * inF + i] += dy[o] * x[i] } }
        if let db = grads[name + ".bias"]?.pointer { for o in 0..<out { db[o] += dy[o] } }
        var dx = [Float](repeating: 0, count: inF)
        dy.withUnsafeBufferPointer { d in
            dx.withUnsafeMutableBufferPointer { BLAS.gemv(transpose: true, rows: out, columns: inF, a: layer.weight.pointer, lda: inF, x: d.baseAddress!, y: $0.baseAddress!) }
        }
        return dx
    }

    /// Backpropagation through time of the stacked LSTM from the top layer's last hidden state.
    private func lstmBackward(_ steps: [[LSTMStep]], topHiddenGradient: [Float], _ grads: [String: Tensor]) {
        let n = lstm.hiddenSize
        var inputGradients: [[Float]]? = nil           // dL/d(output h_t) of the layer above, per time
        for l in stride(from: steps.count - 1, through: 0, by: -1) {
            let layerSteps = steps[l]
            let (ih, hh) = lstm.layers[l]
            var dh = [Float](repeating: 0, count: n), dc = [Float](repeating: 0, count: n)
            var below = Array(repeating: [Float](repeating: 0, count: ih.inFeatures), count: layerSteps.count)
            for t in stride(from: layerSteps.count - 1, through: 0, by: -1) {
                let s = layerSteps[t]
                if l == steps.count - 1 { if t == layerSteps.count - 1 { for j in 0..<n { dh[j] += topHiddenGradient[j] } } }
                else { for j in 0..<n { dh[j] += inputGradients![t][j] } }
                var dGates = [Float](repeating: 0, count: 4 * n)
                for j in 0..<n {
                    let tc = tanhf(s.cell[j])
                    let dO = dh[j] * tc
                    dc[j] += dh[j] * s.o[j] * (1 - tc * tc)
                    dGates[j] = dc[j] * s.g[j] * s.i[j] * (1 - s.i[j])
                    dGates[n + j] = dc[j] * s.previousCell[j] * s.f[j] * (1 - s.f[j])
                    dGates[2 * n + j] = dc[j] * s.i[j] * (1 - s.g[j] * s.g[j])
                    dGates[3 * n + j] = dO * s.o[j] * (1 - s.o[j])
                    dc[j] *= s.f[j]
                }
                below[t] = linearBackward(ih, "lstm.weight_ih_l\(l)", input: s.input, outputGradient: dGates, [
                    "lstm.weight_ih_l\(l).weight": grads["lstm.weight_ih_l\(l)"]!, "lstm.weight_ih_l\(l).bias": grads["lstm.bias_ih_l\(l)"]!])
                dh = linearBackward(hh, "lstm.weight_hh_l\(l)", input: s.previousHidden, outputGradient: dGates, [
                    "lstm.weight_hh_l\(l).weight": grads["lstm.weight_hh_l\(l)"]!, "lstm.weight_hh_l\(l).bias": grads["lstm.bias_hh_l\(l)"]!])
            }
            inputGradients = below
        }
    }
}
