// collections-bench: Ferrite's persistent collections against the standard library's volatile
// ones, in the same run, memory mode on /dev/shm (clwb + sfence; every Ferrite insert is its own
// durable transaction).
//
//   swift run -c release --package-path Benchmarks collections-bench dictionary [--entries 1000000,10000000] [--rounds 3]
//   swift run -c release --package-path Benchmarks collections-bench sorted [--entries 1000000,10000000] [--rounds 3]
//   swift run -c release --package-path Benchmarks collections-bench open [--entries 10000000]
//   swift run -c release --package-path Benchmarks collections-bench all
import BenchmarkSupport
import FerriteCollections
import FerriteHeap
import Foundation

// MARK: Helpers

let rounds = option("--rounds", 3)
let directory = memoryDirectory

func nanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}
func fmt(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
/// Times `body` and returns nanoseconds per operation.
func perOperation(_ count: Int, _ body: () throws -> Void) rethrows -> Double {
    let start = nanoseconds()
    try body()
    return Double(nanoseconds() - start) / Double(count)
}
nonisolated(unsafe) var sink = 0
@inline(never) func consume(_ value: Int) { sink &+= value }

/// Distinct pseudo-random keys.
func keys(_ count: Int, seed: UInt64) -> [Int] {
    (0..<count).map { Int(bitPattern: UInt(StableHash.mix(UInt64($0) ^ seed) >> 1)) }
}

func freshPool(_ name: String) throws -> Heap {
    let path = directory + "/ferrite-bench-\(name).pool"
    try? FileManager.default.removeItem(atPath: path)
    var options = HeapOptions()
    options.initialSize = 256 << 20
    options.maximumSize = 16 << 30
    return try Heap(path: path, options: options)
}
func removePool(_ name: String) { try? FileManager.default.removeItem(atPath: directory + "/ferrite-bench-\(name).pool") }

let sizes = (option("--entries") ?? "1000000,10000000").split(separator: ",").map { Int($0)! }

// MARK: Dictionary

func runDictionary() throws {
    print("## PersistentDictionary<Int, Int> against Dictionary<Int, Int> (ns per operation, median of \(rounds) rounds; inserts durable, one transaction each)")
    print("| entries | Dictionary insert | Ferrite insert | ratio (target ≤ 4x) | Dictionary lookup | Ferrite lookup | ratio (target ≤ 2x) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for count in sizes {
        var swiftInsert: [Double] = [], swiftLookup: [Double] = [], ferriteInsert: [Double] = [], ferriteLookup: [Double] = []
        let roundsHere = count >= 5_000_000 ? max(1, rounds / 2) : rounds
        for round in 0..<roundsHere {
            let inserted = keys(count, seed: UInt64(round))
            let probes = inserted.shuffled()
            do {
                var dictionary: [Int: Int] = [:]
                swiftInsert.append(perOperation(count) { for key in inserted { dictionary[key] = key &+ 1 } })
                swiftLookup.append(perOperation(count) { var sum = 0; for key in probes { sum &+= dictionary[key]! }; consume(sum) })
            }
            let heap = try freshPool("dictionary")
            let dictionary = try PersistentDictionary<Int, Int>.make(in: heap)
            ferriteInsert.append(try perOperation(count) { for key in inserted { try dictionary.updateValue(key &+ 1, forKey: key) } })
            ferriteLookup.append(perOperation(count) { var sum = 0; for key in probes { sum &+= dictionary[key]! }; consume(sum) })
            precondition(dictionary.count == count)
            heap.close()
            removePool("dictionary")
        }
        if arguments.contains("--verbose") {
            print("samples: Dictionary insert \(swiftInsert.map { fmt($0) }), Ferrite insert \(ferriteInsert.map { fmt($0) }), Dictionary lookup \(swiftLookup.map { fmt($0) }), Ferrite lookup \(ferriteLookup.map { fmt($0) })")
        }
        let si = median(swiftInsert), fi = median(ferriteInsert), sl = median(swiftLookup), fl = median(ferriteLookup)
        print("| \(count) | \(fmt(si)) | \(fmt(fi)) | \(fmt(fi / si, 2))x | \(fmt(sl)) | \(fmt(fl)) | \(fmt(fl / sl, 2))x |")
        if arguments.contains("--latency") {
            // The slowest single inserts: growth allocates (zeroes) and commits a doubled table.
            let heap = try freshPool("dictionary")
            let dictionary = try PersistentDictionary<Int, Int>.make(in: heap)
            var worst: [Double] = []
            var slow = 0
            for key in keys(count, seed: 77) {
                let start = nanoseconds()
                try dictionary.updateValue(key, forKey: key)
                let elapsed = Double(nanoseconds() - start)
                if elapsed > 100_000 { slow += 1 }
                if worst.count < 5 || elapsed > worst[0] { worst.append(elapsed); worst.sort(); if worst.count > 5 { worst.removeFirst() } }
            }
            print("| \(count), slowest inserts | | \(worst.reversed().map { fmt($0 / 1e6, 1) + " ms" }.joined(separator: ", ")); \(slow) over 0.1 ms | | | | |")
            heap.close()
            removePool("dictionary")
        }
        if arguments.contains("--presized") {
            // Both sides sized for every key up front: the cost of an insert without growth.
            var swiftPresized: [Double] = [], ferritePresized: [Double] = []
            for round in 0..<roundsHere {
                let inserted = keys(count, seed: UInt64(round) &+ 1000)
                var dictionary: [Int: Int] = [:]
                dictionary.reserveCapacity(count)
                swiftPresized.append(perOperation(count) { for key in inserted { dictionary[key] = key &+ 1 } })
                let heap = try freshPool("dictionary")
                let persistent = try PersistentDictionary<Int, Int>.make(in: heap, minimumCapacity: count)
                ferritePresized.append(try perOperation(count) { for key in inserted { try persistent.updateValue(key &+ 1, forKey: key) } })
                heap.close()
                removePool("dictionary")
            }
            print("| \(count), presized | \(fmt(median(swiftPresized))) | \(fmt(median(ferritePresized))) | \(fmt(median(ferritePresized) / median(swiftPresized), 2))x | | | |")
        }
    }
}

// MARK: Sorted map

/// The volatile baseline: sorted arrays, binary search.
struct SortedArrays {
    var keys: [Int], values: [Int]
    func lowerBound(_ key: Int) -> Int {
        var low = 0, high = keys.count
        while low < high { let mid = (low + high) / 2; if keys[mid] < key { low = mid + 1 } else { high = mid } }
        return low
    }
}

func runSorted() throws {
    print("## PersistentSortedMap<Int, Int> against sorted arrays with binary search (median of \(rounds) rounds)")
    print("| entries | arrays lookup (ns) | Ferrite lookup (ns) | ratio | arrays 100-entry scan (ns) | Ferrite 100-entry scan (ns) | ratio | Ferrite durable random insert (ns) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for count in sizes {
        var al: [Double] = [], fl: [Double] = [], asc: [Double] = [], fsc: [Double] = [], fins: [Double] = []
        let roundsHere = count >= 5_000_000 ? max(1, rounds / 2) : rounds
        for round in 0..<roundsHere {
            let sortedKeys = keys(count, seed: UInt64(round) &+ 99).sorted()
            let probes = (0..<min(count, 1_000_000)).map { _ in sortedKeys.randomElement()! }
            let scanStarts = (0..<100_000).map { _ in sortedKeys.randomElement()! }
            let arrays = SortedArrays(keys: sortedKeys, values: sortedKeys.map { $0 &+ 1 })
            al.append(perOperation(probes.count) { var sum = 0; for key in probes { sum &+= arrays.values[arrays.lowerBound(key)] }; consume(sum) })
            // Both scans return the same thing: an array of up to 100 (key, value) pairs.
            asc.append(perOperation(scanStarts.count) {
                var sum = 0
                for key in scanStarts {
                    let from = arrays.lowerBound(key)
                    var result: [(key: Int, value: Int)] = []
                    result.reserveCapacity(100)
                    for i in from..<min(from + 100, arrays.keys.count) { result.append((arrays.keys[i], arrays.values[i])) }
                    sum &+= result.count
                }
                consume(sum)
            })
            let heap = try freshPool("sorted")
            let map = try PersistentSortedMap<Int, Int>.make(in: heap)
            // Bulk load in key order, 1,000 keys per transaction.
            for first in stride(from: 0, to: count, by: 1000) {
                try heap.transaction { for key in sortedKeys[first..<min(count, first + 1000)] { try map.updateValue(key &+ 1, forKey: key) } }
            }
            fl.append(perOperation(probes.count) { var sum = 0; for key in probes { sum &+= map[key]! }; consume(sum) })
            fsc.append(perOperation(scanStarts.count) {
                var sum = 0
                for key in scanStarts { sum &+= map.entries(from: key, limit: 100).count }
                consume(sum)
            })
            let newKeys = keys(100_000, seed: UInt64(round) &+ 12_345)
            fins.append(try perOperation(newKeys.count) { for key in newKeys { try map.updateValue(key, forKey: key) } })
            heap.close()
            removePool("sorted")
        }
        print("| \(count) | \(fmt(median(al))) | \(fmt(median(fl))) | \(fmt(median(fl) / median(al), 2))x | \(fmt(median(asc))) | \(fmt(median(fsc))) | \(fmt(median(fsc) / median(asc), 2))x | \(fmt(median(fins))) |")
    }
}

// MARK: Open

func runOpen() throws {
    let count = Int(option("--entries") ?? "10000000")!
    let path = directory + "/ferrite-bench-open.pool"
    try? FileManager.default.removeItem(atPath: path)
    let inserted = keys(count, seed: 7)
    do {
        var options = HeapOptions()
        options.initialSize = 256 << 20
        options.maximumSize = 16 << 30
        let heap = try Heap(path: path, options: options)
        let start = nanoseconds()
        let dictionary = try PersistentDictionary<Int, Int>.make(in: heap)
        try heap.setRoot("dictionary", to: dictionary)
        // 100 keys per transaction: each insert may also move 16 slots of a table being migrated,
        // and all of it must fit in one log slot.
        for first in stride(from: 0, to: count, by: 100) {
            try heap.transaction { for key in inserted[first..<min(count, first + 100)] { try dictionary.updateValue(key &+ 1, forKey: key) } }
        }
        print("built a \(count)-entry dictionary in \(fmt(Double(nanoseconds() - start) / 1e9)) s; pool \(heap.size.current >> 20) MiB")
        heap.close()
    }
    var times: [Double] = []
    for round in 0..<5 {
        // A fresh process each time: nothing of the dictionary is in this process's memory.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        child.arguments = ["open-child", path, String(inserted[round * 1000])]
        let pipe = Pipe()
        child.standardOutput = pipe
        try child.run()
        child.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        times.append(Double(output.trimmingCharacters(in: .whitespacesAndNewlines))!)
    }
    print("open a pool holding a \(count)-entry PersistentDictionary + first lookup, in a fresh process: median \(fmt(median(times), 2)) ms of 5 (\(times.map { fmt($0, 2) }.joined(separator: ", "))); target < 50 ms")
    try? FileManager.default.removeItem(atPath: path)
}

func runOpenChild() throws {
    let path = arguments[1], key = Int(arguments[2])!
    let start = nanoseconds()
    let heap = try Heap(path: path)
    let dictionary = try heap.root("dictionary", as: PersistentDictionary<Int, Int>.self)!
    let value = dictionary[key]
    let elapsed = Double(nanoseconds() - start) / 1e6
    precondition(value == key &+ 1, "the first lookup found \(String(describing: value))")
    print(fmt(elapsed, 3))
    heap.close()
}

switch arguments.first ?? "all" {
case "dictionary": try runDictionary()
case "sorted": try runSorted()
case "open": try runOpen()
case "open-child": try runOpenChild()
case "all": try runDictionary(); print(""); try runSorted(); print(""); try runOpen()
default: print("usage: collections-bench dictionary|sorted|open|all [--entries N,M] [--rounds R]")
}
