/// Something that adds to the output of the decoder's linear projections: LoRA experts, mixtures
/// of them, routed experts. The decoder calls it once per projection per layer, after the base
/// product (and bias), with the rows of the packed batch.
///
/// Shapes: `input[N, in]` with row stride `inputStride`, `output[N, out]` with row stride
/// `outputStride` (for q/k/v and gate/up, `output` points into a fused matrix at the start of
/// that projection's columns). Implementations add to `output` and must not touch other columns.
public protocol DecoderAdapter {
    /// Called once before a forward over `rowCount` packed rows; throwing aborts the forward
    /// before any cache changes (an adapter built for another batch shape).
    func begin(rowCount: Int) throws
    /// Adds the adapter's contribution to projection `kind` of layer `layer` for `rows` rows.
    func addDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                  output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int)
}

extension DecoderAdapter {
    /// Accepts any batch by default.
    public func begin(rowCount: Int) throws {}
}

/// An adapter with trainable parameters: it can push a projection's output gradient back to
/// its parameters and to the projection's input (DESIGN.md §5).
///
/// `Decoder.backward` calls it layer by layer from the top, and within a layer in exactly the
/// reverse of the forward order (down, up, gate, o, v, k, q), so an adapter whose decision at a
/// layer's q projection covers the whole layer (a token router) sees that decision's last use
/// first and its own input last.
///
/// With `ActivationMemory.recompute`, the backward first runs each layer's forward again, from
/// the layer's kept input, calling `replayDelta` where the forward called `addDelta`.
public protocol TrainableAdapter: DecoderAdapter {
    /// Adds the same delta to projection `kind` of `layer` that the forward's `addDelta` added,
    /// given the same input, reusing the decisions recorded then (routing, gate values) and
    /// recording nothing: recomputing a layer for the backward must leave the adapter as the
    /// forward left it (its recorded choices, its losses) and give bit-identical activations.
    func replayDelta(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                     output: UnsafeMutablePointer<Float>, outputStride: Int, rows: Int)
    /// For projection `kind` of `layer` over `rows` rows: accumulates the adapter's parameter
    /// gradients from `input[N, in]` and `outputGradient[N, out]`, and adds the adapter's share of
    /// the input gradient into `inputGradient[N, in]`.
    func backward(layer: Int, kind: ProjectionKind, input: UnsafePointer<Float>, inputStride: Int,
                  outputGradient: UnsafePointer<Float>, outputGradientStride: Int,
                  inputGradient: UnsafeMutablePointer<Float>, inputGradientStride: Int, rows: Int)
    /// Whether `backward` for projection `kind` of `layer` reads its input or adds anything: when
    /// it does not, the decoder's backward need not recompute that input (recomputing SwiGLU's
    /// output for `down` was 3% of the tiny LoRA training step, for experts on q and v only).
    func adapts(layer: Int, kind: ProjectionKind) -> Bool
}

extension TrainableAdapter {
    /// Every projection, unless an adapter knows better.
    public func adapts(layer: Int, kind: ProjectionKind) -> Bool { true }
}
