import Foundation
import XCTest
@testable import MoRAgent

/// Checks the tokenizer against reference output of Hugging Face `tokenizers` (see
/// Fixtures/tokenizers/reference.json) and against small hand-written `tokenizer.json` files whose
/// expected ids were also produced by `tokenizers` 0.23.3.
final class TokenizerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent("tokenizers")

    struct ReferenceCase {
        let text: String
        let ids: [Int32]
        let tokens: [String]
        let decoded: String
        let decodedSkipSpecial: String
    }

    static func referenceCases(_ name: String) throws -> [ReferenceCase] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("reference.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try XCTUnwrap(root[name] as? [[String: Any]])
        return try cases.map { c in
            let decoded = try XCTUnwrap(c["decoded"] as? String)
            return ReferenceCase(text: try XCTUnwrap(c["text"] as? String),
                                 ids: try XCTUnwrap(c["ids"] as? [Int]).map { Int32($0) },
                                 tokens: try XCTUnwrap(c["tokens"] as? [String]),
                                 decoded: decoded,
                                 // The generator writes this only when it differs from "decoded".
                                 decodedSkipSpecial: c["decoded_skip_special"] as? String ?? decoded)
        }
    }

    static func fixtureTokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(path: fixtures.appendingPathComponent(name).appendingPathComponent("tokenizer.json").path)
    }

    static func tokenizer(_ json: String) throws -> Tokenizer {
        try Tokenizer(json: try JSONValue.parse(json), path: "inline.json")
    }

    /// `text` in NFC, computed without the library under test.
    static func nfc(_ text: String) -> String { text.precomposedStringWithCanonicalMapping }

    func checkReference(_ name: String, roundTrip: ((String) -> String)?) throws {
        let tokenizer = try Self.fixtureTokenizer(name)
        let cases = try Self.referenceCases(name)
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let ids = tokenizer.encode(c.text)
            XCTAssertEqual(ids, c.ids, "\(name): ids of \(c.text.debugDescription)")
            XCTAssertEqual(c.ids.map { tokenizer.token(of: $0) }, c.tokens, "\(name): tokens of \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids), c.decoded, "\(name): decode of \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids, skipSpecialTokens: true), c.decodedSkipSpecial,
                           "\(name): decode skipping special tokens of \(c.text.debugDescription)")
            XCTAssertEqual(Array(tokenizer.decodedBytes(c.ids).utf8String.utf8), Array(c.decoded.utf8))
            if let expected = roundTrip {
                // Compare code points: Swift's == would accept any canonically equivalent text.
                XCTAssertEqual(Array(tokenizer.decode(ids).unicodeScalars), Array(expected(c.text).unicodeScalars),
                               "\(name): round trip of \(c.text.debugDescription)")
            }
        }
    }

    func testQwenStyleBPEMatchesReference() throws {
        // The NFC normalizer composes the decomposed "é" cases, so the round trip gives NFC(text).
        try checkReference("bpe", roundTrip: Self.nfc)
    }

    func testGPT2MatchesReference() throws {
        try checkReference("gpt2", roundTrip: { $0 })
    }

    func testWordLevelMatchesReference() throws {
        // Without a decoder HF joins the tokens with single spaces; white space is not kept.
        try checkReference("wordlevel", roundTrip: nil)
    }

    func testFixtureBasics() throws {
        let gpt2 = try Self.fixtureTokenizer("gpt2")
        XCTAssertEqual(gpt2.vocabularySize, 402)
        XCTAssertEqual(gpt2.specialTokenIDs, [0])
        XCTAssertEqual(gpt2.id(of: "<tool>"), 400)
        XCTAssertEqual(gpt2.id(of: "<|endoftext|>"), 0)
        XCTAssertEqual(gpt2.id(of: "no such token"), nil)
        XCTAssertEqual(gpt2.token(of: 401), "[CALL]")
        XCTAssertNil(gpt2.token(of: 402))
        XCTAssertNil(gpt2.token(of: -1))
        // Unknown ids are skipped rather than trapping.
        XCTAssertEqual(gpt2.decode([-5, 100_000, 401, Int32.max]), "[CALL]")
        XCTAssertEqual(gpt2.encode("hello", addSpecialTokens: true), gpt2.encode("hello"))
    }

    func testBothMergeFormsLoadAndAgree() throws {
        func make(_ merges: String) throws -> Tokenizer {
            try Self.tokenizer("""
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4, "bc": 5},
                       "merges": \(merges)}}
            """)
        }
        let legacy = try make(##"["#version: 0.2", "a b", "ab c", "b c"]"##)
        let tuples = try make(#"[["a", "b"], ["ab", "c"], ["b", "c"]]"#)
        for tokenizer in [legacy, tuples] {
            XCTAssertEqual(tokenizer.encode("abc"), [4])
            XCTAssertEqual(tokenizer.encode("bcab"), [5, 3])
            XCTAssertEqual(tokenizer.encode("cba"), [2, 1, 0])
            // No pre-tokenizer and no decoder: the whole text is one word, tokens are joined by spaces.
            XCTAssertEqual(tokenizer.decode([4, 5]), "abc bc")
        }
        // The lowest rank wins even when a later pair is further left.
        let ranked = try make(#"["b c", "a b", "ab c"]"#)
        XCTAssertEqual(ranked.encode("abc"), [0, 5])
    }

    func testTemplateProcessingAddsSpecialTokens() throws {
        let tokenizer = try Self.tokenizer("""
        {"added_tokens": [{"id": 3, "content": "<s>", "special": true, "normalized": false},
                          {"id": 4, "content": "</s>", "special": true, "normalized": false}],
         "pre_tokenizer": {"type": "WhitespaceSplit"},
         "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "hello": 1, "world": 2}, "unk_token": "<unk>"},
         "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                        {"SpecialToken": {"id": "</s>", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<s>": {"id": "<s>", "ids": [3], "tokens": ["<s>"]},
                                "</s>": {"id": "</s>", "ids": [4], "tokens": ["</s>"]}}}]}}
        """)
        XCTAssertEqual(tokenizer.encode("hello  world"), [1, 2])
        XCTAssertEqual(tokenizer.encode("hello world", addSpecialTokens: true), [3, 1, 2, 4])
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: true), [3, 4])
        XCTAssertEqual(tokenizer.encode("hello mars"), [1, 0])
        XCTAssertEqual(tokenizer.decode([3, 1, 2, 4]), "<s> hello world </s>")
        XCTAssertEqual(tokenizer.decode([3, 1, 2, 4], skipSpecialTokens: true), "hello world")
        XCTAssertEqual(tokenizer.specialTokenIDs, [3, 4])
        XCTAssertEqual(tokenizer.vocabularySize, 5)

        let bert = try Self.tokenizer("""
        {"pre_tokenizer": {"type": "WhitespaceSplit"},
         "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "hi": 3}, "unk_token": "[UNK]"},
         "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]}}
        """)
        XCTAssertEqual(bert.encode("hi", addSpecialTokens: true), [1, 3, 2])
    }

    // MARK: - Components (expected ids from `tokenizers` 0.23.3 on the same JSON)

    /// The GPT-2 fixture with some top-level members replaced.
    static func gpt2Variant(_ replacements: [String: String]) throws -> Tokenizer {
        let url = fixtures.appendingPathComponent("gpt2").appendingPathComponent("tokenizer.json")
        guard case .object(let members) = try JSONValue.parse(String(contentsOf: url, encoding: .utf8)) else {
            throw MoRAgentError.malformedFile(path: url.path, reason: "not an object")
        }
        var replaced = members
        for (key, json) in replacements {
            let value = try JSONValue.parse(json)
            if let i = replaced.firstIndex(where: { $0.key == key }) { replaced[i].value = value } else { replaced.append((key, value)) }
        }
        return try Tokenizer(json: .object(replaced), path: url.path)
    }

    func testPreTokenizerVariants() throws {
        let text = "Hello  world, it's 2026:\tfridge 1 and  drawer 23.\n"
        let byteLevel = #"{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}"#
        let cases: [(String, String, [Int32])] = [
            ("removed", #"{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": false}"#,
             [40, 344, 287, 87, 341, 372, 12, 73, 84, 7, 83, 18, 16, 18, 22, 26, 70, 375, 17, 65, 270, 68, 384, 87, 265, 18, 19, 14]),
            ("isolated", #"{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false}"#,
             [40, 344, 287, 326, 87, 341, 372, 12, 221, 73, 84, 7, 83, 221, 18, 16, 18, 22, 26, 198, 70, 375, 221, 17, 221, 65,
              270, 326, 68, 384, 87, 265, 221, 18, 19, 14, 199]),
            ("mergedWithPrevious", #"{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": false}"#,
             [40, 344, 287, 326, 87, 341, 372, 12, 221, 73, 84, 7, 83, 221, 18, 16, 18, 22, 26, 198, 70, 375, 221, 17, 221, 65,
              270, 326, 68, 384, 87, 265, 221, 18, 19, 14, 199]),
            ("mergedWithNext", #"{"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": false}"#,
             [40, 344, 287, 221, 313, 341, 372, 12, 336, 7, 83, 285, 16, 18, 22, 26, 198, 70, 375, 271, 306, 221, 274, 384, 87,
              265, 285, 19, 14, 199]),
            ("contiguousInverted", #"{"type": "Split", "pattern": {"Regex": "[a-z]"}, "behavior": "Contiguous", "invert": true}"#,
             [40, 344, 287, 326, 87, 341, 372, 12, 221, 73, 84, 7, 83, 285, 16, 18, 22, 26, 198, 70, 375, 271, 221, 65, 270, 326,
              68, 384, 87, 265, 285, 19, 14, 199]),
            ("digitsIndividual", #"{"type": "Digits", "individual_digits": true}"#,
             [40, 344, 287, 221, 313, 341, 372, 12, 336, 7, 83, 221, 18, 16, 18, 22, 26, 198, 70, 375, 221, 17, 306, 221, 274,
              384, 87, 265, 221, 18, 19, 14, 199]),
            ("digitsContiguous", #"{"type": "Digits", "individual_digits": false}"#,
             [40, 344, 287, 221, 313, 341, 372, 12, 336, 7, 83, 221, 18, 16, 18, 22, 26, 198, 70, 375, 221, 17, 306, 221, 274,
              384, 87, 265, 221, 18, 19, 14, 199]),
            ("whitespace", #"{"type": "Whitespace"}"#,
             [40, 344, 287, 87, 341, 372, 12, 73, 84, 7, 83, 18, 16, 18, 22, 26, 70, 375, 17, 65, 270, 68, 384, 87, 265, 18, 19, 14]),
            ("whitespaceSplit", #"{"type": "WhitespaceSplit"}"#,
             [40, 344, 287, 87, 341, 372, 12, 73, 84, 7, 83, 18, 16, 18, 22, 26, 70, 375, 17, 65, 270, 68, 384, 87, 265, 18, 19, 14]),
        ]
        for (name, preTokenizer, expected) in cases {
            let tokenizer = try Self.gpt2Variant(["pre_tokenizer": #"{"type": "Sequence", "pretokenizers": [\#(preTokenizer), \#(byteLevel)]}"#])
            XCTAssertEqual(tokenizer.encode(text), expected, name)
        }
        // ByteLevel's prefix space goes in front of every piece between added tokens.
        let prefixed = try Self.gpt2Variant(["pre_tokenizer": #"{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true}"#])
        XCTAssertEqual(prefixed.encode("Hello world<tool>again"), [221, 40, 344, 287, 313, 341, 372, 400, 257, 71, 65, 260])
    }

    func testAddedTokenOptions() throws {
        let tokenizer = try Self.gpt2Variant([
            "normalizer": #"{"type": "Lowercase"}"#,
            "added_tokens": """
            [{"id": 0, "content": "<|endoftext|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
             {"id": 400, "content": "<tool>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": false},
             {"id": 401, "content": "Call", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
             {"id": 402, "content": "<MASK>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": true, "special": true}]
            """,
        ])
        // lstrip and rstrip swallow the spaces around the token.
        XCTAssertEqual(tokenizer.encode("a  <tool>  b"), [65, 400, 66])
        XCTAssertEqual(tokenizer.decode([65, 400, 66]), "a<tool>b")
        // A normalized token is matched in lowercased text; single_word rejects "recall" and "call_x".
        let calls = tokenizer.encode("CALL call recall call_x (call)")
        XCTAssertEqual(calls, [401, 221, 401, 221, 267, 67, 65, 76, 76, 390, 76, 76, 63, 88, 221, 8, 401, 9])
        // HF decodes a normalized added token as its normalized form, and then no longer
        // recognizes it as special.
        XCTAssertEqual(tokenizer.decode(calls), "call call recall call_x (call)")
        XCTAssertEqual(tokenizer.token(of: 402), "<mask>")
        XCTAssertEqual(tokenizer.encode("x <mask> <MASK>"), [88, 402, 402])
        XCTAssertEqual(tokenizer.decode([88, 402, 402], skipSpecialTokens: true), "x<mask><mask>")
        // Tokens that are not normalized are matched in the raw text only.
        let ids = tokenizer.encode("<|endoftext|>HELLO<|ENDOFTEXT|>")
        XCTAssertEqual(ids, [0, 259, 76, 287, 28, 92, 69, 270, 320, 84, 353, 84, 92, 30])
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "hello<|endoftext|>")
        XCTAssertEqual(tokenizer.specialTokenIDs, [0, 402])
        XCTAssertEqual(tokenizer.id(of: "Call"), 401)
    }

    /// A SentencePiece-style BPE (Llama 2): "▁" for spaces, byte fallback, and the matching decoders.
    static func sentencePieceTokenizer(byteFallback: Bool = true, fuseUnknown: Bool = true) throws -> Tokenizer {
        var vocab = [#""<unk>": 0"#, #""<s>": 1"#, #""</s>": 2"#]
        for b in 0..<256 { vocab.append("\"<0x\(String(format: "%02X", b))>\": \(3 + b)") }
        for (i, piece) in ["▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "ll", "he", "hell", "hello", "▁hello", "▁w", "or", "▁wor",
                           "▁world"].enumerated() {
            vocab.append("\"\(piece)\": \(259 + i)")
        }
        return try tokenizer("""
        {"added_tokens": [
            {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
            {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
         "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
         "pre_tokenizer": null,
         "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
         "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
         "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": \(fuseUnknown), "byte_fallback": \(byteFallback),
            "vocab": {\(vocab.joined(separator: ", "))},
            "merges": [["▁", "h"], ["l", "l"], ["h", "e"], ["he", "ll"], ["hell", "o"], ["▁", "w"], ["o", "r"], ["▁w", "or"], ["▁", "hello"]]}}
        """)
    }

    func testSentencePieceStyleBPE() throws {
        let tokenizer = try Self.sentencePieceTokenizer()
        XCTAssertEqual(tokenizer.encode("hello world"), [267, 261, 268, 263, 275, 262, 266])
        XCTAssertEqual(tokenizer.encode("hello world", addSpecialTokens: true), [1, 267, 261, 268, 263, 275, 262, 266])
        XCTAssertEqual(tokenizer.decode([1, 267, 261, 268, 263, 275, 262, 266]), "<s> hello world")
        XCTAssertEqual(tokenizer.decode([1, 267, 261, 268, 263, 275, 262, 266], skipSpecialTokens: true), "hello world")
        // "ö" is not in the vocabulary: its two UTF-8 bytes come out as <0xC3> <0xB6>.
        let ids = tokenizer.encode("hello wörld</s>")
        XCTAssertEqual(ids, [267, 261, 268, 263, 273, 198, 185, 265, 262, 266, 2])
        XCTAssertEqual(tokenizer.decode(ids), "hello wörld</s>")
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "hello wörld")
        XCTAssertEqual(tokenizer.encode("héllo"), [267, 198, 172, 268, 263])
        // Byte tokens that do not form UTF-8 become one U+FFFD each, as HF's ByteFallback does,
        // while decodedBytes keeps the bytes.
        XCTAssertEqual(tokenizer.decode([198]), "\u{FFFD}")
        XCTAssertEqual(tokenizer.decode([1, 198, 172, 259]), "<s>é ")
        XCTAssertEqual(tokenizer.decode([229, 133, 260]), "\u{FFFD}\u{FFFD}h")
        XCTAssertEqual(tokenizer.decode([243, 162, 148]), "\u{FFFD}\u{FFFD}\u{FFFD}")
        XCTAssertEqual(tokenizer.decodedBytes([243, 162, 148]), [0xF0, 0x9F, 0x91])
        XCTAssertEqual(tokenizer.decodedBytes([243, 162, 148, 3 + 0x8D]).utf8String, "👍")

        // Without byte fallback unknown characters become <unk>, fused or not.
        XCTAssertEqual(try Self.sentencePieceTokenizer(byteFallback: false).encode("héé wöö"), [267, 0, 273, 0])
        XCTAssertEqual(try Self.sentencePieceTokenizer(byteFallback: false, fuseUnknown: false).encode("héé wöö"), [267, 0, 0, 273, 0, 0])
    }

    func testDecodedBytesForStreaming() throws {
        let tokenizer = try Self.fixtureTokenizer("gpt2")
        let ids = tokenizer.encode("日本")
        XCTAssertGreaterThan(ids.count, 1)
        // Decoding a prefix of the ids can end inside a character: the bytes are kept as they
        // are, while decode repairs them.
        var bytes: [UInt8] = []
        for id in ids { bytes += tokenizer.decodedBytes([id]) }
        XCTAssertEqual(bytes, Array("日本".utf8))
        let head = tokenizer.decodedBytes([ids[0]])
        XCTAssertTrue(Array("日本".utf8).starts(with: head))
        XCTAssertNil(String(validating: head, as: UTF8.self))
        XCTAssertTrue(tokenizer.decode([ids[0]]).unicodeScalars.allSatisfy { $0 == "\u{FFFD}" })
    }

    func testOddInputRoundTrips() throws {
        let odd = ["\u{0301}starts with a combining mark", "\0nul\0", " \u{0301} space then mark", String(repeating: "a", count: 20_000),
                   String(repeating: "ab ", count: 3_000), String(repeating: " ", count: 5_000), "🏳️‍🌈\u{FEFF}\u{200B}",
                   "\r\n\r\n\u{2028}\u{85}", "e\u{301}\u{301}\u{301}", "<|endoftext|><|endoftext", "<tool><tool>[CALL]"]
        for name in ["gpt2", "bpe"] {
            let tokenizer = try Self.fixtureTokenizer(name)
            for text in odd {
                let expected = name == "bpe" ? Self.nfc(text) : text
                XCTAssertEqual(Array(tokenizer.decode(tokenizer.encode(text)).unicodeScalars), Array(expected.unicodeScalars),
                               "\(name): \(text.prefix(40).debugDescription)")
            }
        }
    }

    func testSharedTokenizerIsThreadSafe() throws {
        let texts = try Self.referenceCases("bpe").map(\.text)
        let regexSplit = #"{"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+|\\p{P}"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}"#
        // A cold tokenizer of each kind (hand-written word splitting, Swift Regex), shared by all workers.
        let makers: [() throws -> Tokenizer] = [{ try Self.fixtureTokenizer("bpe") }, { try Self.gpt2Variant(["pre_tokenizer": regexSplit]) }]
        for make in makers {
            let reference = try make()
            let expected = texts.map { reference.encode($0) }
            let shared = try make()
            let lock = NSLock()
            var mismatches = 0
            DispatchQueue.concurrentPerform(iterations: 8) { worker in
                for round in 0..<5 {
                    for (i, text) in texts.enumerated() where (i + worker + round) % 2 == 0 {
                        if shared.encode(text) != expected[i] { lock.lock(); mismatches += 1; lock.unlock() }
                    }
                }
            }
            XCTAssertEqual(mismatches, 0)
        }
    }

    /// The hand-written word splitters must cut exactly where the regexes they replace do.
    func testWordPatternsAgreeWithRegexes() throws {
        var generator = SystemRandomNumberGenerator()
        let pool = ["a", "Z", "é", "e\u{301}", "\u{301}", "日本", "ǅ", "ʰ", "9", "٣", "²", "Ⅻ", "12345", "'", "’", "\"", "-", "_", ".", "!",
                    "(", "'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'Ll", "'d", "'r", "'x", " ", " ", "  ", "\t", "\n", "\r",
                    "\r\n", " \n", "\u{A0}", "\u{3000}", "\u{2028}", "\u{85}", "\u{0B}", "\u{1C}", "\u{0}", "👍", "🏽", "\u{200D}"]
        let texts = (0..<1500).map { _ in (0..<Int.random(in: 0...24, using: &generator)).map { _ in pool.randomElement(using: &generator)! }.joined() }
        let reader = TokenizerFileReader(path: "test")
        for source in [TokenizerWordPattern.gpt2Source, TokenizerWordPattern.qwen2Source, TokenizerWordPattern.llama3Source] {
            let words = try XCTUnwrap(TokenizerWordPattern(source: source))
            let regex = try reader.regex(source, in: "test")
            for text in texts {
                var byHand: [String] = [], byRegex: [String] = []
                text.tokenizerSplit(.words(words), .isolated, into: &byHand)
                text.tokenizerSplit(.regex(regex), .isolated, into: &byRegex)
                XCTAssertEqual(byHand.map { Array($0.unicodeScalars) }, byRegex.map { Array($0.unicodeScalars) }, "\(source) on \(text.debugDescription)")
            }
        }
        // Where Swift's Regex and Oniguruma differ, the splitter follows Oniguruma (checked with
        // `tokenizers`): under (?i), "ſ" matches "s".
        var pieces: [String] = []
        "x'ſx".tokenizerSplit(.words(.llama3(maxDigits: 1)), .isolated, into: &pieces)
        XCTAssertEqual(pieces, ["x", "'ſ", "x"])
        pieces = []
        "In 2026".tokenizerSplit(.words(.llama3(maxDigits: 3)), .isolated, into: &pieces)
        XCTAssertEqual(pieces, ["In", " ", "202", "6"])
    }

    func testEncodeTiming() throws {
        // About 10 KB of agent-style English text.
        let cases = try Self.referenceCases("gpt2")
        let english = cases.filter { $0.text.unicodeScalars.allSatisfy { $0.isASCII } }.map(\.text)
        var text = ""
        var i = 0
        while text.utf8.count < 10_000 {
            text += english[i % english.count] + "\n"
            i += 1
        }
        for name in ["gpt2", "bpe"] {
            let tokenizer = try Self.fixtureTokenizer(name)
            let clock = ContinuousClock()
            var ids: [Int32] = []
            let cold = clock.measure { ids = tokenizer.encode(text) }
            let runs = 5
            let warm = clock.measure { for _ in 0..<runs { ids = tokenizer.encode(text) } } / runs
            print("\(name): encoded \(text.utf8.count) bytes into \(ids.count) ids: first call \(cold), then \(warm) per call")
            // A generous bound that only catches pathological slowness (debug builds included).
            XCTAssertLessThan(warm, .seconds(2))
        }
    }

    // MARK: - Errors

    /// A fresh directory for files written by a test.
    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// Writes `content` to a file and checks that loading it fails with an error naming the file
    /// and mentioning `fragment`.
    func assertLoadFails(_ content: String, mentioning fragment: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let url = try temporaryDirectory().appendingPathComponent("tokenizer.json")
        try content.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try Tokenizer(path: url.path), file: file, line: line) { error in
            let description = String(describing: error)
            XCTAssertTrue(description.contains(url.path), "\(description) does not name the file", file: file, line: line)
            XCTAssertTrue(description.contains(fragment), "\(description) does not mention \(fragment)", file: file, line: line)
        }
    }

    func testUnsupportedModelType() throws {
        try assertLoadFails(#"{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0.0]]}}"#, mentioning: "model type Unigram")
        try assertLoadFails(#"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}}"#,
                            mentioning: "model type WordPiece")
    }

    func testUnsupportedComponents() throws {
        let model = #""model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}"#
        try assertLoadFails(#"{"pre_tokenizer": {"type": "Metaspace", "replacement": "▁"}, \#(model)}"#,
                            mentioning: "pre_tokenizer type Metaspace")
        try assertLoadFails(#"{"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}]}, \#(model)}"#,
                            mentioning: "normalizer type NFKC")
        try assertLoadFails(#"{"decoder": {"type": "CTC", "pad_token": "<pad>"}, \#(model)}"#, mentioning: "decoder type CTC")
        try assertLoadFails(#"{"post_processor": {"type": "Fancy"}, \#(model)}"#, mentioning: "post_processor type Fancy")
    }

    func testMalformedFiles() throws {
        try assertLoadFails(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2}, "merges": ["a b c"]}}"#,
                            mentioning: "merges[0]")
        try assertLoadFails(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}"#,
                            mentioning: "missing from the vocabulary")
        try assertLoadFails(#"{"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}}"#, mentioning: "vocab")
        try assertLoadFails(#"{"model": {"type": "WordLevel", "vocab": {}}, "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}}"#,
                            mentioning: "Sideways")
        try assertLoadFails(#"{"model": {"type": "WordLevel", "vocab": {}}, "added_tokens": [{"content": "x"}]}"#,
                            mentioning: "added_tokens[0].id")
        try assertLoadFails(##"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []"##, mentioning: "invalid JSON")
        try assertLoadFails("[]", mentioning: "object")
    }

    func testMissingFileNamesIt() {
        let path = "/nonexistent/dir/tokenizer.json"
        XCTAssertThrowsError(try Tokenizer(path: path)) { error in
            XCTAssertTrue(String(describing: error).contains(path))
        }
    }
}

extension Array where Element == UInt8 {
    /// The bytes as text, invalid UTF-8 repaired.
    var utf8String: String { String(decoding: self, as: UTF8.self) }
}
