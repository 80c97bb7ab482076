// swift-tools-version:6.0
import PackageDescription

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
                swiftSettings: [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]),
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
