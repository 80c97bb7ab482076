import Dispatch

/// The activation buffers of one forward, kept between calls.
///
/// Why: a 512-token prefill of a 0.5B model needs ~40 MB of activations; allocating them anew
/// each call costs page faults and kernel page clearing (measured at ~20% of prefill time).
/// Buffers only grow, and every forward overwrites what it reads, so none is cleared.
final class DecoderScratch {
    private var buffers: [UnsafeMutablePointer<Float>?]
    private var capacities: [Int]

    /// The buffers a forward uses, by role.
    enum Slot: Int, CaseIterable { case residual, normed, qkv, attention, gateUp, activation, cosines, sines, scores, lastRows }

    init() {
        buffers = Array(repeating: nil, count: Slot.allCases.count)
        capacities = Array(repeating: 0, count: Slot.allCases.count)
    }

    deinit { buffers.forEach { $0?.deallocate() } }

    /// A buffer of at least `count` floats for `slot`; its content is unspecified.
    func buffer(_ slot: Slot, count: Int) -> UnsafeMutablePointer<Float> {
        let i = slot.rawValue
        if capacities[i] < count || buffers[i] == nil {
            buffers[i]?.deallocate()
            buffers[i] = .allocate(capacity: max(count, 1))
            capacities[i] = max(count, 1)
        }
        return buffers[i]!
    }
}

/// A thread-safe stack of idle scratch sets: each forward borrows one, so concurrent forwards on
/// a shared decoder never share buffers, and sequential ones reuse the same memory.
final class DecoderScratchPool: @unchecked Sendable {
    private var idle: [DecoderScratch] = []
    private let lock = DispatchSemaphore(value: 1)

    func borrow() -> DecoderScratch {
        lock.wait(); defer { lock.signal() }
        return idle.popLast() ?? DecoderScratch()
    }

    func giveBack(_ scratch: DecoderScratch) {
        lock.wait(); defer { lock.signal() }
        idle.append(scratch)
    }
}
