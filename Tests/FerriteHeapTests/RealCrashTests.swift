import Foundation
import Testing
@testable import FerriteHeap
#if canImport(Glibc)
import Glibc
#endif

/// Real process crashes: a child process runs randomized transactions on a pool file and reports
/// each commit; it is SIGKILLed at a random moment, and the parent reopens the pool and checks
/// that every reported commit is there, nothing uncommitted is, and the verifier passes.
@Suite struct RealCrashTests {
    static var workerPath: String {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return directory.appendingPathComponent("FerriteCrashWorker").path
    }

    /// Starts the worker; returns the process and a reader of its output lines.
    static func startWorker(pool: String, seed: UInt64, mode: String? = nil) throws -> (Process, FileHandle) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: workerPath)
        process.arguments = [pool, String(seed)] + (mode.map { [$0] } ?? [])
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        return (process, pipe.fileHandleForReading)
    }

    /// Reads lines until one starts with `prefix` (or EOF).
    static func readLine(_ handle: FileHandle, buffer: inout Data) -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    @Test func killedWorkersLoseNoCommittedTransactionAndLeaveAValidHeap() throws {
        let iterations = Int(ProcessInfo.processInfo.environment["FERRITE_CRASH_ITERATIONS"] ?? "") ?? 200
        let dir = TemporaryDirectory()
        try Self.killWorkers(pool: dir.file("crash.pool"), mode: nil, iterations: iterations, seed: 2026)
    }

    /// Storage mode, with the pool and its log on the real disk: a killed process loses no
    /// acknowledged commit in either sync mode (both write the log before a commit returns).
    @Test(arguments: ["storage", "storage-normal"])
    func killedStorageWorkersLoseNoCommittedTransaction(mode: String) throws {
        let iterations = Int(ProcessInfo.processInfo.environment["FERRITE_CRASH_ITERATIONS"] ?? "").map { $0 / 2 } ?? 60
        let dir = TemporaryDirectory(onDisk: true)
        try Self.killWorkers(pool: dir.file("crash.pool"), mode: mode, iterations: iterations, seed: mode == "storage" ? 7 : 8)
    }

    static func killWorkers(pool: String, mode: String?, iterations: Int, seed: UInt64) throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.workerPath), "worker not built at \(Self.workerPath)")
        var rng = SeededGenerator(seed: seed)
        var totalCommits = 0
        var rolledBack = 0
        var replayedRecords = 0
        for iteration in 0..<iterations {
            let (process, output) = try Self.startWorker(pool: pool, seed: UInt64(iteration) &* 7 &+ seed, mode: mode)
            var buffer = Data()
            guard let start = Self.readLine(output, buffer: &buffer), start.hasPrefix("start ") else {
                process.waitUntilExit()
                Issue.record("iteration \(iteration): worker did not start")
                return
            }
            if iteration == 0 {
                // While the worker runs, the pool is locked against a second opener.
                #expect(throws: HeapError.poolLocked(path: pool)) { _ = try Heap(path: pool) }
            }
            usleep(UInt32.random(in: 2_000...40_000, using: &rng))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            // Drain everything the worker reported before it died.
            var committed = TableModel(line: start.dropFirst(6))!
            var pending: TableModel? = nil
            while let line = Self.readLine(output, buffer: &buffer) {
                if line.hasPrefix("pending ") { pending = TableModel(line: line.dropFirst(8)) }
                if line.hasPrefix("commit ") { committed = TableModel(line: line.dropFirst(7))!; pending = nil; totalCommits += 1 }
                if line.hasPrefix("error ") { Issue.record("worker: \(line)") }
            }
            let heap = try Heap(path: pool)
            #expect(heap.durability == (mode == nil ? .memory : .storage))
            rolledBack += heap.recovery.discardedTransactions
            replayedRecords += heap.recovery.replayedLogRecords
            try heap.register(Cell.self)
            try heap.register(Table.self)
            let table = try #require(try heap.root("t0", as: Table.self))
            let found = try TableModel(reading: table)
            let acceptable = found == committed || (pending.map { found == $0 } ?? false)
            #expect(acceptable, "iteration \(iteration): found \(found), committed \(committed), pending \(String(describing: pending))")
            let report = heap.verify()
            #expect(report.isValid, "iteration \(iteration): \(report)")
            heap.close()
            if !acceptable || !report.isValid { return }
        }
        print("real crashes (\(mode ?? "memory")): \(iterations) kills, \(totalCommits) reported commits, \(rolledBack) unfinished transactions discarded, \(replayedRecords) log records replayed")
        #expect(totalCommits > iterations)
    }
}
