import CMoRAgent

// Header section "Tokenization".

@_cdecl("moragent_tokenize")
public func moragentTokenize(_ engine: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ textLength: Int,
                             _ ids: UnsafeMutablePointer<Int32>?, _ capacity: Int,
                             _ outCount: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_tokenize") { try TokenizeCalls.tokenize(engine, text, textLength, ids, capacity, outCount) }
}

@_cdecl("moragent_detokenize")
public func moragentDetokenize(_ engine: OpaquePointer?, _ ids: UnsafePointer<Int32>?, _ idCount: Int,
                               _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int,
                               _ outLength: UnsafeMutablePointer<Int>?) -> moragent_status {
    withStatus("moragent_detokenize") { try TokenizeCalls.detokenize(engine, ids, idCount, text, capacity, outLength) }
}
