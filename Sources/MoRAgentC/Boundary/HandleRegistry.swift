import CMoRAgent
import MoRAgent

/// A Swift object that C callers hold as an opaque handle.
protocol CHandle: AnyObject {
    /// The handle's C type name, for messages ("moragent_engine").
    static var cName: String { get }
}

/// The handles the library has given out and not yet freed, so that a pointer that is not one
/// (never returned, freed, or of another kind) is answered with MORAGENT_ERROR_INVALID_HANDLE
/// instead of being dereferenced.
///
/// A handle is the address of a Swift object retained once for the caller (`Unmanaged`); freeing
/// it drops that retain. Detection is best effort: after a free the allocator may place a new
/// object at the same address, and the stale pointer then names the new object.
final class HandleRegistry: @unchecked Sendable {
    /// The one registry of the process.
    static let shared = HandleRegistry()

    /// Live handle address → the type of object behind it.
    private var live: [UnsafeMutableRawPointer: ObjectIdentifier] = [:]
    private let lock = PThreadLock()

    /// Retains `object` for the caller and returns its handle.
    func register<T: CHandle>(_ object: T) -> OpaquePointer {
        let address = Unmanaged.passRetained(object).toOpaque()
        lock.withLock { live[address] = ObjectIdentifier(T.self) }
        return OpaquePointer(address)
    }

    /// The object behind a live handle of kind `T`, retained for the caller's use: the object
    /// outlives this use even if another thread frees the handle meanwhile.
    func resolve<T: CHandle>(_ handle: OpaquePointer?, as type: T.Type, _ name: String) throws -> T {
        guard let handle else { throw CallError.invalidHandle("\(name) is NULL") }
        let address = UnsafeMutableRawPointer(handle)
        return try lock.withLock {
            guard live[address] == ObjectIdentifier(T.self) else { throw deadHandle(address, name, T.self) }
            return Unmanaged<T>.fromOpaque(address).takeUnretainedValue()
        }
    }

    /// Drops the caller's retain of a live handle of kind `T`; NULL is a no-op.
    func free<T: CHandle>(_ handle: OpaquePointer?, as type: T.Type, _ name: String) throws {
        guard let handle else { return }
        let address = UnsafeMutableRawPointer(handle)
        try lock.withLock {
            guard live[address] == ObjectIdentifier(T.self) else { throw deadHandle(address, name, T.self) }
            live[address] = nil
        }
        Unmanaged<T>.fromOpaque(address).release()
    }

    private func deadHandle<T: CHandle>(_ address: UnsafeMutableRawPointer, _ name: String, _ type: T.Type) -> CallError {
        CallError.invalidHandle("\(name) \(address) is not a live \(T.cName) (already freed, never returned by the library, or another kind of handle)")
    }
}
