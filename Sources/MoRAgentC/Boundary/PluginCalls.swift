#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CMoRAgent
import MoRAgent

/// One registered router kind: the library's copy of a plugin's vtable.
struct RouterKind {
    typealias Create = @convention(c) (UnsafePointer<CChar>?, Int, UnsafeMutablePointer<CChar>?, Int) -> UnsafeMutableRawPointer?
    typealias Decide = @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<moragent_step_features>?, UnsafeMutablePointer<Float>?, Int) -> Int32
    typealias EndEpisode = @convention(c) (UnsafeMutableRawPointer?, Int64) -> Void
    typealias Destroy = @convention(c) (UnsafeMutableRawPointer?) -> Void

    let name: String
    /// The plugin file that registered it, for messages.
    let path: String
    let create: Create
    let decide: Decide
    let endEpisode: EndEpisode?
    let destroy: Destroy
}

/// A router of a plugin's kind as a core `StepRouter`: the plugin's `decide` fills the weights,
/// which the core's `CallbackRouter` turns into a route; the state is destroyed with the router.
final class PluginRouter: StepRouter {
    let kind: RouterKind
    private let state: UnsafeMutableRawPointer
    private let weights: CallbackRouter

    init(kind: RouterKind, state: UnsafeMutableRawPointer, expertCount: Int) {
        self.kind = kind
        self.state = state
        let decide = kind.decide, source = "the decide function of router kind \"\(kind.name)\" (\(kind.path))"
        weights = CallbackRouter(expertCount: expertCount) { context in
            try ExternalWeights.collect(context, expertCount: expertCount, source: source) { features, weights in
                decide(state, features, weights, expertCount)
            }
        }
    }

    deinit { kind.destroy(state) }

    var expertCount: Int { weights.expertCount }

    func decide(_ context: StepContext) throws -> StepDecision { try weights.decide(context) }

    func endEpisode(_ episode: Int) { kind.endEpisode?(state, Int64(episode)) }
}

/// The process-wide registry of router kinds, and the loading of plugins into it.
///
/// A load is all or nothing: kinds the entry point registers are staged and join the registry
/// only when the whole load succeeds; otherwise the library is closed again. Loaded plugins are
/// never closed, since routers of their kinds call into them for as long as they live.
final class PluginRegistry: @unchecked Sendable {
    static let shared = PluginRegistry()

    /// A load in progress: where registrations go, and the first thing wrong with one.
    private final class Loading {
        let path: String
        let thread: pthread_t
        var staged: [RouterKind] = []
        var error: CallError?

        init(path: String, thread: pthread_t) {
            self.path = path
            self.thread = thread
        }
    }

    private var kinds: [String: RouterKind] = [:]
    /// dlopen handles of loaded plugins → the path they were loaded from.
    private var loaded: [UnsafeMutableRawPointer: String] = [:]
    private var loading: Loading?
    /// Recursive: the entry point registers kinds on the loading thread, which holds it.
    private let lock = PThreadLock(recursive: true)

    /// The one registrar every load passes. It lives as long as the process, so a plugin that
    /// (wrongly) keeps it and calls it later reads valid memory and is refused.
    private static let registrar: UnsafeMutablePointer<moragent_plugin_registrar> = {
        let r = UnsafeMutablePointer<moragent_plugin_registrar>.allocate(capacity: 1)
        r.initialize(to: moragent_plugin_registrar(
            struct_size: MemoryLayout<moragent_plugin_registrar>.stride, api_version: UInt32(MORAGENT_PLUGIN_API_VERSION),
            register_router: { registrar, kind in PluginRegistry.shared.register(registrar, kind) }))
        return r
    }()

    static let kindFirstSize = MemoryLayout<moragent_router_kind>.stride
    static let maxNameLength = 64

    /// The kind registered as `name`.
    func kind(named name: String) -> RouterKind? { lock.withLock { kinds[name] } }

    /// The registered kind names, sorted, for messages.
    var names: [String] { lock.withLock { kinds.keys.sorted() } }

    func load(_ path: String) throws {
        try lock.withLock {
            guard loading == nil else {
                throw CallError.invalidArgument("\(path): moragent_plugin_load was called from inside the registration of \(loading!.path)")
            }
            guard let library = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
                let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
                if access(path, F_OK) != 0 { throw CallError.io("\(path): no such plugin file (\(reason))") }
                throw CallError.malformedFile("\(path): cannot be loaded as a shared object: \(reason)")
            }
            var committed = false
            defer { if !committed { dlclose(library) } }
            if let first = loaded[library] {
                throw CallError.invalidArgument("\(path): this plugin is already loaded (from \(first)); its router kinds are registered")
            }
            guard let symbol = dlsym(library, MORAGENT_PLUGIN_ENTRY_POINT) else {
                throw CallError.malformedFile("\(path): no symbol \(MORAGENT_PLUGIN_ENTRY_POINT); a plugin defines MORAGENT_PLUGIN_EXPORT int \(MORAGENT_PLUGIN_ENTRY_POINT)(moragent_plugin_registrar *)")
            }
            let entry = unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<moragent_plugin_registrar>?) -> Int32).self)
            let state = Loading(path: path, thread: pthread_self())
            loading = state
            let answer = entry(Self.registrar)
            loading = nil
            if let error = state.error { throw error }
            guard answer == 0 else { throw CallError.callback("\(path): \(MORAGENT_PLUGIN_ENTRY_POINT) returned \(answer)") }
            guard !state.staged.isEmpty else { throw CallError.malformedFile("\(path): \(MORAGENT_PLUGIN_ENTRY_POINT) registered no router kind") }
            for kind in state.staged { kinds[kind.name] = kind }
            loaded[library] = path
            committed = true
        }
    }

    /// `register_router`: stages `kind` for the load in progress on this thread, or refuses it
    /// (recording the first reason, which fails the load).
    private func register(_ registrar: UnsafeMutablePointer<moragent_plugin_registrar>?, _ kind: UnsafePointer<moragent_router_kind>?) -> Int32 {
        lock.withLock {
            guard let current = loading, pthread_equal(current.thread, pthread_self()) != 0, registrar == Self.registrar else {
                return -1  // outside the entry point's call: the registrar is no longer valid
            }
            guard current.error == nil else { return -1 }
            do {
                current.staged.append(try validate(kind, current))
                return 0
            } catch let error as CallError {
                current.error = error
                return -1
            } catch {
                current.error = CallError(status: MORAGENT_ERROR_INTERNAL, message: "\(error)")
                return -1
            }
        }
    }

    /// A copy of `kind` after checking everything the library will rely on.
    private func validate(_ kind: UnsafePointer<moragent_router_kind>?, _ load: Loading) throws -> RouterKind {
        let path = load.path
        guard let kind else { throw CallError.malformedFile("\(path): register_router was given a NULL kind") }
        let size = UnsafeRawPointer(kind).loadUnaligned(as: Int.self)
        guard size >= Self.kindFirstSize, size <= CInput.maxStructSize else {
            throw CallError.malformedFile("\(path): a router kind's struct_size is \(UInt(bitPattern: size)); set it to sizeof(moragent_router_kind) (at least \(Self.kindFirstSize))")
        }
        // struct_size and api_version lead every version of the struct; the rest is read only
        // once the version is known to be this one.
        let version = UnsafeRawPointer(kind).loadUnaligned(fromByteOffset: MemoryLayout<Int>.stride, as: UInt32.self)
        guard version == UInt32(MORAGENT_PLUGIN_API_VERSION) else {
            throw CallError.unsupported("\(path): a router kind was built for plugin API version \(version); this library implements version \(MORAGENT_PLUGIN_API_VERSION)")
        }
        let k = kind.pointee
        guard let namePointer = k.name else { throw CallError.malformedFile("\(path): a router kind has a NULL name") }
        let name = String(decoding: UnsafeBufferPointer(start: UnsafeRawPointer(namePointer).assumingMemoryBound(to: UInt8.self),
                                                        count: strnlen(namePointer, Self.maxNameLength + 1)), as: UTF8.self)
        let allowed = name.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2E || c == 0x2D
        }
        guard !name.isEmpty, name.utf8.count <= Self.maxNameLength, allowed else {
            throw CallError.malformedFile("\(path): router kind name \"\(name)\" must be 1 to \(Self.maxNameLength) characters from [A-Za-z0-9_.-]")
        }
        guard let create = k.create, let decide = k.decide, let destroy = k.destroy else {
            throw CallError.malformedFile("\(path): router kind \"\(name)\" lacks a required function (create, decide and destroy must not be NULL)")
        }
        if let other = kinds[name]?.path ?? load.staged.first(where: { $0.name == name })?.path {
            throw CallError.invalidArgument("\(path): router kind \"\(name)\" is already registered (by \(other))")
        }
        return RouterKind(name: name, path: path, create: create, decide: decide, endEpisode: k.end_episode, destroy: destroy)
    }
}

/// The work behind the plugin entry points.
enum PluginCalls {
    /// Room given to a kind's `create` for its reason to refuse a configuration.
    static let errorCapacity = 1024

    static func load(_ path: UnsafePointer<CChar>?) throws {
        try PluginRegistry.shared.load(try CInput.cString(path, "path"))
    }

    static func createKind(_ name: UnsafePointer<CChar>?, _ configJSON: UnsafePointer<CChar>?, _ expertCount: Int,
                           _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_router")
        out.pointee = nil
        let name = try CInput.cString(name, "name")
        let config = try CInput.optionalCString(configJSON, "config_json") ?? "{}"
        do { _ = try JSONValue.parse(config) } catch { throw CallError.invalidArgument("config_json is not well-formed JSON: \(error)") }
        let count = try CInput.expertCount(expertCount, "expert_count")
        guard let kind = PluginRegistry.shared.kind(named: name) else {
            let known = PluginRegistry.shared.names
            throw CallError.invalidArgument("no plugin registered a router kind named \"\(name)\" (registered: \(known.isEmpty ? "none" : known.joined(separator: ", ")))")
        }
        var reason = [CChar](repeating: 0, count: errorCapacity)
        let state = config.withCString { c in reason.withUnsafeMutableBufferPointer { kind.create(c, count, $0.baseAddress, $0.count) } }
        guard let state else {
            let bytes = reason.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            throw CallError.invalidArgument("router kind \"\(name)\" refused the configuration: \(bytes.isEmpty ? "(no reason given)" : String(decoding: bytes, as: UTF8.self))")
        }
        out.pointee = HandleRegistry.shared.register(RouterHandle(PluginRouter(kind: kind, state: state, expertCount: count), kind: name))
    }
}
