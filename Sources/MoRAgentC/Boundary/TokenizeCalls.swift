import CMoRAgent
import MoRAgent

/// The work behind `moragent_tokenize` and `moragent_detokenize`.
enum TokenizeCalls {
    static func tokenize(_ engine: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLength: Int,
                         _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int, _ outCount: UnsafeMutablePointer<Int>?) throws {
        let tokenizer = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine.requireTokenizer()
        let bytes = try CInput.elements(UnsafeRawPointer(text)?.assumingMemoryBound(to: UInt8.self), textLength, "text", "text_len")
        let room = try CInput.room(ids, capacity, "ids", "capacity")
        let outCount = try CInput.required(outCount, "out_count")
        let encoded = tokenizer.encode(try CInput.utf8(bytes, "text"))
        outCount.pointee = encoded.count
        guard encoded.count <= room.count else {
            throw CallError.bufferTooSmall("the text encodes to \(encoded.count) ids but capacity is \(room.count)")
        }
        _ = room.initialize(from: encoded)
    }

    static func detokenize(_ engine: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ idCount: Int,
                           _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ outLength: UnsafeMutablePointer<Int>?) throws {
        let tokenizer = try HandleRegistry.shared.resolve(engine, as: EngineHandle.self, "engine").engine.requireTokenizer()
        let ids = try CInput.elements(ids, idCount, "ids", "id_count")
        let room = try CInput.room(text, capacity, "text", "capacity")
        let outLength = try CInput.required(outLength, "out_length")
        let decoded = Array(tokenizer.decode(Array(ids)).utf8)
        outLength.pointee = decoded.count
        guard decoded.count < room.count else {
            throw CallError.bufferTooSmall("the ids decode to \(decoded.count) bytes, which with the NUL need capacity \(decoded.count + 1), but capacity is \(room.count)")
        }
        let bytes = UnsafeMutableRawBufferPointer(room)
        bytes.copyBytes(from: decoded)
        bytes[decoded.count] = 0
    }
}
