import Dispatch
import XCTest
@testable import MoRAgent

/// The recycling of large tensor buffers between training steps.
final class TensorBufferCacheTests: XCTestCase {
    /// 1 MiB of floats: above `minimumBytes`.
    let large = 256 * 1024

    override func setUp() {
        TensorBufferCache.releaseAll()
    }

    override func tearDown() {
        TensorBufferCache.limit = 4 << 30
        TensorBufferCache.releaseAll()
    }

    /// A large buffer is kept when its last view goes, handed to the next tensor of that size,
    /// and a zero-filled tensor on a recycled buffer is all zeros again.
    func testReleasedBufferIsReusedAndZeroedAgain() {
        var address: UnsafeMutablePointer<Float>?
        do {
            let t = Tensor(uninitialized: [large])
            address = t.pointer
            t.pointer.update(repeating: 7, count: large)
        }
        XCTAssertEqual(TensorBufferCache.keptBytes, large * 4)
        let again = Tensor(zeros: [large / 2, 2])
        XCTAssertEqual(again.pointer, address)
        XCTAssertEqual(TensorBufferCache.keptBytes, 0)
        XCTAssertEqual(again.values.max(), 0)
        XCTAssertEqual(again.values.min(), 0)
    }

    /// A kept buffer serves a request up to an eighth smaller; a request it does not fit frees it
    /// when kept plus in use would pass the peak of in use and a quarter; small buffers are
    /// never kept.
    func testFitWithinAnEighthAndFreeOnMiss() {
        let other = TensorBufferCache.inUseBytes  // tensors other tests may still hold
        do { _ = Tensor(uninitialized: [large]) }
        withExtendedLifetime(Tensor(uninitialized: [large - large / 10])) {
            XCTAssertEqual(TensorBufferCache.keptBytes, 0, "a request within an eighth takes the kept buffer")
        }
        XCTAssertEqual(TensorBufferCache.keptBytes, large * 4, "the recycled buffer goes back at its full size")
        // A miss of 3·large floats (12·large bytes): the peak becomes other + 12·large bytes, and
        // kept + in use would be other + 4·large + 12·large.
        let peak = other + 12 * large, bound = peak + peak / 4
        withExtendedLifetime(Tensor(uninitialized: [3 * large])) {
            let expected = other + 16 * large > bound ? 0 : large * 4
            XCTAssertEqual(TensorBufferCache.keptBytes, expected, "a miss frees kept buffers only beyond the bound")
        }
        // Kept now: the 3·large buffer (and the first one if it stayed); a miss of large/2 stays
        // within the bound when other tensors hold nothing, and then frees nothing.
        let keptBefore = TensorBufferCache.keptBytes
        withExtendedLifetime(Tensor(uninitialized: [large / 2])) {
            if other + keptBefore + 2 * large <= bound {
                XCTAssertEqual(TensorBufferCache.keptBytes, keptBefore, "a miss within the bound frees nothing")
            } else {
                XCTAssertLessThan(TensorBufferCache.keptBytes, keptBefore)
            }
        }
        TensorBufferCache.releaseAll()
        do { _ = Tensor(uninitialized: [1000]) }
        XCTAssertEqual(TensorBufferCache.keptBytes, 0, "buffers below minimumBytes go straight back to the allocator")
    }

    /// A step whose sizes peak at different moments (four buffers of one size, then three of it
    /// with one half as large again) needs more buffers than its peak in use, but within a
    /// quarter more: the second step gets every buffer from the first.
    func testRepeatedStepReusesEveryBuffer() {
        func step() -> Set<UnsafeMutableRawPointer> {
            var seen = Set<UnsafeMutableRawPointer>()
            withExtendedLifetime((0..<4).map { _ in Tensor(uninitialized: [large]) }) { ts in
                ts.forEach { seen.insert(UnsafeMutableRawPointer($0.pointer)) }
            }
            withExtendedLifetime((0..<3).map { _ in Tensor(uninitialized: [large]) } + [Tensor(uninitialized: [large + large / 2])]) { ts in
                ts.forEach { seen.insert(UnsafeMutableRawPointer($0.pointer)) }
            }
            return seen
        }
        let first = step()
        XCTAssertEqual(first.count, 5, "four of one size, then three of them again and one new")
        XCTAssertEqual(TensorBufferCache.keptBytes, (4 * large + large + large / 2) * 4)
        XCTAssertEqual(step(), first, "the second step reuses the first step's buffers")
    }

    /// The limit bounds what is kept (the longest-kept go first), lowering it frees at once, and
    /// a limit of 0 keeps nothing.
    func testLimitBoundsWhatIsKept() {
        let bytes = large * 4
        TensorBufferCache.limit = 2 * bytes + 1000
        withExtendedLifetime((Tensor(uninitialized: [large]), Tensor(uninitialized: [large + 8]), Tensor(uninitialized: [large + 16]))) {}
        XCTAssertGreaterThan(TensorBufferCache.keptBytes, 2 * bytes, "two of the three fit under the limit")
        XCTAssertLessThanOrEqual(TensorBufferCache.keptBytes, 2 * bytes + 1000)
        TensorBufferCache.limit = bytes + 100
        XCTAssertGreaterThanOrEqual(TensorBufferCache.keptBytes, bytes, "one still fits")
        XCTAssertLessThanOrEqual(TensorBufferCache.keptBytes, bytes + 100)
        TensorBufferCache.limit = 0
        XCTAssertEqual(TensorBufferCache.keptBytes, 0)
        do { _ = Tensor(uninitialized: [large]) }
        XCTAssertEqual(TensorBufferCache.keptBytes, 0)
    }

    /// Two threads allocating and releasing buffers of varying sizes at once: every tensor holds
    /// its own values throughout, and what is kept stays within the limit.
    func testConcurrentUseKeepsBuffersApart() {
        TensorBufferCache.limit = 8 * large * 4
        let failures = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        failures.initialize(repeating: 0, count: 2)
        defer { failures.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            for round in 0..<200 {
                let count = large + (round % 5) * 4096
                let mark = Float(thread * 1000 + round)
                let tensors = (0..<3).map { _ in Tensor(uninitialized: [count]) }
                for t in tensors { t.pointer.update(repeating: mark, count: count) }
                for t in tensors where t.pointer[0] != mark || t.pointer[count - 1] != mark { failures[thread] += 1 }
            }
        }
        XCTAssertEqual(failures[0] + failures[1], 0)
        XCTAssertLessThanOrEqual(TensorBufferCache.keptBytes, 8 * large * 4)
        XCTAssertGreaterThan(TensorBufferCache.keptBytes, 0)
    }
}
