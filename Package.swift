// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Ferrite",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "FerriteHeap", targets: ["FerriteHeap"]),
        .library(name: "FerriteMedium", targets: ["FerriteMedium"]),
        .library(name: "FerriteCollections", targets: ["FerriteCollections"]),
        .executable(name: "ferrite-bank", targets: ["ferrite-bank"]),
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
        // Example program: a bank that survives being killed.
        .executableTarget(name: "ferrite-bank", dependencies: ["FerriteHeap"]),
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
    ],
    swiftLanguageModes: [.v6]
)
