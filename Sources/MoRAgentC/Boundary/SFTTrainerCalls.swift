import CMoRAgent
import MoRAgent

/// What a `moragent_sft_trainer *` points to: the core trainer, its busy flag and the last
/// step's statistics.
final class SFTTrainerHandle: CHandle {
    static let cName = "moragent_sft_trainer"

    let trainer: MixtureOfRolesTrainer
    let busy = BusyFlag()
    var lastStats = "{}"

    init(_ trainer: MixtureOfRolesTrainer) { self.trainer = trainer }

    func exclusively<T>(_ body: (MixtureOfRolesTrainer) throws -> T) throws -> T {
        try busy.exclusively("SFT trainer") { try body(trainer) }
    }
}

/// The work behind the supervised-training entry points.
enum SFTTrainerCalls {
    static func create(_ engine: OpaquePointer?, _ config: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) throws {
        let out = try CInput.required(out, "out_trainer")
        out.pointee = nil
        let engine = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine
        let text = try CInput.optionalCString(config, "config_json") ?? "{}"
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch { throw CallError.malformedFile("config_json: \(error)") }
        let configuration = try MixtureOfRolesSFTConfiguration.parse(json, location: "config_json", relativeTo: nil)
        out.pointee = HandleRegistry.shared.register(SFTTrainerHandle(try MixtureOfRolesTrainer(configuration: configuration, engine: engine)))
    }

    static func free(_ trainer: OpaquePointer?) throws {
        try HandleRegistry.shared.free(trainer, as: SFTTrainerHandle.self, "trainer")
    }

    /// The conversations of a C string of JSON lines.
    static func conversations(_ text: UnsafePointer<CChar>?, _ name: String) throws -> [RoleAnnotatedConversation] {
        let text = try CInput.cString(text, name)
        let batch = try RoleAnnotatedConversation.parse(lines: Array(text.utf8), location: name)
        guard !batch.isEmpty else { throw CallError.invalidArgument("\(name) holds no conversation") }
        return batch
    }

    static func step(_ trainer: OpaquePointer?, _ batch: UnsafePointer<CChar>?) throws {
        let handle = try resolve(trainer)
        let conversations = try conversations(batch, "batch_jsonl")
        let metrics = try handle.exclusively { try $0.trainStep(conversations) }
        handle.lastStats = metrics.json.serialized
    }

    static func evaluate(_ trainer: OpaquePointer?, _ jsonl: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<Double>?) throws {
        let out = try CInput.required(out, "out_cross_entropy")
        let handle = try resolve(trainer)
        let conversations = try conversations(jsonl, "jsonl")
        out.pointee = try handle.exclusively { try $0.evaluate(conversations) }
    }

    static func lastStats(_ trainer: OpaquePointer?, _ buffer: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) throws {
        let handle = try resolve(trainer)
        let text = try handle.exclusively { _ in handle.lastStats }
        try CInput.writeText(Array(text.utf8), buffer, capacity, outLength, "the statistics")
    }

    static func save(_ trainer: OpaquePointer?, _ path: UnsafePointer<CChar>?) throws {
        let handle = try resolve(trainer)
        let path = try CInput.cString(path, "path")
        try handle.exclusively { try $0.mixture.save(to: path) }
    }

    private static func resolve(_ trainer: OpaquePointer?) throws -> SFTTrainerHandle {
        try HandleRegistry.shared.resolve(trainer, as: SFTTrainerHandle.self, "trainer")
    }
}
