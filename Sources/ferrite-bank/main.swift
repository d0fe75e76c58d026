// ferrite-bank: the TPC-B-like bank of pgbench (workloads.md) written with @Persistent classes.
// Each transaction adds a random delta to a random account, its teller and its branch, and
// appends a history entry, all or nothing. Kill it at any moment (Ctrl-C, kill -9) and start it
// again: it recovers, and the account, teller, branch and history totals agree.
//
//   swift run ferrite-bank [--pool PATH] [--scale S] [--seconds S] [--threads N] [--durability storage|memory] [--check]
//
// Scale S means S branches, 10*S tellers and 100,000*S accounts. A new pool is created in storage
// mode (write-ahead log + fdatasync: safe against power loss on any disk) unless
// `--durability memory` asks for memory mode; an existing pool keeps its mode. `--check` opens the
// pool, checks the invariant and exits.
import FerriteBank
import FerriteObjects
import Foundation
import Synchronization

var poolPath = "ferrite-bank.pool"
var scale = 1
var seconds: Double? = nil
var threads = 1
var checkOnly = false
var options = HeapOptions()
options.durability = .storage
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--pool": poolPath = arguments.popFirst() ?? poolPath
    case "--scale": scale = arguments.popFirst().flatMap(Int.init) ?? scale
    case "--seconds": seconds = arguments.popFirst().flatMap(Double.init)
    case "--threads": threads = max(1, arguments.popFirst().flatMap(Int.init) ?? threads)
    case "--check": checkOnly = true
    case "--durability":
        switch arguments.popFirst() {
        case "storage": options.durability = .storage
        case "memory": options.durability = .memory
        default: print("--durability takes storage or memory"); exit(2)
        }
    default:
        print("usage: ferrite-bank [--pool PATH] [--scale S] [--seconds S] [--threads N] [--durability storage|memory] [--check]")
        exit(2)
    }
}

/// Prints the bank's totals and whether they agree.
func checkInvariant(_ bank: Bank, _ when: String) -> Bool {
    let totals = bank.totals
    let holds = Bank.agree(totals)
    print("\(when): \(bank.history.count) transactions; totals: accounts \(totals.accounts), tellers \(totals.tellers), branches \(totals.branches), history \(totals.history): \(holds ? "invariant holds" : "INVARIANT BROKEN")")
    return holds
}

do {
    let heap = try Heap(path: poolPath, options: options)
    switch heap.durability {
    case .storage:
        print("pool \(poolPath): storage mode, durable against power loss (\(heap.medium), log \(Heap.logPath(forPool: poolPath)))")
    case .memory:
        print("pool \(poolPath): memory mode, \(heap.isDAX ? "DAX, durable against power loss" : "not DAX: survives process crashes, not power loss"), flushes with \(heap.medium)")
    }
    let recovery = heap.recovery
    if recovery.replayedLogRecords > 0 {
        print("replayed \(recovery.replayedLogRecords) log record(s) since the last checkpoint")
    }
    if recovery.replayedTransactions + recovery.discardedTransactions > 0 {
        print("recovered in \(String(format: "%.2f", recovery.openSeconds * 1000)) ms: re-applied \(recovery.replayedTransactions) committed transaction(s), discarded \(recovery.discardedTransactions) unfinished")
    }

    var lastShown = 0
    let bank = try Bank.open(in: heap, scale: scale) { done, total in
        if done - lastShown >= total / 10 || done == total {
            print("creating accounts: \(done) of \(total)")
            lastShown = done
        }
    }
    guard checkInvariant(bank, "at start") else { exit(1) }
    if checkOnly { exit(0) }

    // Tellers, accounts and branches are read once into proxies; each thread runs transactions
    // that lock what they touch (the branch and the history serialize them, as in pgbench).
    let accounts = Array(bank.accounts), tellers = Array(bank.tellers)
    let started = Date()
    let done = Atomic(0)
    let stop = Atomic(false)
    let failure = Mutex<(any Error)?>(nil)
    let group = DispatchGroup()
    for _ in 0..<threads {
        DispatchQueue.global().async(group: group) {
            var rng = SystemRandomNumberGenerator()
            do {
                while !stop.load(ordering: .relaxed) {
                    let account = accounts[Int.random(in: 0..<accounts.count, using: &rng)]
                    let teller = tellers[Int.random(in: 0..<tellers.count, using: &rng)]
                    try bank.transfer(Int.random(in: -5_000...5_000, using: &rng), account: account, teller: teller, in: heap)
                    done.add(1, ordering: .relaxed)
                }
            } catch {
                failure.withLock { $0 = error }
                stop.store(true, ordering: .relaxed)
            }
        }
    }
    var last = (time: started, count: 0)
    while group.wait(timeout: .now() + 1) == .timedOut {
        let now = Date(), count = done.load(ordering: .relaxed)
        print("\(count) transactions (\(Int(Double(count - last.count) / now.timeIntervalSince(last.time)))/s)")
        last = (now, count)
        if let seconds, now.timeIntervalSince(started) >= seconds { stop.store(true, ordering: .relaxed) }
    }
    if let error = failure.withLock({ $0 }) { throw error }
    let count = done.load(ordering: .relaxed)
    print("\(count) transactions in \(String(format: "%.1f", Date().timeIntervalSince(started))) s with \(threads) thread(s)")
    let holds = checkInvariant(bank, "at end")
    heap.close()
    exit(holds ? 0 : 1)
} catch {
    print("ferrite-bank: \(error)")
    exit(1)
}
