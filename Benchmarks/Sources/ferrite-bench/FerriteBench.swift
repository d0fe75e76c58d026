// ferrite-bench: YCSB, the TPC-B-like bank and recovery after a SIGKILL, run on Ferrite and on
// the stores a Swift user on Linux would pick instead, embedded in this process (the bank's
// recovery in a child process), same generator, same run.
//
//   swift run -c release --package-path Benchmarks ferrite-bench ycsb --workload a --records 1000000 \
//       --operations 1000000 --threads 1 --stores ferrite-memory,sqlite-normal,lmdb-nosync --json results.json
//   swift run -c release --package-path Benchmarks ferrite-bench bank --scale 1 --threads 1,2 --seconds 10 --json bank.json
//   swift run -c release --package-path Benchmarks ferrite-bench recovery --accounts 1000000 --json recovery.json
//   swift run -c release --package-path Benchmarks ferrite-bench report results.json --bank bank.json --recovery recovery.json --output docs/benchmarks
import ArgumentParser
import Foundation

@main
struct FerriteBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferrite-bench",
        abstract: "Ferrite and its peers side by side: YCSB, the TPC-B-like bank and recovery, with reports.",
        subcommands: [YCSB.self, BankCommand.self, RecoveryCommand.self, Report.self, BankChild.self]
    )
}

/// Lists given as `a,b,c`.
struct List<Element: ExpressibleByArgument>: ExpressibleByArgument {
    var values: [Element]
    init?(argument: String) {
        let parsed = argument.split(separator: ",").map { Element(argument: String($0)) }
        guard !parsed.isEmpty, parsed.allSatisfy({ $0 != nil }) else { return nil }
        values = parsed.map { $0! }
    }
}

extension Workload: ExpressibleByArgument {}
extension StoreKind: ExpressibleByArgument {}

struct YCSB: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Runs YCSB core workloads (load, then run) on each store.")

    @Option(help: "Workloads, a to f (a list runs each).") var workload: List<Workload> = List(argument: "a")!
    @Option(help: "Records loaded.") var records = 1_000_000
    @Option(help: "Operations in the run phase.") var operations = 1_000_000
    @Option(help: "Threads (a list runs each).") var threads: List<Int> = List(argument: "1")!
    @Option(help: "Stores: \(StoreKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var stores: List<StoreKind> = List(argument: "ferrite-memory,ferrite-storage,sqlite-full,sqlite-normal,lmdb,lmdb-nosync,marshal,dictionary")!
    @Option(help: "Records per transaction in the load phase.") var loadBatch = 1_000
    @Option(help: "Results are added to this JSON file.") var json: String?
    @Option(help: "Seed of the operation generators.") var seed: UInt64 = 42

    mutating func run() throws {
        var results: [YCSBResult] = []
        if let json, let data = FileManager.default.contents(atPath: json) {
            results = (try? JSONDecoder().decode([YCSBResult].self, from: data)) ?? []
        }
        let scratch = (memory: "/dev/shm/ferrite-bench-\(getpid())", disk: FileManager.default.currentDirectoryPath + "/.ferrite-bench-\(getpid())")
        defer {
            try? FileManager.default.removeItem(atPath: scratch.memory)
            try? FileManager.default.removeItem(atPath: scratch.disk)
        }
        print("| workload | threads | store | load (rec/s) | run (ops/s) | latency p50 / p99 / p99.9 (µs) | on disk | raw | peak RSS |")
        print("|---|---|---|---|---|---|---|---|---|")
        for workload in workload.values {
            for threadCount in threads.values {
                for kind in stores.values {
                    if workload == .e && !kind.scans { continue }
                    let directory = (kind.onDisk ? scratch.disk : scratch.memory) + "/\(kind.rawValue)-\(workload.rawValue)-\(threadCount)"
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    resetPeakMemory()
                    let store = try kind.open(in: directory, ordered: workload == .e, threads: threadCount)
                    let runner = YCSBRunner(workload: workload, records: records, operations: operations, threads: threadCount,
                                            loadBatch: loadBatch, seed: seed)
                    let result = try runner.run(store, name: kind.rawValue)
                    store.close()
                    try? FileManager.default.removeItem(atPath: directory)
                    results.removeAll { $0.store == result.store && $0.workload == result.workload && $0.threads == result.threads && $0.records == result.records }
                    results.append(result)
                    let latencies = result.latency.keys.sorted().map { name in
                        let l = result.latency[name]!
                        return "\(name) \(format(l.p50)) / \(format(l.p99)) / \(format(l.p999))"
                    }.joined(separator: "; ")
                    print("| \(workload.rawValue) | \(threadCount) | \(kind.rawValue) | \(Int(result.loadPerSecond)) | \(Int(result.throughput)) | \(latencies) | \(megabytes(result.storedBytes)) | \(megabytes(result.rawBytes)) | \(megabytes(result.peakMemoryBytes)) |")
                    if let json {
                        let encoder = JSONEncoder()
                        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                        try encoder.encode(results).write(to: URL(fileURLWithPath: json))
                    }
                }
            }
        }
    }
}

func format(_ value: Double) -> String { value < 10 ? String(format: "%.1f", value) : String(Int(value.rounded())) }
func megabytes(_ bytes: Int) -> String { bytes == 0 ? "-" : "\(bytes >> 20) MiB" }
