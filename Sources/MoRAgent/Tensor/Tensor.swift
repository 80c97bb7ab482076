/// The memory behind one or more tensors: a 64-byte aligned f32 buffer, freed with the last view.
public final class TensorStorage: @unchecked Sendable {
    /// First element.
    public let base: UnsafeMutablePointer<Float>
    /// Number of f32 elements.
    public let count: Int
    /// Bytes of the buffer (at least `count` floats, and at least one: every storage has an
    /// address of its own; a buffer recycled by `TensorBufferCache` may be a little larger).
    private let byteCount: Int

    /// A buffer of `count` elements, zero-filled unless `zeroed` is false (for buffers a kernel
    /// overwrites whole: filling hundreds of MB of logits twice is measurable). Large buffers
    /// come from, and go back to, `TensorBufferCache`.
    public init(count: Int, zeroed: Bool = true) {
        precondition(count >= 0, "negative tensor size")
        self.count = count
        let (raw, bytes) = TensorBufferCache.allocate(bytes: max(count, 1) * MemoryLayout<Float>.stride)
        byteCount = bytes
        base = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if zeroed { base.initialize(repeating: 0, count: max(count, 1)) }
    }

    deinit { TensorBufferCache.release(UnsafeMutableRawPointer(base), bytes: byteCount) }
}

/// A dense, row-major f32 tensor, or a view into one.
///
/// `Tensor` has reference semantics on purpose: it is a window (`offset`, `shape`) onto a
/// `TensorStorage`, so slicing rows for a sequence or a head costs nothing; `copy()` makes an
/// independent tensor. Shapes use the letters of STYLE.md (`B` batch, `T` time, `C` channels …).
public struct Tensor: @unchecked Sendable {
    /// The shared buffer.
    public let storage: TensorStorage
    /// Index of this view's first element in `storage`.
    public let offset: Int
    /// Extent of each dimension, outermost first.
    public let shape: [Int]

    /// A zero-filled tensor of `shape`.
    public init(zeros shape: [Int]) {
        let count = shape.reduce(1, *)
        storage = TensorStorage(count: count)
        offset = 0
        self.shape = shape
    }

    /// A tensor of `shape` whose elements are unspecified until written; for outputs that a
    /// kernel fills completely.
    public init(uninitialized shape: [Int]) {
        let count = shape.reduce(1, *)
        storage = TensorStorage(count: count, zeroed: false)
        offset = 0
        self.shape = shape
    }

    /// A tensor of `shape` holding `values` (row-major); `values.count` must match the shape.
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "values do not fill the shape")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { storage.base.update(from: $0.baseAddress!, count: values.count) }
    }

    init(storage: TensorStorage, offset: Int, shape: [Int]) {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= storage.count, "view outside its storage")
        self.storage = storage
        self.offset = offset
        self.shape = shape
    }

    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Number of rows (the outermost dimension; 1 for a scalar).
    public var rows: Int { shape.first ?? 1 }
    /// Elements per row (the product of every dimension but the first).
    public var rowLength: Int { shape.count <= 1 ? 1 : shape.dropFirst().reduce(1, *) }
    /// Pointer to the first element of this view.
    public var pointer: UnsafeMutablePointer<Float> { storage.base + offset }

    /// A view of rows `range` of the outermost dimension, sharing storage.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "row range outside the tensor")
        return Tensor(storage: storage, offset: offset + range.lowerBound * rowLength,
                      shape: [range.count] + shape.dropFirst())
    }

    /// The same elements seen with another shape of equal size.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "reshape changes the element count")
        return Tensor(storage: storage, offset: offset, shape: newShape)
    }

    /// An independent copy (not zero-filled first: the training forward copies the residual
    /// stream twice per layer).
    public func copy() -> Tensor {
        let t = Tensor(uninitialized: shape)
        t.pointer.update(from: pointer, count: count)
        return t
    }

    /// The elements as an array (tests and small results).
    public var values: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Reads or writes one element of a 2-D tensor.
    public subscript(row: Int, column: Int) -> Float {
        get { precondition(shape.count == 2 && row < shape[0] && column < shape[1]); return pointer[row * shape[1] + column] }
        nonmutating set { precondition(shape.count == 2 && row < shape[0] && column < shape[1]); pointer[row * shape[1] + column] = newValue }
    }
}
