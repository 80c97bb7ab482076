import CMoRAgent
import MoRAgent

/// What a `moragent_experts *` points to: a core expert set and the lock that serialises the
/// calls on it. Why a lock: `ExpertSet.add` appends to an array that `count`, `save` and
/// policy creation read, and the header lets any thread call any of them.
final class ExpertsHandle: CHandle {
    static let cName = "moragent_experts"

    private let set: ExpertSet
    private let lock = PThreadLock()

    init(_ set: ExpertSet) { self.set = set }

    var count: Int { lock.withLock { set.count } }

    /// The model the set's experts are made for (immutable).
    var model: ModelConfig { self.set.model }

    /// The experts as they are now, for a policy: later additions to this set do not reach it.
    var experts: [LoRAExpert] { lock.withLock { set.experts } }

    /// Appends the expert `load` makes for the set's model (nothing changes when it throws).
    func append(_ load: (ModelConfig) throws -> LoRAExpert) throws {
        try lock.withLock {
            guard set.count < CInput.maxExperts else {
                throw CallError.invalidArgument("the set already holds \(CInput.maxExperts) experts, the most supported")
            }
            try set.add(try load(set.model))
        }
    }

    /// Expert `index`, or an error naming the valid range.
    func expert(_ index: Int) throws -> LoRAExpert {
        try lock.withLock {
            guard index >= 0, index < set.count else {
                throw CallError.invalidArgument("index \(UInt(bitPattern: index)) is not below the expert count \(set.count)")
            }
            return set.experts[index]
        }
    }
}

/// The work behind the expert-set entry points.
enum ExpertsCalls {
    /// Size of `moragent_lora_params` in version 0.2, the smallest `struct_size` accepted.
    static let loraParamsFirstSize = MemoryLayout<moragent_lora_params>.stride

    /// `moragent_module` bits in `ProjectionKind` order.
    static let moduleBits: [(bit: UInt32, kind: ProjectionKind)] = [
        (MORAGENT_MODULE_Q.rawValue, .q), (MORAGENT_MODULE_K.rawValue, .k), (MORAGENT_MODULE_V.rawValue, .v),
        (MORAGENT_MODULE_O.rawValue, .o), (MORAGENT_MODULE_GATE.rawValue, .gate), (MORAGENT_MODULE_UP.rawValue, .up),
        (MORAGENT_MODULE_DOWN.rawValue, .down),
    ]

    /// Largest LoRA rank accepted: no adapter needs more, and it keeps the size arithmetic small.
    static let maxRank = 65536

    static func defaultLoRAParams(_ params: UnsafeMutablePointer<moragent_lora_params>?) throws {
        let params = try CInput.required(params, "params")
        let size = try CInput.structSize(params, firstSize: loraParamsFirstSize, "params", "moragent_lora_params")
        // The core's defaults are the single source of the documented ones.
        let d = LoRAConfiguration()
        params.pointee = moragent_lora_params(struct_size: size, rank: d.rank, alpha: d.alpha, use_rslora: d.useRSLoRA ? 1 : 0,
                                              target_modules: bits(of: d.targetModules))
    }

    static func bits(of kinds: Set<ProjectionKind>) -> UInt32 {
        moduleBits.filter { kinds.contains($0.kind) }.reduce(0) { $0 | $1.bit }
    }

    /// The core configuration for a C parameter struct (NULL: the defaults).
    static func configuration(_ params: UnsafePointer<moragent_lora_params>?) throws -> LoRAConfiguration {
        guard let params else { return LoRAConfiguration() }
        _ = try CInput.structSize(params, firstSize: loraParamsFirstSize, "params", "moragent_lora_params")
        let p = params.pointee
        guard p.rank >= 1, p.rank <= maxRank else {
            throw CallError.invalidArgument("params->rank is \(UInt(bitPattern: p.rank)); it must be from 1 to \(maxRank)")
        }
        let known = moduleBits.reduce(UInt32(0)) { $0 | $1.bit }
        guard p.target_modules != 0, p.target_modules & ~known == 0 else {
            throw CallError.invalidArgument("params->target_modules is 0x\(String(p.target_modules, radix: 16)); it must be a non-zero OR of MORAGENT_MODULE_* values")
        }
        let targets = Set(moduleBits.filter { p.target_modules & $0.bit != 0 }.map(\.kind))
        let c = LoRAConfiguration(rank: p.rank, alpha: p.alpha, useRSLoRA: p.use_rslora != 0, targetModules: targets)
        try c.validate()
        return c
    }

    static func create(_ engine: OpaquePointer?, _ count: Int, _ params: UnsafePointer<moragent_lora_params>?, _ seed: UInt64,
                       _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_experts")
        out.pointee = nil
        let model = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine.decoder.config
        let count = try CInput.expertCount(count, "count")
        let configuration = try configuration(params)
        // r · (in + out) per adapted projection, per layer, per expert: checked before anything
        // is allocated.
        let perLayer = configuration.targetModules.map { kind -> [Int] in
            let shape = model.projectionShape(kind)
            return [count, model.layerCount, configuration.rank, shape.in + shape.out]
        }
        _ = try CInput.parameterCount(perLayer, "an expert set of \(count) experts of rank \(configuration.rank)")
        let set = try ExpertSet(model: model, count: count, configuration: configuration, seed: seed)
        out.pointee = HandleRegistry.shared.register(ExpertsHandle(set))
    }

    static func free(_ experts: OpaquePointer?) throws {
        try HandleRegistry.shared.free(experts, as: ExpertsHandle.self, "experts")
    }

    static func count(_ experts: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(experts)
        try CInput.required(out, "out_count").pointee = handle.count
    }

    static func loadPEFT(_ experts: OpaquePointer?, _ dir: UnsafePointer<CChar>?) throws {
        let handle = try resolve(experts)
        let folder = try CInput.cString(dir, "dir")
        try handle.append { model in try PEFTAdapter.load(folder: folder, model: model) }
    }

    static func savePEFT(_ experts: OpaquePointer?, _ index: Int, _ dir: UnsafePointer<CChar>?) throws {
        let handle = try resolve(experts)
        let folder = try CInput.cString(dir, "dir")
        try PEFTAdapter.save(try handle.expert(index), folder: folder)
    }

    static func resolve(_ experts: OpaquePointer?) throws -> ExpertsHandle {
        try HandleRegistry.shared.resolve(experts, as: ExpertsHandle.self, "experts")
    }
}
