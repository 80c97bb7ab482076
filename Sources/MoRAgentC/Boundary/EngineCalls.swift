#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CMoRAgent
import MoRAgent

/// What a `moragent_engine *` points to: the core engine and the C strings its info hands out.
final class EngineHandle: CHandle {
    static let cName = "moragent_engine"

    let engine: Engine
    /// The architecture name as a C string, owned here so `moragent_engine_info.architecture`
    /// stays valid for the engine's life.
    let architecture: UnsafeMutablePointer<CChar>

    init(engine: Engine) {
        self.engine = engine
        architecture = strdup(engine.decoder.config.architecture.rawValue)!
    }

    deinit { free(architecture) }
}

/// The work behind the engine entry points.
enum EngineCalls {
    /// Size of `moragent_engine_info` in version 0.1, the smallest `struct_size` accepted.
    static let infoFirstSize = MemoryLayout<moragent_engine_info>.stride

    static func load(_ modelDir: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_engine")
        out.pointee = nil
        let folder = try CInput.cString(modelDir, "model_dir")
        let handle = EngineHandle(engine: try Engine(folder: folder))
        let c = handle.engine.decoder.config
        LogSink.emit(MORAGENT_LOG_LEVEL_INFO, "loaded \(c.architecture.rawValue) from \(folder): \(c.layerCount) layers, hidden \(c.hiddenSize), vocabulary \(c.vocabularySize), \(c.parameterCount) parameters, tokenizer \(handle.engine.tokenizer == nil ? "none" : "tokenizer.json"); OpenBLAS kernels \(BLASCoreType.current)")
        if let better = BLASCoreType.correction {
            LogSink.emit(MORAGENT_LOG_LEVEL_WARNING, "OpenBLAS runs its generic \(BLASCoreType.current) kernels on a CPU that supports \(better); set OPENBLAS_CORETYPE=\(better) before the library is loaded")
        }
        out.pointee = HandleRegistry.shared.register(handle)
    }

    static func free(_ engine: OpaquePointer?) throws {
        try HandleRegistry.shared.free(engine, as: EngineHandle.self, "engine")
    }

    static func info(_ engine: OpaquePointer?, _ info: UnsafeMutablePointer<moragent_engine_info>?) throws {
        let handle = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine")
        let info = try CInput.required(info, "info")
        _ = try CInput.structSize(info, firstSize: infoFirstSize, "info", "moragent_engine_info")
        let c = handle.engine.decoder.config
        // Every field this version knows is written; struct_size tells a caller built against a
        // newer header where the filled part ends.
        info.pointee = moragent_engine_info(
            struct_size: infoFirstSize,
            architecture: UnsafePointer(handle.architecture),
            vocabulary_size: c.vocabularySize,
            tokenizer_vocabulary_size: handle.engine.tokenizer?.vocabularySize ?? 0,
            hidden_size: c.hiddenSize,
            layer_count: c.layerCount,
            // config.json's value is not range-checked by the core; a negative one reads as 0.
            max_position_embeddings: max(c.maxPositionEmbeddings, 0),
            parameter_count: UInt64(clamping: c.parameterCount))
    }
}
