import BenchmarkSupport
import Foundation
import Histogram
import Synchronization

/// The six core workloads (workloads.md).
enum Workload: String, CaseIterable, Codable, Sendable {
    case a, b, c, d, e, f

    enum Operation: String, CaseIterable, Codable, Sendable { case read, update, insert, scan, readModifyWrite = "read-modify-write" }
    enum Distribution: String, Codable, Sendable { case zipfian, latest }

    var mix: [(Operation, Double)] {
        switch self {
        case .a: [(.read, 0.5), (.update, 0.5)]
        case .b: [(.read, 0.95), (.update, 0.05)]
        case .c: [(.read, 1)]
        case .d: [(.read, 0.95), (.insert, 0.05)]
        case .e: [(.scan, 0.95), (.insert, 0.05)]
        case .f: [(.read, 0.5), (.readModifyWrite, 0.5)]
        }
    }
    var distribution: Distribution { self == .d ? .latest : .zipfian }
    var title: String {
        switch self {
        case .a: "A: update heavy"
        case .b: "B: read mostly"
        case .c: "C: read only"
        case .d: "D: read latest"
        case .e: "E: short ranges"
        case .f: "F: read-modify-write"
        }
    }
}

/// Latency percentiles of one operation type, in microseconds.
struct Latency: Codable, Sendable {
    var count: Int
    var p50: Double
    var p99: Double
    var p999: Double
}

/// One store's result for one workload and thread count.
struct YCSBResult: Codable, Sendable {
    var store: String
    var workload: String
    var threads: Int
    var records: Int
    var operations: Int
    var loadSeconds: Double
    var loadPerSecond: Double
    var runSeconds: Double
    var throughput: Double
    var latency: [String: Latency]
    var storedBytes: Int
    var rawBytes: Int
    var peakMemoryBytes: Int
}

/// A progress bar on standard error.
final class Progress: @unchecked Sendable {
    let title: String
    let total: Int
    private let done = Atomic(0)
    private var lastDrawn = 0.0

    init(_ title: String, total: Int) {
        self.title = title
        self.total = total
    }

    func advance(_ count: Int = 1) {
        let now = done.add(count, ordering: .relaxed).newValue
        if now == total || now % 4096 < count { draw(now) }
    }

    private func draw(_ now: Int) {
        let fraction = Double(now) / Double(max(1, total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(title) [\(bar)] \(Int(fraction * 100))%".utf8))
        if now == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// The peak resident memory of this process so far (VmHWM), in bytes.
func peakMemoryBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
    return kilobytes * 1024
}

/// Resets the peak resident memory to the current one (so each store's peak is its own).
func resetPeakMemory() {
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
}

/// Runs the load phase, then the run phase, of one workload on one store.
struct YCSBRunner {
    let workload: Workload
    let records: Int
    let operations: Int
    let threads: Int
    let loadBatch: Int
    let seed: UInt64

    /// A record's 1,000 bytes, derived from its sequence number (so reads can be checked).
    static func fill(_ buffer: UnsafeMutableRawBufferPointer, sequence: UInt64) {
        var state = sequence &* 0x9E37_79B9_7F4A_7C15 | 1
        for word in 0..<recordBytes / 8 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            buffer.storeBytes(of: state, toByteOffset: word * 8, as: UInt64.self)
        }
    }

    func run(_ store: any YCSBStore, name: String) throws -> YCSBResult {
        // Load: records 0..<records, hashed keys, in transactions of `loadBatch`.
        let loadStart = Date()
        let loadProgress = Progress("\(name) load", total: records)
        let batches = stride(from: 0, to: records, by: loadBatch).map { $0 }
        let nextBatch = Atomic(0)
        let failure = Mutex<(any Error)?>(nil)
        runOnThreads(threads) { _ in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: recordBytes * loadBatch, alignment: 8)
            defer { buffer.deallocate() }
            while failure.withLock({ $0 == nil }) {
                let index = nextBatch.add(1, ordering: .relaxed).oldValue
                guard index < batches.count else { break }
                let start = batches[index], end = min(records, start + loadBatch)
                var keys: [String] = []
                for sequence in start..<end {
                    Self.fill(UnsafeMutableRawBufferPointer(rebasing: buffer[(sequence - start) * recordBytes ..< (sequence - start + 1) * recordBytes]), sequence: UInt64(sequence))
                    keys.append(ycsbKey(UInt64(sequence)))
                }
                do { try store.insertBatch(keys, UnsafeRawBufferPointer(buffer)) } catch { failure.withLock { $0 = error } }
                loadProgress.advance(end - start)
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let loadSeconds = Date().timeIntervalSince(loadStart)

        // Run: `operations` operations shared by the threads, claimed in chunks (a shared counter
        // touched on every operation would cost the fastest stores a cache-line transfer each).
        let insertCounter = Atomic(records)  // the next sequence number to insert
        let issued = Atomic(0)
        let stopped = Atomic(false)
        let chunk = 64
        let runProgress = Progress("\(name) run \(workload.rawValue)", total: operations)
        let histograms = Mutex<[Workload.Operation: Histogram<UInt64>]>([:])
        let scrambled = ScrambledZipfianGenerator(records: UInt64(records))
        let latestTemplate = workload.distribution == .latest ? LatestGenerator(records: UInt64(records)) : nil
        let mix = workload.mix
        let runStart = Date()
        runOnThreads(threads) { thread in
            var rng = SeededRandom(seed: seed &+ UInt64(thread) &* 0x9E37_79B9)
            var latest = latestTemplate
            let operationKinds = Workload.Operation.allCases
            var local = operationKinds.map { _ in Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three) }
            let record = UnsafeMutableRawBufferPointer.allocate(byteCount: recordBytes * 100, alignment: 8)
            defer { record.deallocate() }
            let value = UnsafeMutableRawBufferPointer.allocate(byteCount: fieldBytes, alignment: 8)
            defer { value.deallocate() }
            func existingKey() -> String {
                switch workload.distribution {
                case .latest:
                    let inserted = UInt64(insertCounter.load(ordering: .relaxed))
                    return ycsbKey(latest!.next(newest: inserted - 1, using: &rng))
                case .zipfian: return ycsbKey(scrambled.next(using: &rng))
                }
            }
            claiming: while !stopped.load(ordering: .relaxed) {
                let first = issued.add(chunk, ordering: .relaxed).oldValue
                guard first < operations else { break }
                let claimed = min(chunk, operations - first)
                for _ in 0..<claimed {
                    var pick = Double.random(in: 0..<1, using: &rng)
                    var operation = mix.last!.0
                    for (candidate, share) in mix {
                        if pick < share { operation = candidate; break }
                        pick -= share
                    }
                    if operation == .update || operation == .readModifyWrite {
                        for i in 0..<fieldBytes / 8 { value.storeBytes(of: rng.next(), toByteOffset: i * 8, as: UInt64.self) }
                    }
                    let start = DispatchTime.now().uptimeNanoseconds
                    do {
                        switch operation {
                        case .read:
                            _ = try store.read(existingKey(), into: record)
                        case .update:
                            _ = try store.update(existingKey(), field: Int.random(in: 0..<fieldCount, using: &rng), UnsafeRawBufferPointer(value))
                        case .insert:
                            let sequence = insertCounter.add(1, ordering: .relaxed).oldValue
                            Self.fill(UnsafeMutableRawBufferPointer(rebasing: record[0..<recordBytes]), sequence: UInt64(sequence))
                            try store.insert(ycsbKey(UInt64(sequence)), UnsafeRawBufferPointer(rebasing: record[0..<recordBytes]))
                        case .scan:
                            _ = try store.scan(existingKey(), count: Int.random(in: 1...100, using: &rng), into: record)
                        case .readModifyWrite:
                            let key = existingKey()
                            if try store.read(key, into: record) {
                                _ = try store.update(key, field: Int.random(in: 0..<fieldCount, using: &rng), UnsafeRawBufferPointer(value))
                            }
                        }
                    } catch {
                        failure.withLock { $0 = error }
                        stopped.store(true, ordering: .relaxed)
                        break claiming
                    }
                    let nanoseconds = DispatchTime.now().uptimeNanoseconds - start
                    local[operationKinds.firstIndex(of: operation)!].record(nanoseconds)
                }
                runProgress.advance(claimed)
            }
            histograms.withLock { all in
                for (index, histogram) in local.enumerated() where histogram.totalCount > 0 {
                    let operation = operationKinds[index]
                    if all[operation] == nil { all[operation] = histogram } else { all[operation]!.add(histogram) }
                }
            }
        }
        if let error = failure.withLock({ $0 }) { throw error }
        let runSeconds = Date().timeIntervalSince(runStart)
        let latency = histograms.withLock { all in
            Dictionary(uniqueKeysWithValues: all.map { operation, histogram in
                (operation.rawValue, Latency(count: Int(histogram.totalCount),
                                             p50: Double(histogram.valueAtPercentile(50)) / 1000,
                                             p99: Double(histogram.valueAtPercentile(99)) / 1000,
                                             p999: Double(histogram.valueAtPercentile(99.9)) / 1000))
            })
        }
        let rawBytes = (0..<records).reduce(0) { $0 + ycsbKey(UInt64($1)).utf8.count } + records * recordBytes
        return YCSBResult(store: name, workload: workload.rawValue, threads: threads, records: records, operations: operations,
                          loadSeconds: loadSeconds, loadPerSecond: Double(records) / loadSeconds, runSeconds: runSeconds,
                          throughput: Double(operations) / runSeconds, latency: latency, storedBytes: store.storedBytes,
                          rawBytes: rawBytes, peakMemoryBytes: peakMemoryBytes())
    }
}

/// A small, fast, seeded generator (xorshift64*): each thread its own.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }
}
