// swift-tools-version: 6.0
// Ferrite's benchmarks: a separate package, so the library gains no system dependency.
//   swift run -c release --package-path Benchmarks heap-bench [all|ops|reopen]
//   swift run -c release --package-path Benchmarks collections-bench [all|dictionary|sorted|open]
// Needs Debian's libpmemobj-dev (PMDK), the peer measured in the same run: Benchmarks/setup.sh.
import PackageDescription

let package = Package(
    name: "FerriteBenchmarks",
    dependencies: [.package(name: "Ferrite", path: "..")],
    targets: [
        .systemLibrary(name: "CLibPMemObj", pkgConfig: "libpmemobj", providers: [.apt(["libpmemobj-dev"])]),
        // PMDK doing the same operations as Ferrite, in C, timed natively.
        .target(name: "PMDKWorkloads", dependencies: ["CLibPMemObj"]),
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
    ],
    swiftLanguageModes: [.v6]
)
