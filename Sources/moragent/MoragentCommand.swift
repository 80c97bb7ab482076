import ArgumentParser
import Foundation
import MoRAgent

/// `moragent`: inspect models, generate text and benchmark the engine.
@main
struct MoragentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "moragent",
        abstract: "Routed LoRA experts for LLM agents: inspect, generate and benchmark.",
        subcommands: [InspectCommand.self, GenerateCommand.self, TrainCommand.self, BenchCommand.self])

    /// Re-executes the tool with `OPENBLAS_CORETYPE` set when OpenBLAS chose generic kernels on
    /// a CPU that has better ones (see `BLASCoreType`), then parses the command line.
    static func main() {
        if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, let core = BLASCoreType.correction {
            setenv("OPENBLAS_CORETYPE", core, 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)  // returns only on failure; then run with what we have
        }
        let command: ParsableCommand
        do { command = try parseAsRoot() } catch { exit(withError: error) }
        do {
            var c = command
            try c.run()
        } catch {
            exit(withError: error)
        }
    }
}
