// swift-tools-version: 6.0
import CompilerPluginSupport
import PackageDescription

let package = Package(
    name: "Ferrite",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FerriteHeap", targets: ["FerriteHeap"]),
        .library(name: "FerriteMedium", targets: ["FerriteMedium"]),
        .library(name: "FerriteCollections", targets: ["FerriteCollections"]),
        .library(name: "FerriteObjects", targets: ["FerriteObjects"]),
        .library(name: "FerriteBank", targets: ["FerriteBank"]),
        .library(name: "FerriteServer", targets: ["FerriteServer"]),
        .library(name: "FerriteMulticast", targets: ["FerriteMulticast"]),
        .executable(name: "ferrite", targets: ["ferrite"]),
        .executable(name: "ferrite-bank", targets: ["ferrite-bank"]),
    ],
    dependencies: [
        // The server only: the heap and the collections need nothing beyond the toolchain.
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // The @Persistent macro's compiler plugin only (a version range: any 600-series release).
        .package(url: "https://github.com/swiftlang/swift-syntax.git", "600.0.1"..<"700.0.0"),
    ],
    targets: [
        // The C shim: cache-line flushes, fences, CPU feature detection, atomics on mapped words.
        .target(name: "CFerriteShim"),
        // The persistence medium: how stores become durable (real CPU flushes or a simulation).
        .target(name: "FerriteMedium", dependencies: ["CFerriteShim"]),
        // The persistent heap: pools, allocator, transactions, proxies, recovery, verifier.
        .target(name: "FerriteHeap", dependencies: ["FerriteMedium", "CFerriteShim"]),
        // Persistent collections: strings, arrays, hash maps and sorted maps that live in the pool.
        .target(name: "FerriteCollections", dependencies: ["FerriteHeap"]),
        // The compiler plugin behind @Persistent: reads a class, writes its persistent layout and
        // accessors, and diagnoses what cannot be persisted. Kept thin: swift-syntax only.
        .macro(
            name: "FerriteMacros",
            dependencies: [
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
                .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            ]
        ),
        // @Persistent classes: the macro's declaration and what its expansions call (property
        // storage, layouts, schema fingerprints and migration).
        .target(name: "FerriteObjects", dependencies: ["FerriteHeap", "FerriteCollections", "FerriteMacros"]),
        // The Redis-protocol server: RESP framing, commands over a persistent keyspace, SwiftNIO.
        .target(
            name: "FerriteServer",
            dependencies: [
                "FerriteHeap", "FerriteCollections", "CFerriteShim",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Genuine atomic multicast: WB-amcast and a baseline (Skeen over Multi-Paxos) as
        // deterministic state machines, a seeded simulator and a checker. Independent of the heap.
        .target(name: "FerriteMulticast"),
        // Multicast replicas as real processes: TCP between them (SwiftNIO), durable logs,
        // delivery logs, a closed-loop load generator.
        .target(
            name: "FerriteMulticastNode",
            dependencies: [
                "FerriteMulticast",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The command-line tool: `ferrite serve`.
        .executableTarget(
            name: "ferrite",
            dependencies: [
                "FerriteServer", "FerriteHeap", "FerriteMulticast", "FerriteMulticastNode",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The TPC-B-like bank written with @Persistent, shared by the example and the benchmarks.
        .target(name: "FerriteBank", dependencies: ["FerriteObjects"]),
        // Example program: the bank, which survives being killed.
        .executableTarget(name: "ferrite-bank", dependencies: ["FerriteBank", "FerriteObjects"]),
        // Test objects and the randomized workload shared by the tests and the crash worker.
        .target(name: "FerriteTestSupport", dependencies: ["FerriteHeap", "FerriteMedium"]),
        // Child process driven by the real-crash tests.
        .executableTarget(name: "FerriteCrashWorker", dependencies: ["FerriteHeap", "FerriteTestSupport"]),
        .testTarget(
            name: "FerriteHeapTests",
            dependencies: ["FerriteHeap", "FerriteMedium", "CFerriteShim", "FerriteTestSupport", "FerriteCrashWorker"]
        ),
        .testTarget(
            name: "FerriteCollectionsTests",
            dependencies: ["FerriteCollections", "FerriteHeap", "FerriteMedium", "FerriteTestSupport"]
        ),
        .testTarget(
            name: "FerriteMacrosTests",
            dependencies: [
                "FerriteMacros",
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacroExpansion", package: "swift-syntax"),
            ]
        ),
        .testTarget(
            name: "FerriteObjectsTests",
            dependencies: ["FerriteObjects", "FerriteHeap", "FerriteCollections", "FerriteMedium", "FerriteTestSupport", "ferrite-bank"]
        ),
        .testTarget(name: "FerriteMulticastTests", dependencies: ["FerriteMulticast", "FerriteMulticastNode", "ferrite"]),
        .testTarget(
            name: "FerriteServerTests",
            dependencies: [
                "FerriteServer", "FerriteHeap", "FerriteCollections", "FerriteMedium", "FerriteTestSupport", "ferrite",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
