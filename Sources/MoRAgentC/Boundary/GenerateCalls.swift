import CMoRAgent
import MoRAgent

/// What a `moragent_generation *` points to: one generation's results, copied into memory that
/// does not move, so the pointers the accessors return stay valid until the handle is freed.
final class GenerationHandle: CHandle {
    static let cName = "moragent_generation"

    let count: Int
    /// `count` ids, log-probabilities and entropies; allocated with room for at least one
    /// element so the accessors never return NULL.
    let ids: UnsafeMutablePointer<Int32>
    let logProbabilities: UnsafeMutablePointer<Float>
    let entropies: UnsafeMutablePointer<Float>
    /// The text's UTF-8 bytes and a NUL.
    let text: UnsafeMutablePointer<CChar>
    let textLength: Int
    let stopReason: moragent_stop_reason

    init(_ result: GenerationResult) {
        count = result.ids.count
        ids = Self.copy(result.ids)
        logProbabilities = Self.copy(result.logProbabilities)
        entropies = Self.copy(result.entropies)
        let bytes = Array(result.text.utf8).map { CChar(bitPattern: $0) } + [0]
        text = Self.copy(bytes)
        textLength = bytes.count - 1
        switch result.stopReason {
        case .maxNewTokens: stopReason = MORAGENT_STOP_REASON_MAX_NEW_TOKENS
        case .stopToken: stopReason = MORAGENT_STOP_REASON_STOP_TOKEN
        case .stopString: stopReason = MORAGENT_STOP_REASON_STOP_STRING
        }
    }

    deinit {
        ids.deallocate()
        logProbabilities.deallocate()
        entropies.deallocate()
        text.deallocate()
    }

    private static func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        _ = UnsafeMutableBufferPointer(start: p, count: values.count).initialize(from: values)
        return p
    }
}

/// The work behind the generation entry points.
enum GenerateCalls {
    /// Size of `moragent_generation_params` in version 0.1, the smallest `struct_size` accepted.
    static let paramsFirstSize = MemoryLayout<moragent_generation_params>.stride

    static func defaultParams(_ params: UnsafeMutablePointer<moragent_generation_params>?) throws {
        let params = try CInput.required(params, "params")
        let size = try CInput.structSize(params, firstSize: paramsFirstSize, "params", "moragent_generation_params")
        // The core's defaults are the single source of the documented ones.
        let d = SamplingParameters()
        params.pointee = moragent_generation_params(
            struct_size: size, temperature: d.temperature, top_p: d.topP, top_k: d.topK, seed: d.seed,
            max_new_tokens: d.maxNewTokens, stop_strings: nil, stop_string_count: 0,
            stop_token_ids: nil, stop_token_count: 0, ignore_eos: 0)
    }

    /// The core's parameters for a C parameter struct (NULL: the defaults). Ranges of the float
    /// fields (NaN, infinities, negatives) are checked by `SamplingParameters.validate`, which
    /// generation runs first; here only what could trap in conversion is checked.
    static func samplingParameters(_ params: UnsafePointer<moragent_generation_params>?) throws -> SamplingParameters {
        var s = SamplingParameters()
        guard let params else { return s }
        _ = try CInput.structSize(params, firstSize: paramsFirstSize, "params", "moragent_generation_params")
        let p = params.pointee
        s.temperature = p.temperature
        s.topP = p.top_p
        s.topK = try CInput.size(p.top_k, "params->top_k")
        s.seed = p.seed
        s.maxNewTokens = try CInput.size(p.max_new_tokens, "params->max_new_tokens")
        let strings = try CInput.elements(p.stop_strings, p.stop_string_count, "params->stop_strings", "params->stop_string_count")
        s.stopStrings = try strings.enumerated().map { try CInput.cString($1, "params->stop_strings[\($0)]") }
        let stopIDs = try CInput.elements(p.stop_token_ids, p.stop_token_count, "params->stop_token_ids", "params->stop_token_count")
        if !stopIDs.isEmpty {
            s.stopTokenIDs = Array(stopIDs)
        } else if p.ignore_eos != 0 {
            s.stopTokenIDs = []
        }
        return s
    }

    static func generate(_ engine: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ promptLength: Int,
                         _ params: UnsafePointer<moragent_generation_params>?,
                         _ progress: moragent_progress_fn?, _ user: UnsafeMutableRawPointer?,
                         _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_generation")
        out.pointee = nil
        let engine = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine
        let prompt = try CInput.elements(prompt, promptLength, "prompt", "prompt_len")
        guard !prompt.isEmpty else { throw CallError.invalidArgument("prompt_len is 0; a prompt needs at least one token") }
        let parameters = try samplingParameters(params)
        let observer: GenerationProgress? = progress.map { callback in
            { done, total in
                let answer = callback(done, total, user)
                guard answer == 0 else {
                    throw CallError.aborted("the progress callback returned \(answer) after \(done) of \(total) tokens")
                }
            }
        }
        let result = try engine.generate(prompts: [Array(prompt)], parameters: parameters, progress: observer)[0]
        LogSink.emit(MORAGENT_LOG_LEVEL_DEBUG, "generated \(result.ids.count) tokens from a \(prompt.count)-token prompt (\(result.stopReason.rawValue))")
        out.pointee = HandleRegistry.shared.register(GenerationHandle(result))
    }

    static func free(_ generation: OpaquePointer?) throws {
        try HandleRegistry.shared.free(generation, as: GenerationHandle.self, "generation")
    }

    // The accessors: resolve the handle, then hand out one field (owned by the handle).

    static func tokenCount(_ generation: OpaquePointer?, _ out: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(generation)
        try CInput.required(out, "out_count").pointee = handle.count
    }

    static func ids(_ generation: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Int32>?>?) throws {
        let handle = try resolve(generation)
        try CInput.required(out, "out_ids").pointee = UnsafePointer(handle.ids)
    }

    static func logProbabilities(_ generation: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Float>?>?) throws {
        let handle = try resolve(generation)
        try CInput.required(out, "out_logprobs").pointee = UnsafePointer(handle.logProbabilities)
    }

    static func entropies(_ generation: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<Float>?>?) throws {
        let handle = try resolve(generation)
        try CInput.required(out, "out_entropies").pointee = UnsafePointer(handle.entropies)
    }

    static func text(_ generation: OpaquePointer?, _ out: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                     _ outLength: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(generation)
        try CInput.required(out, "out_text").pointee = UnsafePointer(handle.text)
        outLength?.pointee = handle.textLength
    }

    static func stopReason(_ generation: OpaquePointer?, _ out: UnsafeMutablePointer<moragent_stop_reason>?) throws {
        let handle = try resolve(generation)
        try CInput.required(out, "out_reason").pointee = handle.stopReason
    }

    private static func resolve(_ generation: OpaquePointer?) throws -> GenerationHandle {
        try HandleRegistry.shared.resolve(generation, as: GenerationHandle.self, "generation")
    }
}
