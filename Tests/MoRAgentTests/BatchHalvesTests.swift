import XCTest
@testable import MoRAgent

/// The data-parallel halves the trainers split each pass into.
final class BatchHalvesTests: XCTestCase {
    /// Longest first, each to the lighter half (ties to the first), each half in index order:
    /// lengths (5, 1, 4, 2, 3) go 5 → A, 4 → B, 3 → B (A 5 > B 4), 2 → A (5 ≤ 7), 1 → A (7 ≤ 7).
    func testSplitBalancesTokensByHand() {
        XCTAssertEqual(BatchHalves.split([5, 1, 4, 2, 3]), [[0, 1, 3], [2, 4]])
        XCTAssertEqual(BatchHalves.split([7]), [[0]])
        XCTAssertEqual(BatchHalves.split([2, 2]), [[0], [1]])
    }

    /// Results come back in index order on one thread or two, BLAS's thread budget is 1 inside
    /// the halves and restored after, and an error in either half is rethrown.
    func testRunKeepsOrderRestoresThreadsAndRethrows() throws {
        let saved = BLAS.threads
        defer { BLAS.threads = saved }
        for threads in [1, 2] {
            BLAS.threads = threads
            let seen = try BatchHalves.run(2) { i in (i, BLAS.threads) }
            XCTAssertEqual(seen.map(\.0), [0, 1])
            XCTAssertEqual(seen.map(\.1), [1, 1])
            XCTAssertEqual(BLAS.threads, threads)
            XCTAssertThrowsError(try BatchHalves.run(2) { i -> Int in
                if i == 1 { throw MoRAgentError.invalidArgument("half \(i)") }
                return i
            }) { XCTAssertTrue("\($0)".contains("half 1"), "\($0)") }
            XCTAssertEqual(BLAS.threads, threads)
        }
    }

    func testAddGradientsSumsTensorByTensor() {
        let sums = [Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]), Tensor(shape: [9], values: (0..<9).map(Float.init))]
        let halves = [Tensor(shape: [2, 3], values: [10, 20, 30, 40, 50, 60]), Tensor(shape: [9], values: Array(repeating: 0.5, count: 9))]
        BatchHalves.addGradients(halves, into: sums)
        XCTAssertEqual(Array(UnsafeBufferPointer(start: sums[0].pointer, count: 6)), [11, 22, 33, 44, 55, 66])
        XCTAssertEqual(Array(UnsafeBufferPointer(start: sums[1].pointer, count: 9)), (0..<9).map { Float($0) + 0.5 })
        XCTAssertEqual(Array(UnsafeBufferPointer(start: halves[0].pointer, count: 6)), [10, 20, 30, 40, 50, 60], "the halves are read only")
    }
}
