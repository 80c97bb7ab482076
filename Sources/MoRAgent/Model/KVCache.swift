/// The keys and values one sequence has seen, per layer: `K[L][S, KVH·D]`, `V[L][S, KVH·D]`.
///
/// Grows by doubling, so incremental decode appends in amortised O(1). One cache belongs to one
/// sequence; a policy keeps one per live episode and may `truncate` it to reuse a shared prefix.
public final class KVCache: @unchecked Sendable {
    /// Positions held (the next token's position).
    public private(set) var length = 0
    /// Positions that fit before the next growth.
    public private(set) var capacity: Int
    /// Floats per position per layer (`KVH·D`).
    public let width: Int
    /// Number of layers.
    public let layerCount: Int
    private var keys: [UnsafeMutablePointer<Float>]
    private var values: [UnsafeMutablePointer<Float>]

    /// An empty cache for a model of `config`, with room for `capacity` positions before growing.
    public init(config: ModelConfig, capacity: Int = 64) {
        width = config.keyValueWidth
        layerCount = config.layerCount
        self.capacity = max(capacity, 1)
        keys = (0..<layerCount).map { _ in .allocate(capacity: max(capacity, 1) * config.keyValueWidth) }
        values = (0..<layerCount).map { _ in .allocate(capacity: max(capacity, 1) * config.keyValueWidth) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Makes room for `count` more positions.
    func reserve(_ count: Int) {
        guard length + count > capacity else { return }
        var newCapacity = capacity
        while newCapacity < length + count { newCapacity *= 2 }
        for l in 0..<layerCount {
            let k = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
            let v = UnsafeMutablePointer<Float>.allocate(capacity: newCapacity * width)
            k.update(from: keys[l], count: length * width)
            v.update(from: values[l], count: length * width)
            keys[l].deallocate(); values[l].deallocate()
            keys[l] = k; values[l] = v
        }
        capacity = newCapacity
    }

    /// Start of layer `layer`'s keys (`capacity × width`).
    func keys(layer: Int) -> UnsafeMutablePointer<Float> { keys[layer] }
    /// Start of layer `layer`'s values (`capacity × width`).
    func values(layer: Int) -> UnsafeMutablePointer<Float> { values[layer] }

    /// Records that `count` positions were written after `length` in every layer.
    func advance(by count: Int) {
        precondition(length + count <= capacity)
        length += count
    }

    /// Forgets every position from `newLength` on (to re-decode from a shared prefix).
    public func truncate(to newLength: Int) throws {
        guard (0...length).contains(newLength) else {
            throw MoRAgentError.invalidArgument("cannot truncate a cache of \(length) positions to \(newLength)")
        }
        length = newLength
    }

    /// Forgets every position.
    public func reset() { length = 0 }
}
