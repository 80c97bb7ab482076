import Dispatch

/// Data parallelism inside one training pass: a batch of sequences is split into two halves of
/// about equal token counts, each half runs its forward and backward on its own thread with
/// single-threaded BLAS into its own gradient buffers, and the caller sums the buffers in a
/// fixed order.
///
/// Why: OpenBLAS's threads split each product and meet after it, and the element-wise passes
/// and small products between them leave the second core idle. Two halves, one core each, keep
/// both busy from the first product to the last: `moragent bench train` runs ~1.25× faster on
/// `tiny` and ~1.2× on `qwen05b` than with two OpenBLAS threads on the whole batch (about twice
/// one thread's speed), and on the household base model (hidden 128) pretraining ran 1.5× where
/// OpenBLAS's threads gave 1.14×.
///
/// The split does not depend on the thread count: with one thread the halves run one after the
/// other into the same buffers, so a step's bytes are the same on one core or two. (A batch of
/// one sequence is not split and runs on OpenBLAS's own threads, whose sums can round
/// differently with their number.)
public enum BatchHalves {
    /// Sequence indices in one part (a single sequence), or in two of about equal token counts
    /// (longest first, each to the lighter part; each part in index order).
    public static func split(_ lengths: [Int]) -> [[Int]] {
        guard lengths.count > 1 else { return [Array(lengths.indices)] }
        var parts: [[Int]] = [[], []], load = [0, 0]
        for i in lengths.indices.sorted(by: { lengths[$0] != lengths[$1] ? lengths[$0] > lengths[$1] : $0 < $1 }) {
            let p = load[0] <= load[1] ? 0 : 1
            parts[p].append(i)
            load[p] += lengths[i]
        }
        return parts.map { $0.sorted() }
    }

    /// Adds the second half's gradients into the first's (`sums[i] += halves[i]`, tensor by
    /// tensor, always in this order): the sum a step's optimiser then reads.
    public static func addGradients(_ halves: [Tensor], into sums: [Tensor]) {
        precondition(halves.count == sums.count && zip(halves, sums).allSatisfy { $0.count == $1.count }, "gradient lists differ")
        for (half, sum) in zip(halves, sums) { Kernels.add(half.pointer, into: sum.pointer, count: sum.count) }
    }

    /// `body(0..<count)`'s results in order. With `count` 2 and a thread budget (`BLAS.threads`)
    /// above one, the two calls run on two threads with `BLAS.threads` set to 1 for their
    /// duration (and restored after); otherwise one after the other on the calling thread. The
    /// bodies must be safe to run at the same time: they share only read-only state and write
    /// their own buffers. The first error (in index order) is rethrown after both have finished.
    public static func run<T>(_ count: Int, _ body: (Int) throws -> T) throws -> [T] {
        let saved = BLAS.threads
        guard count == 2, saved > 1 else { return try (0..<count).map(body) }
        var results = [Result<T, Error>?](repeating: nil, count: count)
        BLAS.threads = 1
        defer { BLAS.threads = saved }
        results.withUnsafeMutableBufferPointer { slots in
            DispatchQueue.concurrentPerform(iterations: count) { i in slots[i] = Result { try body(i) } }
        }
        return try results.map { try $0!.get() }
    }
}
