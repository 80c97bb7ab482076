import Foundation
import XCTest
@testable import MoRAgent

/// Kernels whose fast paths split the work (unrolled accumulators, bias folded into BLAS's
/// `beta`): each must give what the plain definition gives, at every length a tail can take.
final class KernelTests: XCTestCase {
    func testMaxFindsTheLargestAtEveryPositionAndLength() {
        var g = SeededGenerator(seed: 11)
        XCTAssertEqual([Float]().withUnsafeBufferPointer { Kernels.max($0.baseAddress!, count: 0) }, -.infinity)
        for n in 1...75 {
            let values = (0..<n).map { _ in -Float(g.next() % 1000) / 10 - 1 }
            for position in 0..<n {
                var x = values
                x[position] = 5
                let m = x.withUnsafeBufferPointer { Kernels.max($0.baseAddress!, count: n) }
                XCTAssertEqual(m, 5, "n = \(n), largest at \(position)")
            }
            XCTAssertEqual(values.withUnsafeBufferPointer { Kernels.max($0.baseAddress!, count: n) }, values.max()!, "n = \(n)")
        }
    }

    func testLinearWithBiasAddsTheBiasToEveryRow() {
        var g = SeededGenerator(seed: 12)
        let k = 37, n = 29
        let w = Tensor(shape: [n, k], values: (0..<(n * k)).map { _ in Float(Int(g.next() % 200) - 100) / 64 })
        let b = Tensor(shape: [n], values: (0..<n).map { _ in Float(Int(g.next() % 200) - 100) / 16 })
        for m in [1, 2, 7] {  // one row goes through sgemv, more through sgemm
            let x = Tensor(shape: [m, k], values: (0..<(m * k)).map { _ in Float(Int(g.next() % 200) - 100) / 32 })
            let y = Tensor(uninitialized: [m, n]), plain = Tensor(uninitialized: [m, n]), unbiased = Tensor(uninitialized: [m, n])
            BLAS.linear(x.pointer, rows: m, inFeatures: k, weight: w.pointer, bias: b.pointer, outFeatures: n, into: y.pointer)
            BLAS.linear(x.pointer, rows: m, inFeatures: k, weight: w.pointer, outFeatures: n, into: plain.pointer)
            BLAS.linear(x.pointer, rows: m, inFeatures: k, weight: w.pointer, bias: nil, outFeatures: n, into: unbiased.pointer)
            for r in 0..<m {
                for j in 0..<n {
                    var expected = Double(b.pointer[j])
                    for i in 0..<k { expected += Double(x.pointer[r * k + i]) * Double(w.pointer[j * k + i]) }
                    // The inputs are multiples of 1/2048 with small numerators: every product and
                    // partial sum is exact in f32, so any order of summation gives the same float.
                    XCTAssertEqual(Double(y.pointer[r * n + j]), expected, "row \(r), column \(j)")
                    XCTAssertEqual(unbiased.pointer[r * n + j], plain.pointer[r * n + j])
                }
            }
        }
    }

    func testExponentiateGivesUnnormalisedSoftmaxWithoutSubnormals() {
        for n in 1...21 {
            // Every third value far below the maximum: e^(x − max) would be sub-normal or zero.
            let x: [Float] = (0..<n).map { (i: Int) -> Float in i % 3 == 2 ? -95 : Float(i % 5) * 0.7 - 1 }
            var row = x
            let (sum, logSumExp) = row.withUnsafeMutableBufferPointer { Kernels.exponentiate($0.baseAddress!, count: n) }
            let m = Double(x.max()!), e = x.map { Foundation.exp(Double($0) - m) }
            XCTAssertEqual(Double(sum), e.reduce(0, +), accuracy: 1e-6 * Double(n), "n = \(n)")
            XCTAssertEqual(Double(logSumExp), m + Foundation.log(e.reduce(0, +)), accuracy: 1e-6, "n = \(n)")
            for (i, v) in row.enumerated() {
                XCTAssertTrue(v == 0 || v >= Float.leastNormalMagnitude, "n = \(n), value \(i) is sub-normal: \(v)")
                XCTAssertEqual(Double(v), e[i], accuracy: 1e-6, "n = \(n), value \(i)")
            }
        }
    }
}
