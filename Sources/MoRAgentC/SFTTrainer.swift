import CMoRAgent

// Header section "Supervised training of Mixture-of-Roles".

@_cdecl("moragent_sft_trainer_create")
public func moragentSFTTrainerCreate(_ engine: OpaquePointer?, _ config: UnsafePointer<CChar>?,
                                     _ outTrainer: UnsafeMutablePointer<OpaquePointer?>?) -> moragent_status {
    withStatus("moragent_sft_trainer_create") { try SFTTrainerCalls.create(engine, config, outTrainer) }
}

@_cdecl("moragent_sft_trainer_free")
public func moragentSFTTrainerFree(_ trainer: OpaquePointer?) -> moragent_status {
    withStatus("moragent_sft_trainer_free") { try SFTTrainerCalls.free(trainer) }
}

@_cdecl("moragent_sft_trainer_step")
public func moragentSFTTrainerStep(_ trainer: OpaquePointer?, _ batch: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_sft_trainer_step") { try SFTTrainerCalls.step(trainer, batch) }
}

@_cdecl("moragent_sft_trainer_evaluate")
public func moragentSFTTrainerEvaluate(_ trainer: OpaquePointer?, _ jsonl: UnsafePointer<CChar>?,
                                       _ outCrossEntropy: UnsafeMutablePointer<Double>?) -> moragent_status {
    withStatus("moragent_sft_trainer_evaluate") { try SFTTrainerCalls.evaluate(trainer, jsonl, outCrossEntropy) }
}

@_cdecl("moragent_sft_trainer_last_stats")
public func moragentSFTTrainerLastStats(_ trainer: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                                        _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_sft_trainer_last_stats") { try SFTTrainerCalls.lastStats(trainer, buffer, capacity, outLength) }
}

@_cdecl("moragent_sft_trainer_save")
public func moragentSFTTrainerSave(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> moragent_status {
    withStatus("moragent_sft_trainer_save") { try SFTTrainerCalls.save(trainer, path) }
}
