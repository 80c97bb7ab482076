import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Which OpenBLAS kernel family runs, and which one this CPU should run.
///
/// Why: Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH and picks its kernels from the CPU
/// model number at load time. CPUs newer than the release (seen here: an AVX-512 Xeon, family 6
/// model 207) are not in its table and fall back to the SSE3 `Prescott` kernels, measured at
/// ~62 GFLOP/s against ~150 with `SkylakeX` on the same machine. The override,
/// `OPENBLAS_CORETYPE`, is read only when OpenBLAS loads, so a process must set it before that:
/// the `moragent` tool re-executes itself with it, and the bindings set it before loading the
/// library.
public enum BLASCoreType {
    /// The kernel family OpenBLAS chose (e.g. `Haswell`, `SkylakeX`, `Prescott`).
    public static var current: String { String(cString: openblas_get_corename()) }

    /// The kernel family the CPU's flags call for, judged from `/proc/cpuinfo`: `SkylakeX`
    /// with AVX-512F, `Haswell` with AVX2 and FMA, nil when nothing better than the default is known.
    public static var recommended: String? {
        guard let text = readProcFile("/proc/cpuinfo"),
              let line = String(decoding: text, as: UTF8.self).split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
            return nil
        }
        let flags = Set(line.split(separator: " ").map(String.init))
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// The core type to put in `OPENBLAS_CORETYPE` when OpenBLAS fell back to a generic kernel
    /// on a CPU that supports a better one; nil when the choice is already right.
    public static var correction: String? {
        let generic: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Katmai", "Banias"]
        guard generic.contains(current), let better = recommended else { return nil }
        return better
    }
}

/// Reads a `/proc` file, which reports size 0 and so cannot be mapped.
private func readProcFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n <= 0 { break }
        out.append(contentsOf: chunk[0..<n])
    }
    return out
}
