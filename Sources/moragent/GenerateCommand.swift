import ArgumentParser

/// `moragent generate`: text from a model folder.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "Generate a continuation.")
    func run() throws {}
}
