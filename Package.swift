// swift-tools-version:6.0
import Foundation
import PackageDescription

/// The vector level the core library is compiled for. Swift has no per-function CPU dispatch, so
/// the element-wise kernels (`SIMD8<Float>` loops: SwiGLU, softmax, RMSNorm, cross-entropy) run
/// at the level the whole module is built for. Baseline x86-64 splits each 8-lane operation in
/// two SSE instructions and has no FMA; built for AVX2 + FMA (`-target-cpu haswell`), a `tiny`
/// LoRA training step is ~6% faster (alternated runs). `MORAGENT_FMA` tells the kernels they
/// may fuse products and sums (`Kernels.multiplyAdd`; Swift never does it by itself, and
/// without the instruction each fused lane is a library call). As llama.cpp does by default, the
/// library is built for the build machine's CPU when it has AVX2 and FMA; it then needs such a
/// CPU to run.
/// `MORAGENT_PORTABLE=1 swift build ...` builds for baseline x86-64, to ship to other machines.
func vectorFlags() -> [String] {
    #if arch(x86_64) && os(Linux)
    if Context.environment["MORAGENT_PORTABLE"] == "1" { return [] }
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
    let flags = Set(line.split(separator: " ").map(String.init))
    let haswell = ["avx", "avx2", "fma", "bmi1", "bmi2", "abm", "f16c", "movbe", "popcnt", "xsave"]
    return haswell.allSatisfy(flags.contains) ? ["-target-cpu", "haswell", "-D", "MORAGENT_FMA"] : []
    #else
    return []
    #endif
}

// The core library depends on OpenBLAS alone; only the command-line tool uses a package
// (swift-argument-parser). The C layer is built into `libmoragent.so` with the Swift runtime
// linked statically, so C, Python and Lua hosts need no Swift installation (DESIGN.md §7).
let package = Package(
    name: "MoRAgent",
    products: [
        .library(name: "MoRAgent", targets: ["MoRAgent"]),
        .library(name: "moragent", type: .dynamic, targets: ["MoRAgentC"]),
        // The command-line tool; `bin/moragent` runs it under its user-facing name (the name
        // `moragent` is taken by the dynamic library product that yields libmoragent.so).
        .executable(name: "moragent-cli", targets: ["moragent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "MoRAgent", dependencies: ["COpenBLAS"], path: "Sources/MoRAgent",
                swiftSettings: [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
                                .unsafeFlags(vectorFlags())]),
        // The C header as a Swift module, so the entry points in MoRAgentC take and fill the
        // header's own structs and enums: their layout cannot drift from what C callers compile.
        .systemLibrary(name: "CMoRAgent", path: "Sources/CMoRAgent"),
        .target(name: "MoRAgentC", dependencies: ["MoRAgent", "CMoRAgent"], path: "Sources/MoRAgentC",
                linkerSettings: [.unsafeFlags(["-static-stdlib"])]),
        .executableTarget(name: "moragent",
                          dependencies: ["MoRAgent", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          path: "Sources/moragent"),
        .testTarget(name: "MoRAgentTests", dependencies: ["MoRAgent"], path: "Tests/MoRAgentTests",
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v5]
)
