import CMoRAgent

// Header section "Expert sets".

@_cdecl("moragent_lora_params_default")
public func moragentLoRAParamsDefault(_ params: UnsafeMutablePointer<moragent_lora_params>?) -> moragent_status {
    withStatus("moragent_lora_params_default") { try ExpertsCalls.defaultLoRAParams(params) }
}

@_cdecl("moragent_experts_create")
public func moragentExpertsCreate(_ engine: OpaquePointer?, _ count: Int, _ params: UnsafePointer<moragent_lora_params>?,
                                  _ seed: UInt64, _ outExperts: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_experts_create") { try ExpertsCalls.create(engine, count, params, seed, outExperts) }
}

@_cdecl("moragent_experts_free")
public func moragentExpertsFree(_ experts: OpaquePointer?) -> moragent_status {
    withStatus("moragent_experts_free") { try ExpertsCalls.free(experts) }
}

@_cdecl("moragent_experts_count")
public func moragentExpertsCount(_ experts: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_experts_count") { try ExpertsCalls.count(experts, outCount) }
}

@_cdecl("moragent_experts_load_peft")
public func moragentExpertsLoadPEFT(_ experts: OpaquePointer?, _ dir: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_experts_load_peft") { try ExpertsCalls.loadPEFT(experts, dir) }
}

@_cdecl("moragent_experts_save_peft")
public func moragentExpertsSavePEFT(_ experts: OpaquePointer?, _ index: Int, _ dir: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_experts_save_peft") { try ExpertsCalls.savePEFT(experts, index, dir) }
}
