import CMoRAgent

// Header section "Reinforcement learning".

@_cdecl("moragent_policy_begin_episode")
public func moragentPolicyBeginEpisode(_ policy: OpaquePointer?, _ episode: Int64, _ group: Int64) -> moragent_status {
    withStatus("moragent_policy_begin_episode") { try TrainerCalls.beginEpisode(policy, episode, group) }
}

@_cdecl("moragent_policy_step_reward")
public func moragentPolicyStepReward(_ policy: OpaquePointer?, _ episode: Int64, _ reward: Double) -> moragent_status {
    withStatus("moragent_policy_step_reward") { try TrainerCalls.stepReward(policy, episode, reward) }
}

@_cdecl("moragent_policy_recorded_steps")
public func moragentPolicyRecordedSteps(_ policy: OpaquePointer?, _ outSteps: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_policy_recorded_steps") { try TrainerCalls.recordedSteps(policy, outSteps) }
}

@_cdecl("moragent_trainer_params_default")
public func moragentTrainerParamsDefault(_ params: UnsafeMutablePointer<moragent_trainer_params>?) -> moragent_status {
    withStatus("moragent_trainer_params_default") { try TrainerCalls.defaultParams(params) }
}

@_cdecl("moragent_trainer_create")
public func moragentTrainerCreate(_ policy: OpaquePointer?, _ params: UnsafePointer<moragent_trainer_params>?,
                                  _ outTrainer: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_trainer_create") { try TrainerCalls.create(policy, params, outTrainer) }
}

@_cdecl("moragent_trainer_free")
public func moragentTrainerFree(_ trainer: OpaquePointer?) -> moragent_status {
    withStatus("moragent_trainer_free") { try TrainerCalls.free(trainer) }
}

@_cdecl("moragent_trainer_update")
public func moragentTrainerUpdate(_ trainer: OpaquePointer?, _ progress: moragent_progress_fn?, _ user: UnsafeMutableRawPointer?) -> moragent_status {
    withStatus("moragent_trainer_update") { try TrainerCalls.update(trainer, progress, user) }
}

@_cdecl("moragent_trainer_last_stats")
public func moragentTrainerLastStats(_ trainer: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                     _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_trainer_last_stats") { try TrainerCalls.lastStats(trainer, buffer, capacity, outLength) }
}

@_cdecl("moragent_trainer_save")
public func moragentTrainerSave(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_trainer_save") { try TrainerCalls.save(trainer, path) }
}

@_cdecl("moragent_trainer_load")
public func moragentTrainerLoad(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_trainer_load") { try TrainerCalls.load(trainer, path) }
}

@_cdecl("moragent_trainer_export_expert")
public func moragentTrainerExportExpert(_ trainer: OpaquePointer?, _ expert: Int, _ folder: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_trainer_export_expert") { try TrainerCalls.exportExpert(trainer, expert, folder) }
}
