/// Large tensor buffers kept for reuse after their last view is gone.
///
/// Why: a training step allocates the same few dozen large buffers every time (the tape's
/// activations, the logits, the gradients of the residual stream) and frees them at its end.
/// glibc gives blocks that size back to the kernel (mapped separately above its mmap threshold,
/// or trimmed off the top of the heap), so the next step page-faults every page in again and the
/// kernel zero-fills it: on `qwen05b` about 140,000 page faults (550 MB) per LoRA step. Raising
/// glibc's thresholds (`GLIBC_TUNABLES`) would get that back too, but would change the
/// allocator of the whole host process; this changes only the library's own buffers.
///
/// Policy:
/// - Buffers of at least `minimumBytes` are kept when released, up to `limit` bytes in all
///   (beyond it the longest-kept go first).
/// - An allocation takes the smallest kept buffer that holds it with at most an eighth to spare:
///   RL batches differ in length from one update to the next, so exact sizes rarely repeat.
/// - An allocation that finds none first frees kept buffers (the longest-kept first) of at least
///   its own size. So what is kept plus what is in use never exceeds the most the library had in
///   use at once: the cache cannot raise a process's peak memory, only hold it.
///
/// All members may be called from any thread.
public enum TensorBufferCache {
    /// Smallest buffer worth keeping: below glibc's initial mmap threshold (128 KiB) blocks come
    /// from its heap, which keeps them mapped anyway.
    public static let minimumBytes = 256 * 1024

    /// Most bytes kept at once; 4 GiB unless set (a 0.5B model's LoRA step cycles through about
    /// 1.5 GB). Lowering it frees the longest-kept buffers until what is kept fits; 0 turns
    /// keeping off and frees everything kept.
    public static var limit: Int {
        get { shared.lock.withLock { shared.limit } }
        set {
            precondition(newValue >= 0, "negative cache limit")
            let freed = shared.lock.withLock { () -> [UnsafeMutableRawPointer] in
                shared.limit = newValue
                return shared.evict(toFit: 0)
            }
            freed.forEach { $0.deallocate() }
        }
    }

    /// Bytes held now in kept buffers (not in use by any tensor).
    public static var keptBytes: Int { shared.lock.withLock { shared.keptBytes } }

    /// Frees every kept buffer (the limit stays): for a host that is done training and wants the
    /// memory back now.
    public static func releaseAll() {
        let freed = shared.lock.withLock { shared.evict(bytes: .max) }
        freed.forEach { $0.deallocate() }
    }

    /// A 64-byte aligned buffer of at least `bytes`, and its actual size (to pass back to
    /// `release`): a kept one if one fits.
    static func allocate(bytes: Int) -> (pointer: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= minimumBytes else { return (.allocate(byteCount: bytes, alignment: alignment), bytes) }
        let (reused, freed) = shared.lock.withLock { () -> ((UnsafeMutableRawPointer, Int)?, [UnsafeMutableRawPointer]) in
            if let hit = shared.take(bytes: bytes) { return (hit, []) }
            return (nil, shared.evict(bytes: bytes))
        }
        freed.forEach { $0.deallocate() }
        return reused ?? (.allocate(byteCount: bytes, alignment: alignment), bytes)
    }

    /// Gives back a buffer `allocate(bytes:)` returned, with the size it reported: kept if large
    /// enough and within the limit, freed otherwise.
    static func release(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        guard bytes >= minimumBytes else { pointer.deallocate(); return }
        let freed = shared.lock.withLock { shared.keep(pointer, bytes: bytes) }
        freed.forEach { $0.deallocate() }
    }

    /// Alignment of every buffer (a cache line, and AVX-512's vector width).
    static let alignment = 64

    private static let shared = Store()

    /// The kept buffers, oldest first, behind one lock. Frees happen outside the lock: the
    /// store only decides which.
    private final class Store: @unchecked Sendable {
        let lock = PThreadLock()
        var kept: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        var keptBytes = 0
        var limit = 4 << 30

        /// Removes and returns the smallest kept buffer of `bytes` to `bytes + bytes/8`.
        func take(bytes: Int) -> (UnsafeMutableRawPointer, Int)? {
            var best: Int?
            for (i, entry) in kept.enumerated() where entry.bytes >= bytes && entry.bytes - bytes <= bytes / 8 {
                if best.map({ entry.bytes <= kept[$0].bytes }) ?? true { best = i }
            }
            guard let best else { return nil }
            let entry = kept.remove(at: best)
            keptBytes -= entry.bytes
            return (entry.pointer, entry.bytes)
        }

        /// Keeps `pointer`, returning what must be freed to stay within the limit (`pointer`
        /// itself when it alone is over it).
        func keep(_ pointer: UnsafeMutableRawPointer, bytes: Int) -> [UnsafeMutableRawPointer] {
            guard bytes <= limit else { return [pointer] }
            let freed = evict(toFit: bytes)
            kept.append((pointer, bytes))
            keptBytes += bytes
            return freed
        }

        /// Drops the longest-kept buffers until `extra` more bytes fit under the limit.
        func evict(toFit extra: Int) -> [UnsafeMutableRawPointer] {
            evict(bytes: keptBytes + extra - limit)
        }

        /// Drops the longest-kept buffers until at least `bytes` are dropped (or none is left).
        func evict(bytes: Int) -> [UnsafeMutableRawPointer] {
            var count = 0, dropped = 0
            while count < kept.count && dropped < bytes { dropped += kept[count].bytes; count += 1 }
            let freed = kept.prefix(count).map(\.pointer)
            kept.removeFirst(count)
            keptBytes -= dropped
            return freed
        }
    }
}
