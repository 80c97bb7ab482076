import CMoRAgent

// Header section "Policies".

@_cdecl("moragent_policy_params_default")
public func moragentPolicyParamsDefault(_ params: UnsafeMutablePointer<moragent_policy_params>?) -> moragent_status {
    withStatus("moragent_policy_params_default") { try PolicyCalls.defaultParams(params) }
}

@_cdecl("moragent_policy_create")
public func moragentPolicyCreate(_ engine: OpaquePointer?, _ experts: OpaquePointer?, _ router: OpaquePointer?,
                                 _ params: UnsafePointer<moragent_policy_params>?,
                                 _ outPolicy: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_policy_create") { try PolicyCalls.create(engine, experts, router, params, outPolicy) }
}

@_cdecl("moragent_policy_free")
public func moragentPolicyFree(_ policy: OpaquePointer?) -> moragent_status {
    withStatus("moragent_policy_free") { try PolicyCalls.free(policy) }
}

@_cdecl("moragent_policy_step")
public func moragentPolicyStep(_ policy: OpaquePointer?, _ episode: Int64, _ observation: UnsafePointer<CChar>?,
                               _ goal: UnsafePointer<CChar>?, _ outResult: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_policy_step") { try PolicyCalls.step(policy, episode, observation, goal, outResult) }
}

@_cdecl("moragent_policy_step_batch")
public func moragentPolicyStepBatch(_ policy: OpaquePointer?, _ count: Int, _ episodes: UnsafePointer<Int64>?,
                                    _ observations: UnsafePointer<UnsafePointer<CChar>?>?, _ goals: UnsafePointer<UnsafePointer<CChar>?>?,
                                    _ outResults: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_policy_step_batch") { try PolicyCalls.stepBatch(policy, count, episodes, observations, goals, outResults) }
}

@_cdecl("moragent_policy_end_episode")
public func moragentPolicyEndEpisode(_ policy: OpaquePointer?, _ episode: Int64, _ reward: Double, _ success: Int32) -> moragent_status {
    withStatus("moragent_policy_end_episode") { try PolicyCalls.endEpisode(policy, episode, reward, success) }
}

@_cdecl("moragent_policy_trace_jsonl")
public func moragentPolicyTraceJSONL(_ policy: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                     _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_policy_trace_jsonl") { try PolicyCalls.trace(policy, buffer, capacity, outLength) }
}

@_cdecl("moragent_policy_clear_ended")
public func moragentPolicyClearEnded(_ policy: OpaquePointer?) -> moragent_status {
    withStatus("moragent_policy_clear_ended") { try PolicyCalls.clearEnded(policy) }
}

@_cdecl("moragent_step_result_free")
public func moragentStepResultFree(_ result: OpaquePointer?) -> moragent_status {
    withStatus("moragent_step_result_free") { try PolicyCalls.freeResult(result) }
}

@_cdecl("moragent_step_result_action")
public func moragentStepResultAction(_ result: OpaquePointer?, _ outText: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                     _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_action") { try PolicyCalls.action(result, outText, outLength) }
}

@_cdecl("moragent_step_result_response")
public func moragentStepResultResponse(_ result: OpaquePointer?, _ outText: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                                       _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_response") { try PolicyCalls.response(result, outText, outLength) }
}

@_cdecl("moragent_step_result_action_valid")
public func moragentStepResultActionValid(_ result: OpaquePointer?, _ outValid: UnsafeMutablePointer<Int32>?) -> moragent_status {
    withStatus("moragent_step_result_action_valid") { try PolicyCalls.actionValid(result, outValid) }
}

@_cdecl("moragent_step_result_ids")
public func moragentStepResultIDs(_ result: OpaquePointer?, _ outIDs: UnsafeMutablePointer<UnsafePointer<Int32>?>?,
                                  _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_ids") { try PolicyCalls.ids(result, outIDs, outCount) }
}

@_cdecl("moragent_step_result_logprobs")
public func moragentStepResultLogprobs(_ result: OpaquePointer?, _ outLogprobs: UnsafeMutablePointer<UnsafePointer<Float>?>?,
                                       _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_logprobs") { try PolicyCalls.logProbabilities(result, outLogprobs, outCount) }
}

@_cdecl("moragent_step_result_prompt_ids")
public func moragentStepResultPromptIDs(_ result: OpaquePointer?, _ outIDs: UnsafeMutablePointer<UnsafePointer<Int32>?>?,
                                        _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_prompt_ids") { try PolicyCalls.promptIDs(result, outIDs, outCount) }
}

@_cdecl("moragent_step_result_expert")
public func moragentStepResultExpert(_ result: OpaquePointer?, _ outExpert: UnsafeMutablePointer<Int32>?) -> moragent_status {
    withStatus("moragent_step_result_expert") { try PolicyCalls.expert(result, outExpert) }
}

@_cdecl("moragent_step_result_probabilities")
public func moragentStepResultProbabilities(_ result: OpaquePointer?, _ outProbabilities: UnsafeMutablePointer<UnsafePointer<Float>?>?,
                                            _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_probabilities") { try PolicyCalls.probabilities(result, outProbabilities, outCount) }
}

@_cdecl("moragent_step_result_timing")
public func moragentStepResultTiming(_ result: OpaquePointer?, _ outRoutingSeconds: UnsafeMutablePointer<Double>?,
                                     _ outGenerationSeconds: UnsafeMutablePointer<Double>?) -> moragent_status {
    withStatus("moragent_step_result_timing") { try PolicyCalls.timing(result, outRoutingSeconds, outGenerationSeconds) }
}

@_cdecl("moragent_step_result_roles")
public func moragentStepResultRoles(_ result: OpaquePointer?, _ outRoles: UnsafeMutablePointer<UnsafePointer<Int32>?>?,
                                    _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_roles") { try PolicyCalls.roles(result, outRoles, outCount) }
}

@_cdecl("moragent_step_result_token_experts")
public func moragentStepResultTokenExperts(_ result: OpaquePointer?, _ outExperts: UnsafeMutablePointer<UnsafePointer<Int32>?>?,
                                           _ outCount: UnsafeMutablePointer<Int>?, _ outPerToken: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_step_result_token_experts") { try PolicyCalls.tokenExperts(result, outExperts, outCount, outPerToken) }
}
