// heap-bench: Ferrite's persistent heap against PMDK's libpmemobj, in the same run, memory mode
// on /dev/shm (PMDK with PMEM_IS_PMEM_FORCE=1, Ferrite with clwb + sfence).
//
//   swift run -c release --package-path Benchmarks heap-bench ops [--rounds R]
//   swift run -c release --package-path Benchmarks heap-bench reopen [--objects N]
import BenchmarkSupport
import FerriteHeap
import FerriteMedium
import Foundation
import PMDKWorkloads

// MARK: Objects

/// Four 8-byte fields plus padding: 48 bytes of fields, a 64-byte block (PMDK's is the same size).
final class Record: PersistentObject {
    static let persistentTypeName = "Bench.Record"
    static let persistentSize = 48
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    var a: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    var b: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
    var c: Int { get { handle[Int.self, at: 16] } set { handle[Int.self, at: 16] = newValue } }
    var d: Int { get { handle[Int.self, at: 24] } set { handle[Int.self, at: 24] = newValue } }
}

/// One 8-byte field: the smallest object (a 32-byte block).
final class Tiny: PersistentObject {
    static let persistentTypeName = "Bench.Tiny"
    static let persistentSize = 8
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    var value: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
}

/// A table of references, as large as needed.
final class Slots: PersistentObject {
    static let persistentTypeName = "Bench.Slots"
    static let persistentSize = 8
    static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] { (0..<handle[Int.self, at: 0]).map { 8 + 8 * $0 } }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    var count: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    subscript(index: Int) -> UInt64 {
        get { handle[UInt64.self, at: 8 + 8 * index] }
        set { handle[UInt64.self, at: 8 + 8 * index] = newValue }
    }
}

/// The volatile baseline for reads: a plain Swift class with a stored property.
final class PlainRecord {
    var a: Int
    var b = 0, c = 0, d = 0
    init(a: Int) { self.a = a }
}

// MARK: Helpers

/// Counts the flushes (lines) and fences of the real medium it wraps.
final class CountingMedium: PersistenceMedium, @unchecked Sendable {
    let inner = CPUCacheMedium()
    var lines = 0, fences = 0, flushCalls = 0
    func flush(_ address: UnsafeRawPointer, count: Int) {
        flushCalls += 1
        lines += (Int(bitPattern: address) + count + 63) / 64 - Int(bitPattern: address) / 64
        inner.flush(address, count: count)
    }
    func fence() { fences += 1; inner.fence() }
    var description: String { "counting " + inner.description }
}

/// A medium that does nothing: measures Ferrite's software overhead without persist costs.
final class NullMedium: PersistenceMedium {
    func flush(_ address: UnsafeRawPointer, count: Int) {}
    func fence() {}
    var description: String { "no-op medium (not durable: overhead only)" }
}

func nanoseconds() -> UInt64 { bench_now_ns() }
func fmt(_ value: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", value) }
@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }
/// Returns its argument through a call the optimizer cannot see into, so a loop that reads the
/// objects' fields must read them again on every pass.
@inline(never) func opaque<T>(_ value: T) -> T { value }
/// Objects reachable from a global: the clock call between the timestamps could touch them, so
/// the optimizer cannot move their loads out of the timed region.
nonisolated(unsafe) var escapedRecords: [PlainRecord] = []
nonisolated(unsafe) var escapedProxies: [Record] = []
nonisolated(unsafe) var readSink = 0

let command = arguments.first ?? "ops"

// MARK: Operations against PMDK

func runOps() throws {
    let rounds = option("--rounds", 7)
    let updates = option("--updates", 200_000)
    let objects = option("--objects", 100_000)
    let directory = scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var options = HeapOptions()
    options.initialSize = 64 << 20
    let heap = try Heap(path: directory + "/ferrite.pool", options: options,
                        medium: arguments.contains("--null-medium") ? NullMedium() : nil)
    guard let pmdk = pmdk_create(directory + "/pmdk.pool", 1 << 30, UInt64(objects)) else { exit(1) }
    defer { pmdk_close(pmdk) }
    let (record, slots) = try heap.transaction { () -> (Record, Slots) in
        let record = try heap.allocate(Record.self)
        let slots = try heap.allocate(Slots.self, size: 8 + 8 * objects)
        slots.count = objects
        try heap.setRoot("record", to: record)
        try heap.setRoot("slots", to: slots)
        return (record, slots)
    }
    print("Ferrite heap vs PMDK libpmemobj 1.12, memory mode on /dev/shm; medium: \(heap.medium); \(rounds) rounds, medians")
    var results: [String: (ferrite: [Double], pmdk: [Double])] = [:]
    func note(_ name: String, ferrite: Double, pmdk: Double) {
        results[name, default: ([], [])].ferrite.append(ferrite)
        results[name, default: ([], [])].pmdk.append(pmdk)
    }
    var plainReads: [Double] = []
    var checksum = 0
    for round in 0..<rounds {
        // 1-field update transaction.
        var start = nanoseconds()
        for i in 0..<updates { try heap.transaction { record.a = i } }
        let f1 = Double(nanoseconds() - start) / Double(updates)
        note("1-field update transaction", ferrite: f1, pmdk: Double(pmdk_update1(pmdk, UInt64(updates))) / Double(updates))
        // 4-field update transaction.
        start = nanoseconds()
        for i in 0..<updates { try heap.transaction { record.a = i; record.b = i; record.c = i; record.d = i } }
        let f4 = Double(nanoseconds() - start) / Double(updates)
        note("4-field update transaction", ferrite: f4, pmdk: Double(pmdk_update4(pmdk, UInt64(updates))) / Double(updates))
        // Allocate-and-link transaction.
        start = nanoseconds()
        for i in 0..<objects {
            try heap.transaction {
                let object = try heap.allocate(Record.self)
                object.a = i
                slots[i] = object.reference
            }
        }
        let fa = Double(nanoseconds() - start) / Double(objects)
        note("allocate-and-link transaction", ferrite: fa, pmdk: Double(pmdk_alloc_link(pmdk, UInt64(objects))) / Double(objects))
        // Field read outside a transaction, over all the linked objects.
        let proxies = try (0..<objects).map { try heap.object(at: slots[$0], as: Record.self) }
        let plain = (0..<objects).map { PlainRecord(a: $0) }
        let passes = 20
        escapedRecords = plain
        escapedProxies = proxies
        start = nanoseconds()
        var sum = 0
        for _ in 0..<passes {
            for proxy in escapedProxies { sum &+= proxy.a }
            readSink &+= sum
            _ = bench_now_ns()  // opaque: passes cannot be merged
        }
        let fr = Double(nanoseconds() - start) / Double(objects * passes)
        var pmdkSum: UInt64 = 0
        let pr = Double(pmdk_read(pmdk, UInt64(objects), Int32(passes), &pmdkSum)) / Double(objects * passes)
        start = nanoseconds()
        for _ in 0..<passes {
            for object in escapedRecords { sum &+= object.a }
            readSink &+= sum
            _ = bench_now_ns()
        }
        plainReads.append(Double(nanoseconds() - start) / Double(objects * passes))
        checksum &+= sum &+ Int(truncatingIfNeeded: pmdkSum)
        note("field read outside a transaction", ferrite: fr, pmdk: pr)
        blackHole(plain)
        // Free-and-unlink transaction.
        start = nanoseconds()
        for i in 0..<objects {
            try heap.transaction {
                try heap.free(heap.handle(at: slots[i]))
                slots[i] = 0
            }
        }
        let ff = Double(nanoseconds() - start) / Double(objects)
        note("free-and-unlink transaction", ferrite: ff, pmdk: Double(pmdk_free_unlink(pmdk, UInt64(objects))) / Double(objects))
        FileHandle.standardError.write("round \(round + 1)/\(rounds) done\n".data(using: .utf8)!)
    }
    blackHole(checksum)

    print("")
    print("| operation | Ferrite (us) | PMDK (us) | Ferrite speed-up | target |")
    print("| --- | --- | --- | --- | --- |")
    for name in ["1-field update transaction", "4-field update transaction", "allocate-and-link transaction", "free-and-unlink transaction"] {
        let f = median(results[name]!.ferrite) / 1000, p = median(results[name]!.pmdk) / 1000
        print("| \(name) | \(fmt(f)) | \(fmt(p)) | \(fmt(p / f, 2))x | ≥ 1.5x |")
    }
    let fr = median(results["field read outside a transaction"]!.ferrite), pr = median(results["field read outside a transaction"]!.pmdk)
    let sr = median(plainReads)
    print("| field read outside a transaction (ns) | \(fmt(fr, 2)) | \(fmt(pr, 2)) | \(fmt(pr / fr, 2))x | within 1.5x of a Swift class: \(fmt(fr / sr, 2))x (class: \(fmt(sr, 2)) ns) |")

    // Reads with a working set that fits in cache: 1,024 objects read many times.
    do {
        let hot = 1024
        let objectsHot = try heap.transaction { try (0..<hot).map { i -> Record in let r = try heap.allocate(Record.self); r.a = i; return r } }
        escapedProxies = objectsHot
        escapedRecords = (0..<hot).map { PlainRecord(a: $0) }
        var proxyTimes: [Double] = [], plainTimes: [Double] = []
        for _ in 0..<rounds {
            var sum = 0
            var start = nanoseconds()
            for _ in 0..<2000 { for proxy in escapedProxies { sum &+= proxy.a }; readSink &+= sum; _ = bench_now_ns() }
            proxyTimes.append(Double(nanoseconds() - start) / Double(hot * 2000))
            start = nanoseconds()
            for _ in 0..<2000 { for object in escapedRecords { sum &+= object.a }; readSink &+= sum; _ = bench_now_ns() }
            plainTimes.append(Double(nanoseconds() - start) / Double(hot * 2000))
        }
        let p = median(proxyTimes), c = median(plainTimes)
        print("| field read, 1,024 objects in cache (ns) | \(fmt(p, 2)) | | | Swift class \(fmt(c, 2)) ns: \(fmt(p / c, 2))x (target ≤ 1.5x) |")
    }

    // Two threads on disjoint data against one.
    let perThread = updates
    let records = try heap.transaction { try (0..<2).map { _ in try heap.allocate(Record.self).reference } }
    var single: [Double] = [], double: [Double] = []
    for _ in 0..<rounds {
        let one = try heap.object(at: records[0], as: Record.self)
        var start = nanoseconds()
        for i in 0..<perThread { try heap.transaction { one.a = i } }
        single.append(Double(perThread) / (Double(nanoseconds() - start) / 1e9))
        start = nanoseconds()
        runOnThreads(2) { t in
            let mine = try! heap.object(at: records[t], as: Record.self)
            for i in 0..<perThread { try! heap.transaction { mine.a = i } }
        }
        double.append(Double(2 * perThread) / (Double(nanoseconds() - start) / 1e9))
    }
    print("")
    print("1-field update transactions, disjoint objects: 1 thread \(Int(median(single))) tx/s, 2 threads \(Int(median(double))) tx/s: \(fmt(median(double) / median(single), 2))x (target ≥ 1.7x)")
}

// MARK: Reopen

func runReopen() throws {
    let objects = option("--objects", 10_000_000)
    let directory = scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/reopen.pool"
    do {
        var options = HeapOptions()
        options.initialSize = 64 << 20
        options.logSlotSize = 1 << 20
        let heap = try Heap(path: path, options: options)
        let start = nanoseconds()
        let slots = try heap.transaction { () -> Slots in
            let slots = try heap.allocate(Slots.self, size: 8 + 8 * objects)
            slots.count = objects
            try heap.setRoot("slots", to: slots)
            return slots
        }
        let batch = 10_000
        for first in stride(from: 0, to: objects, by: batch) {
            try heap.transaction {
                for i in first..<min(objects, first + batch) {
                    let tiny = try heap.allocate(Tiny.self)
                    tiny.value = i
                    slots[i] = tiny.reference
                }
            }
        }
        print("created \(objects) objects in \(fmt(Double(nanoseconds() - start) / 1e9, 1)) s; pool \(heap.size.current >> 20) MiB")
        heap.close()
    }
    func timedOpen() throws -> (Double, Double, Heap.RecoveryReport) {
        let start = nanoseconds()
        let heap = try Heap(path: path)
        let slots = try heap.root("slots", as: Slots.self)!
        let value = try heap.object(at: slots[objects / 2], as: Tiny.self).value
        let total = Double(nanoseconds() - start) / 1e6
        precondition(value == objects / 2 || value > 0)
        let report = heap.recovery
        heap.close()
        return (report.openSeconds * 1000, total, report)
    }
    var clean: [Double] = [], cleanFirst: [Double] = []
    for _ in 0..<5 { let (open, first, _) = try timedOpen(); clean.append(open); cleanFirst.append(first) }
    print("reopen after a clean close: open \(fmt(median(clean), 2)) ms, open + first lookup \(fmt(median(cleanFirst), 2)) ms (median of 5; target < 50 ms)")

    var crashed: [Double] = [], crashedFirst: [Double] = [], recovered = 0
    for _ in 0..<5 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["reopen-child", path, String(objects)]
        let pipe = Pipe()
        child.standardOutput = pipe
        try child.run()
        _ = pipe.fileHandleForReading.availableData  // the child says it is running
        usleep(200_000)
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        let (open, first, report) = try timedOpen()
        crashed.append(open); crashedFirst.append(first); recovered += report.discardedTransactions + report.replayedTransactions
    }
    print("reopen after SIGKILL mid-transaction: open \(fmt(median(crashed), 2)) ms, open + first lookup \(fmt(median(crashedFirst), 2)) ms (median of 5; \(recovered) transactions discarded or replayed; target < 50 ms)")
    let heap = try Heap(path: path)
    try heap.register(Slots.self); try heap.register(Tiny.self)
    let start = nanoseconds()
    let report = heap.verify()
    print("verifier after the crashes: \(report.isValid ? "valid" : "INVALID \(report.problems)"), \(report.liveBlocks) live blocks, \(report.unreachableBlocks.count) unreachable (\(fmt(Double(nanoseconds() - start) / 1e9, 1)) s)")
    heap.close()
}

/// The child of the crash reopen: replaces random objects in large transactions until killed.
func runReopenChild() throws {
    let path = arguments[1]
    let objects = Int(arguments[2])!
    let heap = try Heap(path: path)
    let slots = try heap.root("slots", as: Slots.self)!
    FileHandle.standardOutput.write("running\n".data(using: .utf8)!)
    var rng = SystemRandomNumberGenerator()
    while true {
        try heap.transaction {
            for _ in 0..<256 {
                let i = Int.random(in: 0..<objects, using: &rng)
                try heap.free(heap.handle(at: slots[i]))
                let tiny = try heap.allocate(Tiny.self)
                tiny.value = i
                slots[i] = tiny.reference
            }
        }
    }
}

/// Counts the persist work of each transaction kind (fences, flush calls, lines written back).
func runCount() throws {
    let medium = CountingMedium()
    let directory = scratchDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let heap = try Heap(path: directory + "/count.pool", medium: medium)
    let (record, slots) = try heap.transaction { (try heap.allocate(Record.self), try heap.allocate(Slots.self, size: 8 + 8 * 1000)) }
    slots.count = 1000
    func measure(_ name: String, _ n: Int, _ body: (Int) throws -> Void) rethrows {
        medium.lines = 0; medium.fences = 0; medium.flushCalls = 0
        for i in 0..<n { try body(i) }
        print("\(name): \(Double(medium.fences) / Double(n)) fences, \(Double(medium.flushCalls) / Double(n)) flush calls, \(Double(medium.lines) / Double(n)) lines per transaction")
    }
    try measure("1-field update", 1000) { i in try heap.transaction { record.a = i } }
    try measure("4-field update", 1000) { i in try heap.transaction { record.a = i; record.b = i; record.c = i; record.d = i } }
    try measure("allocate-and-link", 1000) { i in try heap.transaction { let o = try heap.allocate(Record.self); slots[i] = o.reference } }
    try measure("free-and-unlink", 1000) { i in try heap.transaction { try heap.free(heap.handle(at: slots[i])); slots[i] = 0 } }
}

do {
    switch command {
    case "ops": try runOps()
    case "reopen": try runReopen()
    case "reopen-child": try runReopenChild()
    case "count": try runCount()
    case "hardware":
        // How the platform's own persist path scales from one thread to two (no Ferrite involved).
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var one: [Double] = [], two: [Double] = []
        for _ in 0..<option("--rounds", 5) {
            one.append(raw_persist_rate(directory + "/raw", 1, 1_000_000))
            two.append(raw_persist_rate(directory + "/raw", 2, 1_000_000))
        }
        print("raw store + clwb (2 lines) + sfence on /dev/shm: 1 thread \(Int(median(one)))/s, 2 threads \(Int(median(two)))/s: \(fmt(median(two) / median(one), 2))x")
    case "profile2":
        // Two threads on disjoint records, for profilers.
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let heap = try Heap(path: directory + "/profile.pool", medium: arguments.contains("--null-medium") ? NullMedium() : nil)
        let records = try heap.transaction { try (0..<2).map { _ in try heap.allocate(Record.self).reference } }
        let n = option("--updates", 1_000_000)
        let start = nanoseconds()
        runOnThreads(2) { t in
            let mine = try! heap.object(at: records[t], as: Record.self)
            for i in 0..<n { try! heap.transaction { mine.a = i } }
        }
        print("\(fmt(Double(2 * n) / (Double(nanoseconds() - start) / 1e9), 0)) tx/s with two threads")
    case "profile":
        // A Ferrite-only loop for profilers: 1-field update transactions.
        let directory = scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let heap = try Heap(path: directory + "/profile.pool", medium: arguments.contains("--null-medium") ? NullMedium() : nil)
        let record = try heap.transaction { try heap.allocate(Record.self) }
        let n = option("--updates", 2_000_000)
        let start = nanoseconds()
        for i in 0..<n { try heap.transaction { record.a = i } }
        print("\(fmt(Double(nanoseconds() - start) / Double(n), 1)) ns per 1-field update transaction")
    case "all": try runOps(); print(""); try runReopen()
    default:
        print("usage: heap-bench [ops|reopen|count|hardware|all] [--rounds R] [--updates N] [--objects N]")
        exit(2)
    }
} catch {
    print("heap-bench: \(error)")
    exit(1)
}
