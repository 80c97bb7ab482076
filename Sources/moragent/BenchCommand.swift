import ArgumentParser
import Foundation
import MoRAgent

/// `moragent bench …`: benchmarks that print one JSON object each.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks; each prints one JSON object.",
        subcommands: [BenchForwardCommand.self, BenchRouteCommand.self, BenchTrainCommand.self])
}

/// `moragent bench forward`: prefill and decode throughput beside the sgemm peak measured in the
/// same process, on the shapes of `shared/bench/pytorch_peer.py`.
struct BenchForwardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forward",
        abstract: "Prefill (1 x 512, logits at every position) and greedy decode (b1, b8: 128-token prompt, 64 new tokens).")

    @Option(help: "A Hugging Face model folder.") var model: String?
    @Option(help: "A named random shape: tiny or qwen05b.") var shape: String?
    @Option(help: "Timed repetitions (median reported).") var repeats = 5
    @Option(help: "OpenBLAS threads.") var threads = 2
    @Option(help: "Comma list of workloads to skip: prefill,decode.") var skip = ""
    @Option(help: "Comma list of decode batch sizes.") var batches = "1,8"

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let decoder: Decoder
        var name: String
        if let model {
            decoder = try Decoder(folder: model)
            name = model
        } else if let shape, let config = ModelConfig.benchmarkShape(shape) {
            decoder = Decoder(weights: DecoderWeights.random(config: config, seed: 0))
            name = shape
        } else {
            throw ValidationError("give --model DIR or --shape tiny|qwen05b")
        }
        BLAS.threads = threads
        let skipped = Set(skip.split(separator: ",").map(String.init))
        let bench = ForwardBenchmark(decoder: decoder, repeats: repeats)
        var result: [(String, JSONValue)] = [("engine", .string("moragent")), ("config", .string(name)),
                                             ("threads", .number(Double(threads)))]
        let peak = ForwardBenchmark.sgemmPeak()
        result.append(("sgemm_peak_gflops", .number(peak.rounded(toPlaces: 1))))
        if !skipped.contains("prefill") {
            let p = try bench.prefill(tokens: 512)
            result += [("prefill_tokens_per_s", .number(p.tokensPerSecond.rounded(toPlaces: 1))),
                       ("prefill_gflops", .number(p.gflops.rounded(toPlaces: 1))),
                       ("prefill_fraction_of_sgemm_peak", .number((p.gflops / peak).rounded(toPlaces: 3)))]
        }
        if !skipped.contains("decode") {
            for b in batches.split(separator: ",").compactMap({ Int($0) }) where b > 0 {
                let d = try bench.decode(batch: b, promptTokens: 128, newTokens: 64)
                result += [("decode_tokens_per_s_b\(b)", .number(d.tokensPerSecond.rounded(toPlaces: 1))),
                           ("decode_ms_per_step_b\(b)", .number((d.secondsPerStep * 1000).rounded(toPlaces: 3))),
                           ("decode_tokens_per_s_b\(b)_including_prefill", .number(d.tokensPerSecondIncludingPrefill.rounded(toPlaces: 1))),
                           ("decode_weight_gbytes_per_s_b\(b)", .number((d.weightBytesPerSecond / 1e9).rounded(toPlaces: 2)))]
            }
            let bandwidth = ForwardBenchmark.sgemvBandwidth()
            result += [("weight_bytes", .number(Double(bench.weightBytes))),
                       ("sgemv_bandwidth_gbytes_per_s", .number((bandwidth / 1e9).rounded(toPlaces: 2))),
                       ("decode_bound_ms_per_step_b1", .number((Double(bench.weightBytes) / bandwidth * 1000).rounded(toPlaces: 2)))]
        }
        print(JSONValue.object(result.map { (key: $0.0, value: $0.1) }).serialized)
    }
}

extension Double {
    func rounded(toPlaces places: Int) -> Double {
        let f = pow(10, Double(places))
        return (self * f).rounded() / f
    }
}
