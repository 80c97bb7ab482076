import CMoRAgent

// Header section "Engine".

@_cdecl("moragent_engine_load")
public func moragentEngineLoad(_ modelDir: UnsafePointer<CChar>?, _ outEngine: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_engine_load") { try EngineCalls.load(modelDir, outEngine) }
}

@_cdecl("moragent_engine_free")
public func moragentEngineFree(_ engine: OpaquePointer?) -> moragent_status {
    withStatus("moragent_engine_free") { try EngineCalls.free(engine) }
}

@_cdecl("moragent_engine_get_info")
public func moragentEngineGetInfo(_ engine: OpaquePointer?, _ info: UnsafeMutablePointer<moragent_engine_info>?) -> moragent_status {
    withStatus("moragent_engine_get_info") { try EngineCalls.info(engine, info) }
}
