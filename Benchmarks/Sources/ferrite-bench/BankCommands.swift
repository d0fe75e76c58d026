import ArgumentParser
import FerriteBank
import BenchmarkSupport
import Foundation
import Histogram
import Synchronization

/// Monotonic nanoseconds, comparable across processes (CLOCK_MONOTONIC).
func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// The scratch directory of a store: /dev/shm for the memory store, the working directory's disk
/// for the others.
func scratchDirectory(for kind: StoreKind, _ name: String) -> String {
    (kind.onDisk ? FileManager.default.currentDirectoryPath + "/.ferrite-bench-\(getpid())" : "/dev/shm/ferrite-bench-\(getpid())") + "/" + name
}

/// The result of one store's bank run.
struct BankResult: Codable, Sendable {
    var store: String
    var scale: Int
    var threads: Int
    var seconds: Double
    var transactions: Int
    var throughput: Double
    var latency: Latency
    var invariantHolds: Bool
}

/// A counter shared by threads.
final class Counter: Sendable {
    let value = Atomic(0)
}

/// Writes a line to standard output at once (unbuffered), for the parent process to read.
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Runs bank transactions from `threads` threads until `until()` says stop; returns the latency
/// histogram (`count` counts the commits).
func runBank(_ store: any BankStore, scale: Int, threads: Int, seed: UInt64, count: Counter, until: @escaping @Sendable () -> Bool) throws -> Histogram<UInt64> {
    let failure = Mutex<(any Error)?>(nil)
    let merged = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three))
    runOnThreads(threads) { thread in
        var rng = SeededRandom(seed: seed &+ UInt64(thread) &* 0x9E37_79B9)
        var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
        while !until() && failure.withLock({ $0 == nil }) {
            let account = Int.random(in: 0..<Bank.accountsPerBranch * scale, using: &rng)
            let teller = Int.random(in: 0..<10 * scale, using: &rng)
            let delta = Int.random(in: -5_000...5_000, using: &rng)
            let start = monotonicNanoseconds()
            do { try store.transaction(account: account, teller: teller, delta: delta) } catch { failure.withLock { $0 = error }; break }
            histogram.record(monotonicNanoseconds() - start)
            count.value.add(1, ordering: .relaxed)
        }
        merged.withLock { $0.add(histogram) }
    }
    if let error = failure.withLock({ $0 }) { throw error }
    return merged.withLock { $0 }
}

struct BankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bank", abstract: "Runs pgbench's TPC-B-like bank on each store; checks its invariant at the end.")

    @Option(help: "Scale: branches; 10 tellers and 100,000 accounts each.") var scale = 1
    @Option(help: "Threads running transactions.") var threads: List<Int> = List(argument: "1")!
    @Option(help: "Seconds each store runs.") var seconds = 10.0
    @Option(help: "Stores: ferrite-memory, ferrite-storage, sqlite-full, sqlite-normal, lmdb, lmdb-nosync.")
    var stores: List<StoreKind> = List(argument: "ferrite-memory,ferrite-storage,sqlite-full,sqlite-normal,lmdb,lmdb-nosync")!
    @Option(help: "Results are added to this JSON file.") var json: String?

    func run() throws {
        var results: [BankResult] = []
        if let json, let data = FileManager.default.contents(atPath: json) { results = (try? JSONDecoder().decode([BankResult].self, from: data)) ?? [] }
        print("| store | threads | transactions/s | latency p50 / p99 / p99.9 (µs) | invariant |")
        print("|---|---|---|---|---|")
        for threadCount in threads.values {
            for kind in stores.values where kind.runsBank {
                let directory = scratchDirectory(for: kind, "bank-\(kind.rawValue)")
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: directory) }
                FileHandle.standardError.write(Data("\(kind.rawValue): creating the bank at scale \(scale)...\n".utf8))
                let store = try kind.openBank(in: directory, scale: scale, threads: threadCount)
                let count = Counter()
                let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
                let start = monotonicNanoseconds()
                let histogram = try runBank(store, scale: scale, threads: threadCount, seed: 7, count: count) { monotonicNanoseconds() >= deadline }
                let elapsed = Double(monotonicNanoseconds() - start) / 1e9
                let totals = try store.totals()
                let committed = count.value.load(ordering: .relaxed)
                let holds = totals[0] == totals[1] && totals[1] == totals[2] && totals[2] == totals[3] && totals[4] == committed
                store.close()
                let result = BankResult(store: kind.rawValue, scale: scale, threads: threadCount, seconds: elapsed, transactions: committed,
                                        throughput: Double(committed) / elapsed,
                                        latency: Latency(count: committed, p50: Double(histogram.valueAtPercentile(50)) / 1000,
                                                         p99: Double(histogram.valueAtPercentile(99)) / 1000, p999: Double(histogram.valueAtPercentile(99.9)) / 1000),
                                        invariantHolds: holds)
                results.removeAll { $0.store == result.store && $0.scale == result.scale && $0.threads == result.threads }
                results.append(result)
                print("| \(kind.rawValue) | \(threadCount) | \(Int(result.throughput)) | \(format(result.latency.p50)) / \(format(result.latency.p99)) / \(format(result.latency.p999)) | \(holds ? "holds" : "BROKEN \(totals)") |")
                if let json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    try encoder.encode(results).write(to: URL(fileURLWithPath: json))
                }
                if !holds { throw ValidationError("\(kind.rawValue): the bank's invariant is broken: \(totals), \(committed) committed") }
            }
        }
    }
}

/// The child process of `recovery`: opens (or makes) a bank and runs transactions, reporting on
/// standard output, until killed.
struct BankChild: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bank-child", abstract: "The process `recovery` kills (not for direct use).", shouldDisplay: false)

    @Option var store: StoreKind
    @Option var directory: String
    @Option var scale: Int
    @Flag(help: "Make the bank and exit.") var createOnly = false
    @Flag(help: "Check the invariant and exit.") var check = false

    func run() throws {
        let started = monotonicNanoseconds()
        let bank = try store.openBank(in: directory, scale: scale, threads: 1)
        emit("open \(started) \(monotonicNanoseconds())")
        if createOnly { bank.close(); return }
        if check {
            let totals = try bank.totals()
            emit("totals \(totals.map(String.init).joined(separator: " "))")
            bank.close()
            if !(totals[0] == totals[1] && totals[1] == totals[2] && totals[2] == totals[3]) { throw ExitCode(1) }
            return
        }
        let count = Counter()
        // A reporter: the cumulative count every 10 ms.
        let reporter = Thread {
            while true {
                emit("tick \(monotonicNanoseconds()) \(count.value.load(ordering: .relaxed))")
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        reporter.start()
        var first = true
        var rng = SeededRandom(seed: monotonicNanoseconds())
        while true {
            let account = Int.random(in: 0..<Bank.accountsPerBranch * scale, using: &rng)
            let teller = Int.random(in: 0..<10 * scale, using: &rng)
            try bank.transaction(account: account, teller: teller, delta: Int.random(in: -5_000...5_000, using: &rng))
            count.value.add(1, ordering: .relaxed)
            if first {
                first = false
                emit("first \(monotonicNanoseconds())")
            }
        }
    }
}

/// One store's recovery: throughput over time across a SIGKILL.
struct RecoveryResult: Codable, Sendable {
    var store: String
    var accounts: Int
    var throughputBefore: Double
    /// Seconds from the kill to the restarted process's first committed transaction.
    var firstCommitSeconds: Double
    /// Seconds from the kill to the end of the first 100 ms window at 90% of the throughput before.
    var ninetyPercentSeconds: Double?
    /// (seconds relative to the kill, transactions per second over the 100 ms ending then).
    var samples: [[Double]]
    var invariantHolds: Bool
}

struct RecoveryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "recovery",
        abstract: "Runs the bank in a child process, SIGKILLs it, restarts it, and measures how fast throughput comes back.")

    @Option(help: "Accounts (a multiple of 100,000: the bank's scale is accounts / 100,000).") var accounts = 1_000_000
    @Option(help: "Stores.") var stores: List<StoreKind> = List(argument: "ferrite-memory,ferrite-storage,sqlite-full,lmdb")!
    @Option(help: "Seconds before the kill.") var before = 5.0
    @Option(help: "Seconds after the restart.") var after = 5.0
    @Option(help: "Results are added to this JSON file.") var json: String?

    /// A child process and the lines it prints.
    final class Child: @unchecked Sendable {
        let process = Process()
        /// The lines read so far, and the start of the next one.
        final class Lines: Sendable {
            let state = Mutex<(lines: [String], partial: Data)>(([], Data()))
        }
        private let lines = Lines()
        private let pipe = Pipe()

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            process.arguments = arguments
            process.standardOutput = pipe
            pipe.fileHandleForReading.readabilityHandler = { [lines] handle in
                let data = handle.availableData
                lines.state.withLock { state in
                    state.partial.append(data)
                    while let newline = state.partial.firstIndex(of: 10) {
                        state.lines.append(String(decoding: state.partial[state.partial.startIndex..<newline], as: UTF8.self))
                        state.partial.removeSubrange(state.partial.startIndex...newline)
                    }
                }
            }
            try process.run()
        }

        var output: [String] { lines.state.withLock { $0.lines } }

        /// (time, cumulative count) from the ticks so far.
        var ticks: [(UInt64, Int)] {
            output.compactMap { line in
                let parts = line.split(separator: " ")
                guard parts.count == 3, parts[0] == "tick", let time = UInt64(parts[1]), let count = Int(parts[2]) else { return nil }
                return (time, count)
            }
        }

        var firstCommit: UInt64? {
            output.lazy.compactMap { line -> UInt64? in
                let parts = line.split(separator: " ")
                return parts.count == 2 && parts[0] == "first" ? UInt64(parts[1]) : nil
            }.first
        }

        func kill() {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    func run() throws {
        guard accounts % 100_000 == 0, accounts > 0 else { throw ValidationError("--accounts must be a multiple of 100,000") }
        let scale = accounts / 100_000
        var results: [RecoveryResult] = []
        if let json, let data = FileManager.default.contents(atPath: json) { results = (try? JSONDecoder().decode([RecoveryResult].self, from: data)) ?? [] }
        print("| store | accounts | tx/s before | first commit after the kill | 90% of the throughput after | invariant |")
        print("|---|---|---|---|---|---|")
        for kind in stores.values where kind.runsBank {
            let directory = scratchDirectory(for: kind, "recovery-\(kind.rawValue)")
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let common = ["bank-child", "--store", kind.rawValue, "--directory", directory, "--scale", String(scale)]
            FileHandle.standardError.write(Data("\(kind.rawValue): creating a bank of \(accounts) accounts...\n".utf8))
            let creator = try Child(common + ["--create-only"])
            creator.process.waitUntilExit()

            let first = try Child(common)
            Thread.sleep(forTimeInterval: before)
            let killedAt = monotonicNanoseconds()
            first.kill()
            let second = try Child(common)
            Thread.sleep(forTimeInterval: after)
            second.kill()

            // Throughput in 100 ms windows, relative to the kill.
            func windows(_ ticks: [(UInt64, Int)]) -> [[Double]] {
                var result: [[Double]] = []
                var index = 0
                while index < ticks.count {
                    var end = index
                    while end + 1 < ticks.count && ticks[end + 1].0 - ticks[index].0 <= 100_000_000 { end += 1 }
                    if end == index { index += 1; continue }
                    let seconds = Double(ticks[end].0 - ticks[index].0) / 1e9
                    result.append([Double(Int64(ticks[end].0) - Int64(killedAt)) / 1e9, Double(ticks[end].1 - ticks[index].1) / seconds])
                    index = end
                }
                return result
            }
            let beforeSamples = windows(first.ticks)
            let afterSamples = windows(second.ticks)
            // The throughput before: the median window of the last 2 seconds before the kill.
            let steady = beforeSamples.filter { $0[0] > -2 }.map { $0[1] }.sorted()
            let throughputBefore = steady.isEmpty ? 0 : steady[steady.count / 2]
            let firstCommit = second.firstCommit.map { Double(Int64($0) - Int64(killedAt)) / 1e9 } ?? .infinity
            let ninety = afterSamples.first { $0[1] >= 0.9 * throughputBefore }?[0]
            let checker = try Child(common + ["--check"])
            checker.process.waitUntilExit()
            let holds = checker.process.terminationStatus == 0
            let result = RecoveryResult(store: kind.rawValue, accounts: accounts, throughputBefore: throughputBefore, firstCommitSeconds: firstCommit,
                                        ninetyPercentSeconds: ninety, samples: beforeSamples + afterSamples, invariantHolds: holds)
            results.removeAll { $0.store == result.store && $0.accounts == result.accounts }
            results.append(result)
            print("| \(kind.rawValue) | \(accounts) | \(Int(throughputBefore)) | \(String(format: "%.3f", firstCommit)) s | \(ninety.map { String(format: "%.2f s", $0) } ?? "not reached") | \(holds ? "holds" : "BROKEN") |")
            if let json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(results).write(to: URL(fileURLWithPath: json))
            }
        }
    }
}
