/// Word → ids results shared by every thread that uses one tokenizer, behind a mutex. Like HF's
/// BPE cache it is bounded: once full it keeps what it has and stops adding, so a long-running
/// process holds a fixed amount of memory while the common words of its prompts stay cached.
final class TokenizerWordCache: @unchecked Sendable {
    /// Most entries kept (HF's default capacity).
    let capacity: Int
    /// Longest word, in UTF-8 bytes, worth keeping: long runs are rare and would crowd the cache.
    let maxWordBytes = 256
    private var entries: [[UInt8]: [Int32]] = [:]
    private let lock = PThreadLock()

    init(capacity: Int = 10_000) {
        self.capacity = capacity
    }

    /// The cached ids for `word`, if any.
    func ids(for word: [UInt8]) -> [Int32]? {
        lock.withLock { entries[word] }
    }

    /// Remembers `ids` for `word` if the word is short enough and there is room.
    func store(_ ids: [Int32], for word: [UInt8]) {
        guard word.count <= maxWordBytes else { return }
        lock.withLock { if entries.count < capacity { entries[word] = ids } }
    }
}
