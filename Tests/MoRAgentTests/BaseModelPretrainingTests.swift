import Foundation
import XCTest
@testable import MoRAgent

/// The word-level tokenizer builder and base-model pretraining: the tokenizer file, the saved
/// folder, determinism, learning, and bad input.
final class BaseModelPretrainingTests: XCTestCase {
    static let lines = ["go to fridge 1", "open fridge 1", "go to table 2 <action> take apple </action>"]

    /// 40 templated walkthrough lines: the action names the goal's receptacle.
    static let walkthroughs: [String] = {
        let objects = ["apple", "egg", "mug", "knife", "bread"]
        let receptacles = ["fridge", "microwave", "cabinet", "drawer", "sinkbasin", "countertop", "shelf", "garbagecan"]
        return receptacles.flatMap { r in objects.map { o in "goal : put \(o) in \(r) <action> go to \(r) 1 </action>" } }
    }()

    /// A model small enough for a debug build.
    static func smallConfiguration() -> BaseModelPretrainingConfiguration {
        var c = BaseModelPretrainingConfiguration()
        c.hiddenSize = 32; c.layerCount = 2; c.headCount = 4; c.keyValueHeadCount = 2; c.intermediateSize = 64
        c.maxLength = 32; c.batchSize = 4; c.steps = 3; c.seed = 11
        return c
    }

    func testTokenizerIdsAreSpecialThenAddedThenWordsByFrequency() throws {
        let vocabulary = try WordLevelTokenizerBuilder().vocabulary(lines: Self.lines)
        // Counts: 1, fridge, go, to twice (byte order among equals), then the rest once.
        XCTAssertEqual(vocabulary, ["<unk>", "<pad>", "</s>", "<action>", "</action>",
                                    "1", "fridge", "go", "to", "2", "apple", "open", "table", "take"])
        let tokenizer = try Tokenizer(json: try WordLevelTokenizerBuilder().tokenizerJSON(lines: Self.lines), path: "built")
        XCTAssertEqual(tokenizer.vocabularySize, vocabulary.count)
        for (id, token) in vocabulary.enumerated() { XCTAssertEqual(tokenizer.id(of: token), Int32(id), token) }
        XCTAssertEqual(tokenizer.specialTokenIDs, [0, 1, 2])
    }

    func testTokenizerRoundTripsAndKeepsActionTags() throws {
        let tokenizer = try Tokenizer(json: try WordLevelTokenizerBuilder().tokenizerJSON(lines: Self.lines), path: "built")
        for line in Self.lines + ["take 1 fridge 2", "go to fridge 1 <action> open fridge 1 </action>"] {
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(line)), line)
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(line), skipSpecialTokens: true), line)
        }
        XCTAssertEqual(tokenizer.encode("go to the fridge 1"), [7, 8, 0, 6, 5], "an unknown word is <unk>")
        XCTAssertEqual(tokenizer.encode("go\tto  fridge\n1"), [7, 8, 6, 5], "any white space separates words")
        XCTAssertEqual(tokenizer.encode("<action>take apple</action>"), [3, 13, 10, 4], "added tokens are cut out before splitting")
        XCTAssertEqual(tokenizer.decode([3, 13, 10, 4, 2], skipSpecialTokens: true), "<action> take apple </action>")
        XCTAssertEqual(tokenizer.decode([3, 13, 10, 4, 2]), "<action> take apple </action> </s>")
    }

    func testTokenizerFileIsDeterministicAndFollowsTheHuggingFaceFormat() throws {
        let json = try WordLevelTokenizerBuilder().tokenizerJSON(lines: Self.lines)
        XCTAssertEqual(json.serialized, try WordLevelTokenizerBuilder().tokenizerJSON(lines: Self.lines.reversed()).serialized)
        XCTAssertEqual(json.objectValue?.map(\.key), ["version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                                                      "post_processor", "decoder", "model"])
        XCTAssertEqual(json["model"]?["type"], .string("WordLevel"))
        XCTAssertEqual(json["model"]?["unk_token"], .string("<unk>"))
        XCTAssertEqual(json["pre_tokenizer"], .object([("type", .string("WhitespaceSplit"))]))
        XCTAssertEqual(json["decoder"], .null)
        let added = try XCTUnwrap(json["added_tokens"]?.arrayValue)
        XCTAssertEqual(added.map { $0["content"]?.stringValue }, ["<unk>", "<pad>", "</s>", "<action>", "</action>"])
        XCTAssertEqual(added.map { $0["special"]?.boolValue }, [true, true, true, false, false])
        XCTAssertEqual(added.map { $0["id"]?.intValue }, [0, 1, 2, 3, 4])
        XCTAssertEqual(Set(added.flatMap { $0.objectValue!.map(\.key) }), ["id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"])
    }

    func testTokenizerOptionsAndErrors() throws {
        var builder = WordLevelTokenizerBuilder()
        builder.minimumFrequency = 2
        XCTAssertEqual(try builder.vocabulary(lines: Self.lines).dropFirst(5), ["1", "fridge", "go", "to"])
        builder = WordLevelTokenizerBuilder()
        builder.maximumVocabularySize = 7
        XCTAssertEqual(try builder.vocabulary(lines: Self.lines).dropFirst(5), ["1", "fridge"])
        builder.maximumVocabularySize = 4
        XCTAssertThrowsError(try builder.vocabulary(lines: Self.lines))
        for lines in [[], ["", "  "], ["<action> </action>"]] {
            XCTAssertThrowsError(try WordLevelTokenizerBuilder().vocabulary(lines: lines)) { error in
                XCTAssertEqual(error as? MoRAgentError, .invalidArgument("the corpus has no words to build a vocabulary from"))
            }
        }
        for added in [["<a>", "<a>"], ["</s>"], [""], ["<a b>"]] {
            builder = WordLevelTokenizerBuilder()
            builder.addedTokens = added
            XCTAssertThrowsError(try builder.vocabulary(lines: Self.lines), "\(added)")
        }
        XCTAssertEqual(try WordLevelTokenizerBuilder().vocabulary(lines: ["caf\u{E9} cafe\u{301}"]).count, 7,
                       "canonically equivalent spellings stay two words, as in HF")
        builder = WordLevelTokenizerBuilder()
        builder.minimumFrequency = 0
        XCTAssertThrowsError(try builder.vocabulary(lines: Self.lines))
    }

    func testSavedFolderReloadsWithTheSameLogits() throws {
        let root = Fixtures.temporaryFolder(), folder = root + "/model"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let trainer = try BaseModelPretrainer.pretrain(lines: Self.walkthroughs, configuration: Self.smallConfiguration(), output: folder)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder).sorted(),
                       ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        let engine = try Engine(folder: folder)
        XCTAssertEqual(engine.decoder.config, trainer.modelConfig)
        XCTAssertEqual(engine.decoder.config.architecture, .llama)
        XCTAssertTrue(engine.decoder.config.tieWordEmbeddings)
        XCTAssertEqual(engine.decoder.config.eosTokenIDs, [2])
        let prompt = try engine.requireTokenizer().encode("goal : put egg in shelf <action>")
        XCTAssertEqual(prompt, trainer.tokenizer.encode("goal : put egg in shelf <action>"))
        func logits(_ d: Decoder) throws -> [Float] {
            try d.forward([DecoderSequence(tokens: prompt, cache: KVCache(config: d.config))], logits: .all).logits!.values
        }
        XCTAssertEqual(try logits(engine.decoder), try logits(trainer.decoder))
        let names = try SafeTensorsFile(path: folder + "/model.safetensors").entries.keys
        XCTAssertTrue(names.contains("model.layers.1.self_attn.k_proj.weight"))
        XCTAssertTrue(names.contains("model.layers.0.mlp.up_proj.weight"))
        XCTAssertFalse(names.contains("lm_head.weight"), "tied embeddings are stored once")
        let config = try readJSONFile(folder + "/config.json")
        XCTAssertEqual(config["model_type"], .string("llama"))
        XCTAssertEqual(config["pad_token_id"], .number(1))
        XCTAssertEqual(config["rms_norm_eps"]?.doubleValue, 1e-6)
        XCTAssertEqual(try readJSONFile(folder + "/tokenizer_config.json")["tokenizer_class"], .string("PreTrainedTokenizerFast"))
        XCTAssertEqual(try readJSONFile(folder + "/generation_config.json")["eos_token_id"], .number(2))
    }

    /// `ModelConfig.json` reads back equal, for the three fixture architectures (rope scaling,
    /// sliding windows, biases, untied embeddings) and a built configuration.
    func testModelConfigJSONRoundTrips() throws {
        var configs = try Fixtures.modelNames.map { try ModelConfig.load(folder: Fixtures.model($0)) }
        configs.append(try BaseModelPretrainer(configuration: Self.smallConfiguration(),
                                               tokenizerJSON: try WordLevelTokenizerBuilder().tokenizerJSON(lines: Self.lines)).modelConfig)
        for config in configs {
            let json = config.json(adding: [("pad_token_id", .number(1))])
            XCTAssertEqual(try ModelConfig(json: json, path: "round-trip"), config, "\(config.architecture)")
            XCTAssertEqual(json["pad_token_id"], .number(1))
            XCTAssertEqual(json.objectValue!.map(\.key), json.objectValue!.map(\.key).sorted())
        }
    }

    func testInitialisationFollowsTransformers() throws {
        let config = ModelConfig(architecture: .llama, hiddenSize: 64, intermediateSize: 128, layerCount: 1, headCount: 4,
                                 keyValueHeadCount: 2, vocabularySize: 300)
        let w = DecoderWeights.transformersInitialized(config: config, seed: 3, paddingTokenID: 1)
        let values = w.layers[0].gateUp.values
        let mean = values.reduce(0, +) / Float(values.count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(values.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 1e-3)
        XCTAssertEqual(std, 0.02, accuracy: 1e-3)
        XCTAssertEqual(w.embedding.rows(1..<2).values, [Float](repeating: 0, count: 64), "the padding row is zero")
        XCTAssertEqual(Set(w.layers[0].inputNorm.values + w.finalNorm.values), [1])
        XCTAssertEqual(DecoderWeights.transformersInitialized(config: config, seed: 3).embedding.rows(2..<3).values, w.embedding.rows(2..<3).values)
    }

    func testSameSeedWritesIdenticalBytes() throws {
        let root = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var c = Self.smallConfiguration()
        c.steps = 4
        for run in ["a", "b"] { try BaseModelPretrainer.pretrain(lines: Self.walkthroughs, configuration: c, output: root + "/" + run) }
        c.seed += 1
        try BaseModelPretrainer.pretrain(lines: Self.walkthroughs, configuration: c, output: root + "/c")
        for file in ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            XCTAssertEqual(FileManager.default.contents(atPath: root + "/a/" + file), FileManager.default.contents(atPath: root + "/b/" + file), file)
        }
        XCTAssertNotEqual(FileManager.default.contents(atPath: root + "/a/model.safetensors"), FileManager.default.contents(atPath: root + "/c/model.safetensors"))
    }

    /// Trained only on the action part, the model learns the templated walkthroughs: the loss
    /// falls below 0.05 nats per target within 200 steps (seen: 0.013; it plateaus near
    /// ln(8)/6 ≈ 0.35 until the model learns to copy the receptacle), and greedy decoding after
    /// `<action>` names the goal's receptacle and stops at `</action>`.
    func testLearnsTemplatedWalkthroughs() throws {
        var c = BaseModelPretrainingConfiguration()
        c.hiddenSize = 64; c.layerCount = 2; c.headCount = 4; c.keyValueHeadCount = 2; c.intermediateSize = 128
        c.maxLength = 32; c.batchSize = 8; c.steps = 200; c.seed = 5; c.lossMarker = "<action>"
        let trainer = try BaseModelPretrainer(configuration: c, tokenizerJSON: try WordLevelTokenizerBuilder().tokenizerJSON(lines: Self.walkthroughs))
        var losses: [Double] = []
        try trainer.train(lines: Self.walkthroughs) { losses.append($0.loss) }
        XCTAssertEqual(losses.count, 200)
        XCTAssertGreaterThan(losses[0], 3, "starts near log(vocabulary)")
        let tail = losses.suffix(10).reduce(0, +) / 10
        XCTAssertLessThan(tail, 0.05, "mean loss of the last 10 steps")
        let engine = Engine(decoder: trainer.decoder, tokenizer: trainer.tokenizer)
        var p = SamplingParameters()
        p.maxNewTokens = 8
        p.stopStrings = ["</action>"]
        for (object, receptacle) in [("mug", "drawer"), ("bread", "garbagecan"), ("apple", "fridge")] {
            let result = try engine.generate(prompt: "goal : put \(object) in \(receptacle) <action>", parameters: p)
            XCTAssertEqual(result.text, "go to \(receptacle) 1 </action>")
        }
    }

    func testCorpusLinesKeepTheFileLineNumbers() throws {
        let root = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/corpus.txt"
        try "go to fridge 1\r\n\r\nopen fridge 1 <action> open fridge 1 </action>\n".write(toFile: path, atomically: true, encoding: .utf8)
        let lines = try BaseModelPretrainer.corpusLines(path: path)
        XCTAssertEqual(lines, ["go to fridge 1", "", "open fridge 1 <action> open fridge 1 </action>", ""])
        var c = Self.smallConfiguration()
        c.maxLength = 8
        let trainer = try BaseModelPretrainer(configuration: c, tokenizerJSON: try WordLevelTokenizerBuilder().tokenizerJSON(lines: lines))
        XCTAssertThrowsError(try trainer.encode(lines: lines)) { error in
            XCTAssertEqual(error as? MoRAgentError, .invalidArgument("line 3 has 9 tokens with its </s>, more than the maximum length 8 (raise it, or truncate)"))
        }
        c.maxLength = 9
        let encoded = try BaseModelPretrainer(configuration: c, tokenizerJSON: try WordLevelTokenizerBuilder().tokenizerJSON(lines: lines)).encode(lines: lines)
        XCTAssertEqual(encoded.sequences.map(\.count), [5, 9], "blank lines are skipped")
        XCTAssertEqual(encoded.targets[1], [Bool](repeating: true, count: 9))
        c.lossMarker = "<action>"
        let masked = try BaseModelPretrainer(configuration: c, tokenizerJSON: try WordLevelTokenizerBuilder().tokenizerJSON(lines: lines)).encode(lines: lines)
        XCTAssertEqual(masked.sequences.count, 1, "a line without the marker has no targets and is skipped")
        XCTAssertEqual(masked.targets[0], [false, false, false, false, true, true, true, true, true], "targets after <action>, </s> included")
    }

    func testBadInputFailsWithoutWritingAFolder() throws {
        let root = Fixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let out = root + "/model"
        func expectFailure(_ lines: [String], _ change: (inout BaseModelPretrainingConfiguration) -> Void, _ message: String,
                           file: StaticString = #filePath, line: UInt = #line) {
            var c = Self.smallConfiguration()
            change(&c)
            XCTAssertThrowsError(try BaseModelPretrainer.pretrain(lines: lines, configuration: c, output: out), file: file, line: line) { error in
                guard case .invalidArgument(let text)? = error as? MoRAgentError else { return XCTFail("\(error)", file: file, line: line) }
                XCTAssertTrue(text.contains(message), text, file: file, line: line)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), file: file, line: line)
        }
        expectFailure([], { _ in }, "no words")
        expectFailure(["   ", ""], { _ in }, "no words")
        expectFailure(Self.walkthroughs, { $0.maxLength = 10 }, "line 1 has 13 tokens")
        expectFailure(Self.walkthroughs, { $0.layerCount = 0 }, "at least one layer")
        expectFailure(Self.walkthroughs, { $0.hiddenSize = 30 }, "not divisible by 4 heads")
        expectFailure(Self.walkthroughs, { $0.keyValueHeadCount = 3 }, "not divisible by 3 key/value heads")
        expectFailure(Self.walkthroughs, { $0.batchSize = 0 }, "batch size")
        expectFailure(Self.walkthroughs, { $0.lossMarker = "<think>" }, "not a token")
        expectFailure(["go to fridge 1"], { $0.lossMarker = "<action>" }, "no line of the corpus")
        XCTAssertThrowsError(try BaseModelPretrainer.pretrain(lines: Self.walkthroughs, configuration: Self.smallConfiguration(), output: out) { m in
            if m.step == 2 { throw MoRAgentError.invalidArgument("stopped by the host") }
        })
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "a stopped run writes nothing")
        // Truncation instead of failure; a taken output folder is refused before training.
        var c = Self.smallConfiguration()
        c.maxLength = 10; c.truncate = true
        try BaseModelPretrainer.pretrain(lines: Self.walkthroughs, configuration: c, output: out)
        XCTAssertThrowsError(try BaseModelPretrainer.pretrain(lines: Self.walkthroughs, configuration: c, output: out)) { error in
            XCTAssertEqual(error as? MoRAgentError, .invalidArgument("the output folder \(out) exists and is not empty"))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: root), ["model"], "no temporary folder is left")
    }
}
