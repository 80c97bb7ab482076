import ArgumentParser
import Foundation
import MoRAgent

/// `moragent bench route`: what routing costs. (1) A batch of 8 sequences spread over 4 experts
/// against the same batch on one expert (generation with a 128-token prompt and 32 new tokens;
/// aim ≥ 0.9× the single-expert throughput). (2) The phase router's share of a policy step,
/// with `Enc` cache misses (every observation new) and hits (observations seen before).
struct BenchRouteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "route", abstract: "Mixed-expert batches and phase-router overhead, as JSON.")

    @Option(help: "A Hugging Face model folder (with tokenizer.json).") var model: String?
    @Option(help: "A named random shape: tiny or qwen05b (a byte-level tokenizer is built for it).") var shape: String?
    @Option(help: "Timed repetitions (median reported).") var repeats = 3
    @Option(help: "OpenBLAS threads.") var threads = 2

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let engine: Engine
        if let model {
            engine = try Engine(folder: model)
        } else if let shape, let config = ModelConfig.benchmarkShape(shape) {
            engine = Engine(decoder: Decoder(weights: DecoderWeights.random(config: config, seed: 0)),
                            tokenizer: try Tokenizer(json: ByteTokenizer.json, path: "<byte-level>"))
        } else {
            throw ValidationError("give --model DIR or --shape tiny|qwen05b")
        }
        BLAS.threads = threads
        let c = engine.decoder.config
        let experts = try ExpertSet(model: c, count: 4, configuration: LoRAConfiguration(rank: 32, alpha: 64, targetModules: [.q, .v]), seed: 1)
        var g = SeededGenerator(seed: 2)
        for e in experts.experts { for key in e.modules.keys.sorted() { let m = e.modules[key]!; for i in 0..<m.b.count { m.b.pointer[i] = (g.nextUnitFloat() * 2 - 1) * 0.01 } } }
        let prompts = (0..<8).map { s in (0..<128).map { Int32(($0 * 31 + s * 17 + 3) % c.vocabularySize) } }
        var p = SamplingParameters(); p.maxNewTokens = 32; p.stopTokenIDs = []
        func tokensPerSecond(_ routes: [ExpertRoute]) throws -> Double {
            var times: [Double] = []
            for r in 0...repeats {
                let t = ForwardBenchmark.now()
                _ = try engine.generate(prompts: prompts, parameters: p, experts: experts, routes: routes)
                if r > 0 { times.append(ForwardBenchmark.now() - t) }
            }
            return Double(8 * (128 + 32)) / ForwardBenchmark.median(times)
        }
        let single = try tokensPerSecond(Array(repeating: .expert(0), count: 8))
        let spread = try tokensPerSecond((0..<8).map { .expert($0 % 4) })

        // Phase-router share of a step: the same policy step with a phase router and with a
        // fixed router; observations are new each step (misses) or repeated (hits).
        let router = try PhaseRouter(configuration: PhaseRouterConfiguration(), modelHiddenSize: c.hiddenSize, seed: 3)
        var sampling = SamplingParameters(); sampling.temperature = 1; sampling.maxNewTokens = 16; sampling.stopTokenIDs = []
        let policy = try Policy(engine: engine, experts: experts, router: router, sampling: sampling)
        let goal = "put a clean mug in the coffeemachine"
        var missRouting: [Double] = [], hitRouting: [Double] = [], stepTotal: [Double] = []
        for step in 0..<(2 * max(2, repeats)) {
            let observation = "You arrive at countertop \(step + 1). On the countertop \(step + 1), you see a mug \(step), a knife 2, and a bread 1."
            let miss = try policy.step(episode: 0, observation: observation, goal: goal)
            let hit = try policy.step(episode: 1, observation: observation, goal: goal)
            missRouting.append(miss.routingSeconds)
            hitRouting.append(hit.routingSeconds)
            stepTotal.append(miss.routingSeconds + miss.generationSeconds)
        }
        let stepSeconds = ForwardBenchmark.median(stepTotal)
        let result: JSONValue = .object([
            ("engine", .string("moragent")), ("config", .string(model ?? shape!)), ("threads", .number(Double(threads))),
            ("batch", .number(8)), ("experts", .number(4)), ("prompt_tokens", .number(128)), ("new_tokens", .number(32)),
            ("single_expert_tokens_per_s", .number(single.rounded(toPlaces: 1))),
            ("spread_over_4_experts_tokens_per_s", .number(spread.rounded(toPlaces: 1))),
            ("spread_ratio", .number((spread / single).rounded(toPlaces: 3))),
            ("policy_step_ms", .number((stepSeconds * 1000).rounded(toPlaces: 2))),
            ("phase_router_ms_cache_miss", .number((ForwardBenchmark.median(missRouting) * 1000).rounded(toPlaces: 3))),
            ("phase_router_ms_cache_hit", .number((ForwardBenchmark.median(hitRouting) * 1000).rounded(toPlaces: 3))),
            ("phase_router_fraction_cache_miss", .number((ForwardBenchmark.median(missRouting) / stepSeconds).rounded(toPlaces: 4))),
            ("phase_router_fraction_cache_hit", .number((ForwardBenchmark.median(hitRouting) / stepSeconds).rounded(toPlaces: 4))),
        ])
        print(result.serialized)
    }
}

/// A byte-level BPE tokenizer with no merges (one token per byte, ids 0-255), so benchmarks on
/// random-weight shapes can route real text.
enum ByteTokenizer {
    static var json: JSONValue {
        var vocab: [(key: String, value: JSONValue)] = []
        var next = 256
        for b in 0..<256 {
            let printable = (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
            let scalar: Unicode.Scalar
            if printable { scalar = Unicode.Scalar(UInt8(b)) } else { scalar = Unicode.Scalar(UInt32(next))!; next += 1 }
            vocab.append((String(Character(scalar)), .number(Double(b))))
        }
        return .object([
            ("model", .object([("type", .string("BPE")), ("vocab", .object(vocab)), ("merges", .array([]))])),
            ("pre_tokenizer", .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("use_regex", .bool(true))])),
            ("decoder", .object([("type", .string("ByteLevel"))])),
        ])
    }
}
