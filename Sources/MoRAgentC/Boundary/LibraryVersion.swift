#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import MoRAgent

/// The core's version (`moragentVersionString`) in the forms the header's version calls return.
/// The C tests compare both with the header's MORAGENT_VERSION macros, so the header and the
/// library cannot drift apart unnoticed.
enum LibraryVersion {
    /// "MAJOR.MINOR.PATCH" as a C string that lives as long as the process.
    static let string = UnsafePointer(strdup(moragentVersionString)!)

    /// MAJOR * 1000000 + MINOR * 1000 + PATCH.
    static let number: Int32 = {
        let parts = moragentVersionString.split(separator: ".").map { Int32($0) ?? 0 } + [0, 0, 0]
        return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]
    }()
}
