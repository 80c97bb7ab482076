import Dispatch

/// The frozen base model's views of a text that step-level routers use (PA-MoE §Phase-Aware
/// Router): `Enc(text)`, the mean of the final (normed) hidden states over the text's tokens;
/// the per-token final hidden states (keys/values of the goal cross-attention); and `Embed(text)`,
/// the mean of the input token embeddings (the LSTM history inputs).
///
/// Results are cached by text: agents see the same observations and goals again and again, and
/// the forward over a text is the expensive part of routing. The cache is bounded (oldest
/// entries dropped first) and thread-safe.
public final class TextEncoder: @unchecked Sendable {
    /// The engine whose base model encodes.
    public let engine: Engine
    /// Most texts kept.
    public let capacity: Int
    private var cache: [String: Tensor] = [:]
    private var order: [String] = []
    private let lock = DispatchSemaphore(value: 1)

    /// An encoder over `engine` keeping up to `capacity` texts.
    public init(engine: Engine, capacity: Int = 4096) {
        self.engine = engine
        self.capacity = max(1, capacity)
    }

    /// `[T, C]` final hidden states of the text's tokens (`[0, C]` for a text with no tokens).
    public func tokenStates(_ text: String) throws -> Tensor {
        lock.wait()
        if let hit = cache[text] { lock.signal(); return hit }
        lock.signal()
        let ids = try engine.requireTokenizer().encode(text)
        let c = engine.decoder.config
        let states: Tensor
        if ids.isEmpty {
            states = Tensor(zeros: [0, c.hiddenSize])
        } else {
            states = try engine.decoder.forward([DecoderSequence(tokens: ids, cache: KVCache(config: c, capacity: ids.count))], logits: .none).hidden
        }
        lock.wait()
        if cache[text] == nil {
            cache[text] = states
            order.append(text)
            if order.count > capacity { cache[order.removeFirst()] = nil }
        }
        lock.signal()
        return states
    }

    /// Encodes the texts of `texts` not yet cached in one batched forward and caches them, so the
    /// `tokenStates`/`encode` calls that follow (a batch of policy steps routing one episode after
    /// another) find them. The states equal `tokenStates`' own up to the float rounding of the
    /// batched products.
    public func prefetch(_ texts: [String]) throws {
        lock.wait()
        var missing: [String] = []
        var seen = Set<String>()
        for t in texts where cache[t] == nil && seen.insert(t).inserted { missing.append(t) }
        lock.signal()
        let tokenizer = try engine.requireTokenizer()
        let encoded = missing.map { ($0, tokenizer.encode($0)) }.filter { !$0.1.isEmpty }
        guard encoded.count > 1 else { return }          // one text: `tokenStates` encodes it as cheaply
        let c = engine.decoder.config
        let hidden = try engine.decoder.forward(encoded.map { DecoderSequence(tokens: $0.1, cache: KVCache(config: c, capacity: $0.1.count)) },
                                                logits: .none).hidden
        var row = 0
        lock.wait()
        for (text, ids) in encoded {
            let states = Tensor(uninitialized: [ids.count, c.hiddenSize])
            states.pointer.update(from: hidden.pointer + row * c.hiddenSize, count: ids.count * c.hiddenSize)
            row += ids.count
            if cache[text] == nil {
                cache[text] = states
                order.append(text)
                if order.count > capacity { cache[order.removeFirst()] = nil }
            }
        }
        lock.signal()
    }

    /// `Enc(text)`: the mean of `tokenStates(text)` over tokens (zeros for an empty text).
    public func encode(_ text: String) throws -> [Float] {
        let states = try tokenStates(text)
        return TextEncoder.meanRows(states.pointer, rows: states.rows, columns: engine.decoder.config.hiddenSize)
    }

    /// `Embed(text)`: the mean input embedding of the text's tokens (zeros for an empty text).
    public func embed(_ text: String) throws -> [Float] {
        let ids = try engine.requireTokenizer().encode(text)
        let c = engine.decoder.config.hiddenSize
        var sum = [Float](repeating: 0, count: c)
        guard !ids.isEmpty else { return sum }
        let table = engine.decoder.weights.embedding.pointer
        sum.withUnsafeMutableBufferPointer { s in
            for id in ids { Kernels.add(table + Int(id) * c, into: s.baseAddress!, count: c) }
            Kernels.scale(s.baseAddress!, by: 1 / Float(ids.count), count: c)
        }
        return sum
    }

    static func meanRows(_ x: UnsafePointer<Float>, rows: Int, columns: Int) -> [Float] {
        var sum = [Float](repeating: 0, count: columns)
        guard rows > 0 else { return sum }
        sum.withUnsafeMutableBufferPointer { s in
            for r in 0..<rows { Kernels.add(x + r * columns, into: s.baseAddress!, count: columns) }
            Kernels.scale(s.baseAddress!, by: 1 / Float(rows), count: columns)
        }
        return sum
    }
}
