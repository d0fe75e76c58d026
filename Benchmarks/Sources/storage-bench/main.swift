// storage-bench: Ferrite's storage mode (write-ahead log + fdatasync + group commit) against
// SQLite (WAL, synchronous=FULL) and LMDB (default, durable), in the same run, on the disk of the
// working directory (never tmpfs: a sync there costs nothing).
//
//   swift run -c release --package-path Benchmarks storage-bench update   [--rounds R] [--updates N]
//   swift run -c release --package-path Benchmarks storage-bench threads  [--rounds R] [--threads T] [--seconds S] [--peers]
//   swift run -c release --package-path Benchmarks storage-bench recovery [--rounds R]
//   swift run -c release --package-path Benchmarks storage-bench all
import BenchmarkSupport
import FerriteHeap
import Foundation
import StorageWorkloads
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A record: an 8-byte key and a 96-byte value, as the peers' 100-byte values.
final class Record: PersistentObject {
    static let persistentTypeName = "StorageBench.Record"
    static let persistentSize = 104
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
}

/// A table of references to the records.
final class Records: PersistentObject {
    static let persistentTypeName = "StorageBench.Records"
    static let persistentSize = 8
    static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] { (0..<handle[Int.self, at: 0]).map { 8 + 8 * $0 } }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
}

let recordCount = option("--records", 1_000)

/// A directory on the disk of the working directory, removed at exit. Made on first use (a
/// static is lazy; a top-level global is not), so the recovery child, which is killed, makes none.
enum Scratch {
    static let directory: String = {
    let path = FileManager.default.currentDirectoryPath + "/.ferrite-bench-storage-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    if path.hasPrefix("/dev/shm") || path.hasPrefix("/run") {
        print("warning: \(path) is on tmpfs: syncs cost nothing there; run from a directory on a disk")
    }
    atexit { try? FileManager.default.removeItem(atPath: FileManager.default.currentDirectoryPath + "/.ferrite-bench-storage-\(getpid())") }
    return path
    }()
}
nonisolated var diskDirectory: String { Scratch.directory }

func storageOptions(sync: StorageSync = .full) -> HeapOptions {
    var options = HeapOptions()
    options.durability = .storage
    options.storageSync = sync
    options.initialSize = 64 << 20
    return options
}

/// A fresh storage pool holding `recordCount` records; returns the heap and the records' references.
func makePool(_ name: String, sync: StorageSync = .full) throws -> (Heap, [UInt64]) {
    let path = diskDirectory + "/" + name
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.removeItem(atPath: Heap.logPath(forPool: path))
    let heap = try Heap(path: path, options: storageOptions(sync: sync))
    try heap.register(Record.self)
    try heap.register(Records.self)
    let references = try heap.transaction { () -> [UInt64] in
        let table = try heap.allocate(Records.self, size: 8 + 8 * recordCount)
        table.handle[Int.self, at: 0] = recordCount
        var references: [UInt64] = []
        for i in 0..<recordCount {
            let record = try heap.allocate(Record.self)
            record.handle[Int.self, at: 0] = i
            table.handle[UInt64.self, at: 8 + 8 * i] = record.reference
            references.append(record.reference)
        }
        try heap.setRoot("records", to: table)
        return references
    }
    return (heap, references)
}

func removePool(_ heap: Heap) {
    let path = heap.path
    heap.close()
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.removeItem(atPath: Heap.logPath(forPool: path))
}

/// One durable single-record update: the record's 96-byte value, in a transaction of its own.
@inline(__always)
func update(_ record: Record, heap: Heap, value: Int) throws {
    try heap.transaction {
        for word in 1..<13 { record.handle[Int.self, at: 8 * word] = value &+ word }
    }
}

struct XorShift {
    var state: UInt64
    mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
}

// MARK: update

func ferriteUpdateNanoseconds(updates: Int) throws -> Double {
    let (heap, references) = try makePool("update.pool")
    defer { removePool(heap) }
    let records = try references.map { try heap.object(at: $0, as: Record.self) }
    var rng = XorShift(state: 0x9E37_79B9_7F4A_7C15)
    for i in 0..<200 { try update(records[Int(rng.next() % UInt64(recordCount))], heap: heap, value: i) }  // warm up
    let before = heap.storageStatistics!
    let start = DispatchTime.now().uptimeNanoseconds
    for i in 0..<updates { try update(records[Int(rng.next() % UInt64(recordCount))], heap: heap, value: i) }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
    let after = heap.storageStatistics!
    let syncs = Double(after.logSyncs - before.logSyncs) / Double(updates)
    if syncs > 1.05 { print("  note: \(String(format: "%.2f", syncs)) log syncs per update") }
    return elapsed / Double(updates)
}

func runUpdate() throws {
    let rounds = option("--rounds", 5), updates = option("--updates", 2_000)
    print("Durable single-record update (\(recordCount) records, 100-byte values, \(updates) updates x \(rounds) rounds), disk: \(diskDirectory)")
    let floor = storage_fdatasync_ns(diskDirectory, 500)
    print(String(format: "  one 4 KiB pwrite + fdatasync on this disk: %.1f us", floor / 1000))
    var ferrite: [Double] = [], sqlite: [Double] = [], lmdb: [Double] = []
    for round in 1...rounds {
        ferrite.append(try ferriteUpdateNanoseconds(updates: updates))
        sqlite.append(sqlite_update_ns(diskDirectory, Int32(recordCount), 100, Int32(updates), 1))
        lmdb.append(lmdb_update_ns(diskDirectory, Int32(recordCount), 100, Int32(updates), 0))
        print(String(format: "  round %d: Ferrite %.1f us, SQLite %.1f us, LMDB %.1f us", round, ferrite.last! / 1000, sqlite.last! / 1000, lmdb.last! / 1000))
    }
    let f = median(ferrite), s = median(sqlite), l = median(lmdb)
    print("| store | us per durable update (median) | Ferrite speed-up |")
    print("| --- | --- | --- |")
    print(String(format: "| Ferrite storage mode (full sync) | %.1f | |", f / 1000))
    print(String(format: "| SQLite WAL, synchronous=FULL | %.1f | %.2fx |", s / 1000, s / f))
    print(String(format: "| LMDB default (durable) | %.1f | %.2fx |", l / 1000, l / f))
}

// MARK: threads

/// Commits per second with `threads` threads each updating its own records for `seconds`.
func ferriteThroughput(heap: Heap, records: [Record], threads: Int, seconds: Double) throws -> (rate: Double, recordsPerSync: Double) {
    // Each phase starts from an empty log, so that one phase's checkpoint never runs in the next.
    try heap.checkpoint()
    let before = heap.storageStatistics!
    /// What the threads share: the records, a stop flag and their counts.
    final class Shared: @unchecked Sendable {
        let records: [Record]
        let stop = Atomic<Bool>(false)
        let counts: UnsafeMutablePointer<Int>
        init(records: [Record], threads: Int) {
            self.records = records
            counts = .allocate(capacity: threads * 16)  // a cache line apart
            counts.initialize(repeating: 0, count: threads * 16)
        }
        deinit { counts.deallocate() }
    }
    let shared = Shared(records: records, threads: threads)
    let done = DispatchSemaphore(value: 0)
    let perThread = recordCount / threads
    let start = DispatchTime.now().uptimeNanoseconds
    for t in 0..<threads {
        let thread = Thread {
            var rng = XorShift(state: UInt64(t + 1) &* 0x9E37_79B9_7F4A_7C15)
            var n = 0
            while !shared.stop.load(ordering: .relaxed) {
                let record = shared.records[t * perThread + Int(rng.next() % UInt64(perThread))]
                try! update(record, heap: heap, value: n)
                n += 1
            }
            shared.counts[t * 16] = n
            done.signal()
        }
        thread.start()
    }
    Thread.sleep(forTimeInterval: seconds)
    shared.stop.store(true, ordering: .relaxed)
    for _ in 0..<threads { done.wait() }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let total = (0..<threads).reduce(0) { $0 + shared.counts[$1 * 16] }
    let after = heap.storageStatistics!
    let recordsPerSync = Double(after.logRecords - before.logRecords) / Double(max(1, after.logSyncs - before.logSyncs))
    return (Double(total) / elapsed, recordsPerSync)
}

func runThreads() throws {
    let rounds = option("--rounds", 9), threads = option("--threads", 16)
    let seconds = Double(option("--seconds") ?? "1") ?? 1
    print("Durable single-record updates, 1 vs \(threads) threads, alternating in \(rounds) rounds of \(seconds) s each on one pool (the disk's speed drifts), disk: \(diskDirectory)")
    let (heap, references) = try makePool("threads.pool")
    defer { removePool(heap) }
    let records = try references.map { try heap.object(at: $0, as: Record.self) }
    var one: [Double] = [], many: [Double] = [], batches: [Double] = []
    for round in 1...rounds {
        one.append(try ferriteThroughput(heap: heap, records: records, threads: 1, seconds: seconds).rate)
        let result = try ferriteThroughput(heap: heap, records: records, threads: threads, seconds: seconds)
        many.append(result.rate)
        batches.append(result.recordsPerSync)
        print(String(format: "  round %d: 1 thread %.0f commits/s, %d threads %.0f commits/s (%.2fx), %.1f log records per sync",
                     round, one.last!, threads, many.last!, many.last! / one.last!, result.recordsPerSync))
    }
    let ratios = zip(many, one).map { $0 / $1 }
    print(String(format: "Ferrite: 1 thread %.0f commits/s, %d threads %.0f commits/s (medians): %.2fx; median of the rounds' ratios %.2fx; %.1f records per sync",
                 median(one), threads, median(many), median(many) / median(one), median(ratios), median(batches)))
    if arguments.contains("--peers") {
        let sqliteOne = sqlite_update_threads(diskDirectory, Int32(recordCount), 100, 1, seconds)
        let sqliteMany = sqlite_update_threads(diskDirectory, Int32(recordCount), 100, Int32(threads), seconds)
        let lmdbOne = lmdb_update_threads(diskDirectory, Int32(recordCount), 100, 1, seconds)
        let lmdbMany = lmdb_update_threads(diskDirectory, Int32(recordCount), 100, Int32(threads), seconds)
        print(String(format: "SQLite: 1 thread %.0f/s, %d threads %.0f/s; LMDB: 1 thread %.0f/s, %d threads %.0f/s",
                     sqliteOne, threads, sqliteMany, lmdbOne, threads, lmdbMany))
    }
}

// MARK: recovery

/// The child of `recovery`: fills half the log (a checkpoint interval) with single-record commits,
/// says so, and waits to be killed.
func recoveryChild(path: String) throws {
    var options = storageOptions(sync: .normal)  // fast to fill; every record is written before the kill
    options.initialSize = 64 << 20
    let heap = try Heap(path: path, options: options)
    try heap.register(Record.self)
    try heap.register(Records.self)
    let table = try heap.transaction { () -> Records in
        let table = try heap.allocate(Records.self, size: 8 + 8 * recordCount)
        table.handle[Int.self, at: 0] = recordCount
        for i in 0..<recordCount {
            let record = try heap.allocate(Record.self)
            table.handle[UInt64.self, at: 8 + 8 * i] = record.reference
        }
        try heap.setRoot("records", to: table)
        return table
    }
    try heap.checkpoint()
    let records = try (0..<recordCount).map { try heap.object(at: table.handle[UInt64.self, at: 8 + 8 * $0], as: Record.self) }
    var rng = XorShift(state: 77)
    var commits = 0
    // Stop just short of the point where the background checkpoint would start.
    while heap.storageStatistics!.logBytesInUse < heap.storageStatistics!.logCapacity / 2 - (64 << 10) {
        try update(records[Int(rng.next() % UInt64(recordCount))], heap: heap, value: commits)
        commits += 1
    }
    FileHandle.standardOutput.write(Data("ready \(commits) \(heap.storageStatistics!.logBytesInUse)\n".utf8))
    // Keep the heap open (a clean close would checkpoint, leaving nothing to replay).
    withExtendedLifetime(heap) { while true { sleep(1) } }
}

func runRecovery() throws {
    let rounds = option("--rounds", 3)
    print("Recovery after a crash with a full log (half the 64 MiB log: one checkpoint interval), disk: \(diskDirectory)")
    var opens: [Double] = [], firsts: [Double] = []
    for round in 1...rounds {
        let path = diskDirectory + "/recovery.pool"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.removeItem(atPath: Heap.logPath(forPool: path))
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["recovery-child", path]
        let pipe = Pipe()
        child.standardOutput = pipe
        try child.run()
        let line = String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self)
        guard line.hasPrefix("ready") else { print("child failed: \(line)"); exit(1) }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let start = DispatchTime.now().uptimeNanoseconds
        let heap = try Heap(path: path)
        let opened = DispatchTime.now().uptimeNanoseconds
        try heap.register(Record.self)
        try heap.register(Records.self)
        let table = try heap.root("records", as: Records.self)!
        let record = try heap.object(at: table.handle[UInt64.self, at: 8], as: Record.self)
        try update(record, heap: heap, value: 1)
        let first = DispatchTime.now().uptimeNanoseconds
        let report = heap.recovery
        guard report.replayedLogRecords > 1_000 else { print("nothing was replayed: the child's log was checkpointed"); exit(1) }
        opens.append(Double(opened - start) / 1e6)
        firsts.append(Double(first - start) / 1e6)
        let parts = line.split(separator: " ")
        print(String(format: "  round %d: %@ commits (%@ bytes of log) replayed as %d records: open %.1f ms, first committed transaction after %.1f ms",
                     round, String(parts[1]), String(parts[2]).trimmingCharacters(in: .whitespacesAndNewlines), report.replayedLogRecords, opens.last!, firsts.last!))
        removePool(heap)
    }
    print(String(format: "Recovery: open + replay %.1f ms, first committed transaction %.1f ms (medians of %d)", median(opens), median(firsts), rounds))
}

// MARK: Main

do {
    switch arguments.first ?? "all" {
    case "update": try runUpdate()
    case "threads": try runThreads()
    case "recovery": try runRecovery()
    case "recovery-child": try recoveryChild(path: arguments[1])
    case "all":
        try runUpdate()
        try runThreads()
        try runRecovery()
    default:
        print("usage: storage-bench [update|threads|recovery|all] [--rounds R] [--records N] [--updates N] [--threads T] [--seconds S] [--peers]")
        exit(2)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
