// swift-tools-version: 6.0
// Ferrite's benchmarks: a separate package, so the library gains no system dependency.
//   swift run -c release --package-path Benchmarks heap-bench [all|ops|reopen]
//   swift run -c release --package-path Benchmarks collections-bench [all|dictionary|sorted|open]
//   swift run -c release --package-path Benchmarks storage-bench
//   swift run -c release --package-path Benchmarks objects-bench
//   swift run -c release --package-path Benchmarks ferrite-bench ycsb|report ...
// Needs the peers measured in the same run, Debian's libpmemobj-dev (PMDK) for heap-bench and
// libsqlite3-dev and liblmdb-dev (SQLite, LMDB) for storage-bench: Benchmarks/setup.sh.
import PackageDescription

let package = Package(
    name: "FerriteBenchmarks",
    dependencies: [
        .package(name: "Ferrite", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibPMemObj", pkgConfig: "libpmemobj", providers: [.apt(["libpmemobj-dev"])]),
        // PMDK doing the same operations as Ferrite, in C, timed natively.
        .target(name: "PMDKWorkloads", dependencies: ["CLibPMemObj"]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        // SQLite and LMDB doing durable single-record updates, in C, timed natively.
        .target(name: "StorageWorkloads", dependencies: ["CSQLite", "CLMDB"]),
        // Arguments, medians and scratch directories shared by the benchmark commands.
        .target(name: "BenchmarkSupport"),
        .executableTarget(
            name: "heap-bench",
            dependencies: [.product(name: "FerriteHeap", package: "Ferrite"), .product(name: "FerriteMedium", package: "Ferrite"), "PMDKWorkloads", "BenchmarkSupport"]
        ),
        .executableTarget(
            name: "collections-bench",
            dependencies: [.product(name: "FerriteCollections", package: "Ferrite"), .product(name: "FerriteHeap", package: "Ferrite"), "BenchmarkSupport"]
        ),
        // SQLite and LMDB as YCSB stores and as banks, in C.
        .target(name: "PeerStores", dependencies: ["CSQLite", "CLMDB"]),
        .executableTarget(
            name: "ferrite-bench",
            dependencies: [
                .product(name: "FerriteObjects", package: "Ferrite"), .product(name: "FerriteBank", package: "Ferrite"), "PeerStores", "BenchmarkSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "objects-bench",
            dependencies: [.product(name: "FerriteObjects", package: "Ferrite"), "BenchmarkSupport"]
        ),
        .executableTarget(
            name: "storage-bench",
            dependencies: [.product(name: "FerriteHeap", package: "Ferrite"), "BenchmarkSupport", "StorageWorkloads"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
