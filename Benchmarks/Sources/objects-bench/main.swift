// objects-bench: what a @Persistent property costs, against a hand-written proxy of the same
// layout and a plain Swift class, in the same run (memory mode, pool on /dev/shm).
//
//   swift run -c release --package-path Benchmarks objects-bench [--rounds R] [--hot H] [--objects N]
//
// Reads: one Int property of H objects (default 1,024) that stay in cache, read many times, and of
// N objects (default 1M) read once each per pass. Writes: one Int property of up to 1,024 objects
// per transaction. Each figure is the median of R rounds (default 7), in nanoseconds per access.
import BenchmarkSupport
import FerriteObjects
import Foundation

/// The object under test, made persistent by the macro.
@Persistent("Bench.MacroAccount")
final class MacroAccount {
    var id: Int
    var balance: Int = 0
    var next: MacroAccount?
    init(id: Int) throws { self.id = id }
}

/// The same layout by hand, as FerriteHeap's documentation shows.
final class HandAccount: PersistentObject {
    static let persistentTypeName = "Bench.HandAccount"
    static let persistentSize = 24
    static let persistentReferenceOffsets = [16]
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    var id: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    var balance: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
}

/// The volatile baseline: a plain Swift class with stored properties.
final class PlainAccount {
    var id: Int
    var balance = 0
    var next: PlainAccount?
    init(id: Int) { self.id = id }
}

let rounds = option("--rounds", 7)
let objectCount = option("--objects", 1_000_000)
func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
func fmt(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }

let directory = scratchDirectory()
defer { try? FileManager.default.removeItem(atPath: directory) }
var options = HeapOptions()
options.maximumSize = 4 << 30
let heap = try Heap(path: directory + "/objects.pool", options: options)
try heap.register(MacroAccount.self)
try heap.register(HandAccount.self)

/// Makes `count` objects of each kind (the persistent ones in transactions of 1,000).
func make(_ count: Int) throws -> (macro: [MacroAccount], hand: [HandAccount], plain: [PlainAccount]) {
    var macro: [MacroAccount] = [], hand: [HandAccount] = []
    macro.reserveCapacity(count); hand.reserveCapacity(count)
    for start in stride(from: 0, to: count, by: 1_000) {
        try heap.transaction {
            for id in start..<min(count, start + 1_000) {
                macro.append(try MacroAccount(id: id))
                let h = try heap.allocate(HandAccount.self)
                h.id = id
                hand.append(h)
            }
        }
    }
    return (macro, hand, (0..<count).map { PlainAccount(id: $0) })
}

/// Nanoseconds per call of `pass` (which reads `count` objects once each), median of the rounds.
func timeReads(count: Int, passes: Int, _ pass: () -> Int) -> Double {
    var times: [Double] = []
    for _ in 0..<rounds {
        let start = nanoseconds()
        for _ in 0..<passes { blackHole(pass()) }
        times.append(Double(nanoseconds() - start) / Double(count * passes))
    }
    return median(times)
}

// One concrete loop per kind of object: no closure or generic call inside the timed loop.
@inline(never) func sumBalances(_ objects: [MacroAccount]) -> Int { var sum = 0; for object in objects { sum &+= object.balance }; return sum }
@inline(never) func sumBalances(_ objects: [HandAccount]) -> Int { var sum = 0; for object in objects { sum &+= object.balance }; return sum }
@inline(never) func sumBalances(_ objects: [PlainAccount]) -> Int { var sum = 0; for object in objects { sum &+= object.balance }; return sum }
@inline(never) func sumNextBalances(_ objects: [MacroAccount]) -> Int { var sum = 0; for object in objects { sum &+= object.next!.balance }; return sum }
@inline(never) func sumNextBalances(_ references: [UInt64]) -> Int {
    var sum = 0
    for reference in references { sum &+= try! heap.object(at: reference, as: HandAccount.self).balance }
    return sum
}
@inline(never) func sumNextBalances(_ objects: [PlainAccount]) -> Int { var sum = 0; for object in objects { sum &+= object.next!.balance }; return sum }

print("| access (ns, median of \(rounds)) | @Persistent | hand-written proxy | Swift class | @Persistent / hand | @Persistent / Swift class |")
print("|---|---|---|---|---|---|")
func row(_ name: String, _ macro: Double, _ hand: Double, _ plain: Double?) {
    let versusPlain = plain.map { "\(fmt(macro / $0))x" } ?? ""
    print("| \(name) | \(fmt(macro)) | \(fmt(hand)) | \(plain.map { fmt($0) } ?? "") | \(fmt(macro / hand))x | \(versusPlain) |")
}

do {
    let hot = try make(option("--hot", 1_024))
    row("read Int, \(hot.macro.count) objects in cache",
        timeReads(count: hot.macro.count, passes: 4_000_000 / hot.macro.count) { sumBalances(hot.macro) }, timeReads(count: hot.macro.count, passes: 4_000_000 / hot.macro.count) { sumBalances(hot.hand) },
        timeReads(count: hot.macro.count, passes: 4_000_000 / hot.macro.count) { sumBalances(hot.plain) })

    var macroTimes: [Double] = [], handTimes: [Double] = []
    let perTransaction = min(1_024, hot.macro.count)
    for _ in 0..<rounds {
        var start = nanoseconds()
        for pass in 0..<100 { try heap.transaction { for object in hot.macro.prefix(perTransaction) { object.balance = pass } } }
        macroTimes.append(Double(nanoseconds() - start) / Double(perTransaction * 100))
        start = nanoseconds()
        for pass in 0..<100 { try heap.transaction { for object in hot.hand.prefix(perTransaction) { object.balance = pass } } }
        handTimes.append(Double(nanoseconds() - start) / Double(perTransaction * 100))
    }
    row("write Int, \(perTransaction) per transaction", median(macroTimes), median(handTimes), nil)

    // Following a reference makes a proxy: the macro's from the field, the hand-written one
    // through heap.object(at:as:), which checks the reference and the type.
    for start in stride(from: 0, to: hot.macro.count, by: 1_024) {
        try heap.transaction {
            for index in start..<min(start + 1_024, hot.macro.count) { hot.macro[index].next = hot.macro[(index + 1) % hot.macro.count] }
        }
    }
    let references = hot.hand.map(\.reference)
    for (index, object) in hot.plain.enumerated() { object.next = hot.plain[(index + 1) % hot.plain.count] }
    row("follow a reference, read Int",
        timeReads(count: hot.macro.count, passes: 1_000_000 / hot.macro.count) { sumNextBalances(hot.macro) }, timeReads(count: hot.macro.count, passes: 1_000_000 / hot.macro.count) { sumNextBalances(references) },
        timeReads(count: hot.macro.count, passes: 1_000_000 / hot.macro.count) { sumNextBalances(hot.plain) })
}

do {
    let cold = try make(objectCount)
    row("read Int, \(objectCount) objects",
        timeReads(count: objectCount, passes: 3) { sumBalances(cold.macro) }, timeReads(count: objectCount, passes: 3) { sumBalances(cold.hand) },
        timeReads(count: objectCount, passes: 3) { sumBalances(cold.plain) })
}
heap.close()
