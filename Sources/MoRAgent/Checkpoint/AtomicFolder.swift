#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Replaces a folder with a new one so that a crash at any moment leaves either the old folder
/// or the new one whole at `path`, never a mix (DESIGN.md §8).
///
/// The new contents are written into a sibling staging folder, every file and the folder are
/// fsynced, then the two folders are swapped with `renameat2(RENAME_EXCHANGE)` (one atomic
/// step; Linux ≥ 3.15) and the old contents, now in the staging folder, are deleted. Where the
/// exchange is unavailable the old folder is renamed aside first, which leaves a short window in
/// which `path` is missing but the old folder survives under `path.old-<pid>`.
enum AtomicFolder {
    /// Writes a folder at `path` through `fill(staging)`, which creates the files inside the
    /// staging folder it is given. Leftover staging folders of earlier, killed writes are removed.
    static func write(_ path: String, fill: (String) throws -> Void) throws {
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let parentPath = parent.isEmpty ? (path.hasPrefix("/") ? "/" : ".") : parent
        let base = path.split(separator: "/").last.map(String.init) ?? path
        removeStale(in: parentPath, prefix: "." + base + ".staging-")
        let staging = (parent.isEmpty && !path.hasPrefix("/") ? "" : parentPath + "/") + "." + base + ".staging-\(getpid())"
        try removeTree(staging)
        guard mkdir(staging, 0o755) == 0 else { throw MoRAgentError.io(path: staging, reason: String(cString: strerror(errno))) }
        do {
            try fill(staging)
            for name in try entries(staging) { try sync(staging + "/" + name) }
            try sync(staging)
        } catch {
            try? removeTree(staging)
            throw error
        }
        var info = stat()
        if stat(path, &info) != 0 {
            guard rename(staging, path) == 0 else { throw MoRAgentError.io(path: path, reason: "rename failed: \(String(cString: strerror(errno)))") }
        } else if exchange(staging, path) {
            try removeTree(staging)
        } else {
            let aside = path + ".old-\(getpid())"
            guard rename(path, aside) == 0 else { throw MoRAgentError.io(path: path, reason: "rename failed: \(String(cString: strerror(errno)))") }
            guard rename(staging, path) == 0 else {
                let why = String(cString: strerror(errno))
                _ = rename(aside, path)
                throw MoRAgentError.io(path: path, reason: "rename failed: \(why)")
            }
            try removeTree(aside)
        }
        try? sync(parentPath)
    }

    /// `renameat2(a, b, RENAME_EXCHANGE)` looked up at run time (glibc declares it only under
    /// _GNU_SOURCE, which Swift's Glibc module does not expose).
    private static func exchange(_ a: String, _ b: String) -> Bool {
        typealias Renameat2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let f = unsafeBitCast(symbol, to: Renameat2.self)
        return f(AT_FDCWD, a, AT_FDCWD, b, 2 /* RENAME_EXCHANGE */) == 0
    }

    /// fsync of a file or folder.
    private static func sync(_ path: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw MoRAgentError.io(path: path, reason: "fsync failed: \(String(cString: strerror(errno)))") }
    }

    /// The names in a folder (without "." and "..").
    static func entries(_ folder: String) throws -> [String] {
        guard let dir = opendir(folder) else { throw MoRAgentError.io(path: folder, reason: String(cString: strerror(errno))) }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Deletes a file or a folder tree; a missing path is fine.
    static func removeTree(_ path: String) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in try entries(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        } else {
            guard unlink(path) == 0 else { throw MoRAgentError.io(path: path, reason: String(cString: strerror(errno))) }
        }
    }

    /// Removes staging folders left by writes that were killed.
    private static func removeStale(in folder: String, prefix: String) {
        for name in (try? entries(folder)) ?? [] where name.hasPrefix(prefix) { try? removeTree(folder + "/" + name) }
    }
}
