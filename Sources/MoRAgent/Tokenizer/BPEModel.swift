/// HF's BPE model: a word starts as one symbol per code point, then the adjacent pair with the
/// lowest merge rank is merged until no listed pair is left.
final class BPEModel: TokenizerModel {
    let vocabulary: [[UInt8]: Int32]
    /// Pair (left id << 32 | right id) → merge (rank << 32 | merged id).
    private let merges: [UInt64: UInt64]
    /// Id of each one-code-point token below U+0800 (−1: none); covers every byte-level character.
    private let smallScalarIDs: [Int32]
    /// Id of each one-code-point token from U+0800 on.
    private let largeScalarIDs: [UInt32: Int32]
    /// The unknown token's id, nil when the model has none (unknown characters are then dropped,
    /// as in HF).
    private let unknownID: Int32?
    /// Whether consecutive unknown characters become a single unknown token.
    private let fuseUnknown: Bool
    /// With `byte_fallback`, the id of each `<0xXX>` token (−1: missing).
    private let byteFallbackIDs: [Int32]?
    /// With `ignore_merges`, a word that is itself in the vocabulary is taken whole.
    private let ignoreMerges: Bool
    private let cache = TokenizerWordCache()

    private static let smallScalarLimit = 0x800

    init(_ json: JSONValue, _ reader: TokenizerFileReader) throws {
        if let dropout = json["dropout"], !dropout.isNull {
            guard let p = dropout.doubleValue else { throw reader.malformed("model.dropout must be a number or null") }
            // Dropout makes tokenization random; it is a training device.
            if p > 0 { throw reader.unsupported("model", "BPE with dropout") }
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = try reader.optionalString(json, key, in: "model"), !affix.isEmpty {
                throw reader.unsupported("model", "BPE with \(key)")
            }
        }
        let vocabulary = try parseTokenizerVocabulary(json["vocab"], reader, in: "model")
        self.vocabulary = vocabulary

        var merges: [UInt64: UInt64] = [:]
        let entries = try reader.array(json, "merges", in: "model")
        merges.reserveCapacity(entries.count)
        var rank: UInt64 = 0
        for (index, entry) in entries.enumerated() {
            let left: String, right: String
            if let line = entry.stringValue {
                if line.utf8.starts(with: "#version".utf8) { continue }
                // Split on code points: `String.split` would glue a space to a following
                // combining mark.
                let parts = line.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw reader.malformed("model.merges[\(index)] \"\(line)\" is not two tokens separated by one space")
                }
                left = String(Substring(parts[0]))
                right = String(Substring(parts[1]))
            } else if let pair = entry.arrayValue, pair.count == 2, let a = pair[0].stringValue, let b = pair[1].stringValue {
                left = a
                right = b
            } else {
                throw reader.malformed("model.merges[\(index)] must be \"a b\" or [\"a\", \"b\"]")
            }
            guard let leftID = vocabulary[Array(left.utf8)], let rightID = vocabulary[Array(right.utf8)],
                  let mergedID = vocabulary[Array(left.utf8) + Array(right.utf8)] else {
                throw reader.malformed("model.merges[\(index)] (\"\(left)\", \"\(right)\") uses a token missing from the vocabulary")
            }
            // A repeated pair keeps its last rank, as HF's map construction does.
            merges[BPEModel.pairKey(leftID, rightID)] = rank << 32 | UInt64(UInt32(mergedID))
            rank += 1
        }
        self.merges = merges

        var small = [Int32](repeating: -1, count: BPEModel.smallScalarLimit)
        var large: [UInt32: Int32] = [:]
        for (token, id) in vocabulary {
            var scalars = String(decoding: token, as: UTF8.self).unicodeScalars.makeIterator()
            guard let u = scalars.next(), scalars.next() == nil else { continue }
            if Int(u.value) < BPEModel.smallScalarLimit { small[Int(u.value)] = id } else { large[u.value] = id }
        }
        smallScalarIDs = small
        largeScalarIDs = large

        unknownID = try reader.optionalString(json, "unk_token", in: "model").flatMap { vocabulary[Array($0.utf8)] }
        fuseUnknown = try reader.bool(json, "fuse_unk", in: "model", default: false)
        if try reader.bool(json, "byte_fallback", in: "model", default: false) {
            let hex = Array("0123456789ABCDEF".utf8)
            byteFallbackIDs = (0..<256).map { b in
                vocabulary[Array("<0x".utf8) + [hex[b >> 4], hex[b & 15], UInt8(ascii: ">")]] ?? -1
            }
        } else {
            byteFallbackIDs = nil
        }
        ignoreMerges = try reader.bool(json, "ignore_merges", in: "model", default: false)
    }

    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
    }

    func tokenize(_ word: String, into ids: inout [Int32]) {
        let key = Array(word.utf8)
        if key.isEmpty { return }
        if ignoreMerges, let id = vocabulary[key] {
            ids.append(id)
            return
        }
        if let cached = cache.ids(for: key) {
            ids.append(contentsOf: cached)
            return
        }
        var symbols = initialSymbols(word)
        mergeAll(&symbols)
        cache.store(symbols, for: key)
        ids.append(contentsOf: symbols)
    }

    /// One symbol per code point, with HF's byte fallback and unknown-token rules.
    private func initialSymbols(_ word: String) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.utf8.count)
        var pendingUnknown = false
        for u in word.unicodeScalars {
            let id = Int(u.value) < BPEModel.smallScalarLimit ? smallScalarIDs[Int(u.value)] : largeScalarIDs[u.value] ?? -1
            if id >= 0 {
                if pendingUnknown, let unknownID { symbols.append(unknownID); pendingUnknown = false }
                symbols.append(id)
                continue
            }
            if let byteIDs = byteFallbackIDs {
                let bytes = Array(String(u).utf8)
                if bytes.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                    // HF adds these without flushing a pending unknown token first; kept as is.
                    symbols.append(contentsOf: bytes.map { byteIDs[Int($0)] })
                    continue
                }
            }
            guard let unknownID else { continue }
            if pendingUnknown && !fuseUnknown { symbols.append(unknownID) }
            pendingUnknown = true
        }
        if pendingUnknown, let unknownID { symbols.append(unknownID) }
        return symbols
    }

    /// Applies merges lowest rank first (leftmost first among equal ranks), over a linked list of
    /// symbols and a priority queue of candidate pairs, as HF's `Word::merge_all` does; stale
    /// queue entries are recognized and skipped when popped.
    private func mergeAll(_ symbols: inout [Int32]) {
        let n = symbols.count
        if n < 2 { return }
        var previous = Array(-1..<(n - 1))
        var next = Array(1...n)          // n: no next symbol
        var alive = [Bool](repeating: true, count: n)
        var queue = BPEMergeQueue()
        for i in 0..<(n - 1) {
            if let merge = merges[BPEModel.pairKey(symbols[i], symbols[i + 1])] { queue.push(merge, at: i) }
        }
        while let top = queue.pop() {
            let left = top.position
            guard alive[left] else { continue }
            let right = next[left]
            guard right < n, let merge = merges[BPEModel.pairKey(symbols[left], symbols[right])],
                  Int32(truncatingIfNeeded: merge) == top.mergedID else { continue }
            symbols[left] = top.mergedID
            alive[right] = false
            next[left] = next[right]
            if next[right] < n { previous[next[right]] = left }
            if previous[left] >= 0, let merge = merges[BPEModel.pairKey(symbols[previous[left]], symbols[left])] {
                queue.push(merge, at: previous[left])
            }
            if next[left] < n, let merge = merges[BPEModel.pairKey(symbols[left], symbols[next[left]])] {
                queue.push(merge, at: left)
            }
        }
        var kept = 0
        for i in 0..<n where alive[i] {
            symbols[kept] = symbols[i]
            kept += 1
        }
        symbols.removeLast(n - kept)
    }
}

/// A binary min-heap of candidate merges ordered by rank, then position.
struct BPEMergeQueue {
    /// A candidate: merge the symbol at `position` with its right neighbour into `mergedID`.
    struct Entry {
        /// rank << 32 | position, so one comparison orders by rank then position.
        let order: UInt64
        let mergedID: Int32
        var position: Int { Int(order & 0xFFFF_FFFF) }
    }

    private var heap: [Entry] = []

    /// Adds a candidate from a packed merge (rank << 32 | merged id).
    mutating func push(_ merge: UInt64, at position: Int) {
        heap.append(Entry(order: merge & 0xFFFF_FFFF_0000_0000 | UInt64(position), mergedID: Int32(truncatingIfNeeded: merge)))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].order < heap[parent].order else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the lowest candidate.
    mutating func pop() -> Entry? {
        guard let first = heap.first else { return nil }
        let last = heap.removeLast()
        if heap.isEmpty { return first }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            if left >= heap.count { break }
            let right = left + 1
            let child = right < heap.count && heap[right].order < heap[left].order ? right : left
            guard heap[child].order < heap[parent].order else { break }
            heap.swapAt(child, parent)
            parent = child
        }
        return first
    }
}
