import CMoRAgent

// Header section "Generation".

@_cdecl("moragent_generation_params_default")
public func moragentGenerationParamsDefault(_ params: UnsafeMutablePointer<moragent_generation_params>?) -> moragent_status {
    withStatus("moragent_generation_params_default") { try GenerateCalls.defaultParams(params) }
}

@_cdecl("moragent_generate")
public func moragentGenerate(_ engine: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ promptLength: Int,
                             _ params: UnsafePointer<moragent_generation_params>?,
                             _ progress: moragent_progress_fn?, _ user: UnsafeMutableRawPointer?,
                             _ outGeneration: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_generate") {
        try GenerateCalls.generate(engine, prompt, promptLength, params, progress, user, outGeneration)
    }
}

@_cdecl("moragent_generation_free")
public func moragentGenerationFree(_ generation: OpaquePointer?) -> moragent_status {
    withStatus("moragent_generation_free") { try GenerateCalls.free(generation) }
}

@_cdecl("moragent_generation_token_count")
public func moragentGenerationTokenCount(_ generation: OpaquePointer?, _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_generation_token_count") { try GenerateCalls.tokenCount(generation, outCount) }
}

@_cdecl("moragent_generation_ids")
public func moragentGenerationIDs(_ generation: OpaquePointer?, _ outIDs: UnsafeMutablePointer<UnsafePointer<Int32>?>?) -> moragent_status {
    withStatus("moragent_generation_ids") { try GenerateCalls.ids(generation, outIDs) }
}

@_cdecl("moragent_generation_logprobs")
public func moragentGenerationLogprobs(_ generation: OpaquePointer?,
                                       _ outLogprobs: UnsafeMutablePointer<UnsafePointer<Float>?>?) -> moragent_status {
    withStatus("moragent_generation_logprobs") { try GenerateCalls.logProbabilities(generation, outLogprobs) }
}

@_cdecl("moragent_generation_entropies")
public func moragentGenerationEntropies(_ generation: OpaquePointer?,
                                        _ outEntropies: UnsafeMutablePointer<UnsafePointer<Float>?>?) -> moragent_status {
    withStatus("moragent_generation_entropies") { try GenerateCalls.entropies(generation, outEntropies) }
}

@_cdecl("moragent_generation_text")
public func moragentGenerationText(_ generation: OpaquePointer?, _ outText: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                   _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_generation_text") { try GenerateCalls.text(generation, outText, outLength) }
}

@_cdecl("moragent_generation_stop_reason")
public func moragentGenerationStopReason(_ generation: OpaquePointer?,
                                         _ outReason: UnsafeMutablePointer<moragent_stop_reason>?) -> moragent_status {
    withStatus("moragent_generation_stop_reason") { try GenerateCalls.stopReason(generation, outReason) }
}
