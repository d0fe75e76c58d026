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
    let holds = totals.accounts == totals.tellers && totals.tellers == totals.branches && totals.branches == totals.history
    print("\(when): \(bank.history.count) transactions; totals: accounts \(totals.accounts), tellers \(totals.tellers), branches \(totals.branches), history \(totals.history): \(holds ? "invariant holds" : "INVARIANT BROKEN")")
    return holds
}

do {
    let heap = try Heap(path: poolPath, options: options)
    try heap.register(Bank.self)  // and, through its properties, every other type of the bank
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

    let bank = try heap.root("bank", as: Bank.self) ?? heap.transaction {
        print("creating the bank at scale \(scale): \(scale) branches, \(10 * scale) tellers, \(100_000 * scale) accounts...")
        let bank = try Bank(scale: scale, in: heap)
        for id in 0..<scale { try bank.branches.append(try Branch(id: id)) }
        for id in 0..<10 * scale { try bank.tellers.append(try Teller(id: id, branch: bank.branches[id / 10])) }
        try heap.setRoot("bank", to: bank)
        return bank
    }
    // Accounts are made in transactions of a thousand; an interrupted creation resumes here.
    if bank.accounts.count < 100_000 * bank.scale {
        for start in stride(from: bank.accounts.count, to: 100_000 * bank.scale, by: 1_000) {
            try heap.transaction {
                for id in start..<min(start + 1_000, 100_000 * bank.scale) {
                    try bank.accounts.append(try Account(id: id, branch: bank.branches[id / 100_000]))
                }
            }
        }
    } else {
        print("opened the bank at scale \(bank.scale) in \(String(format: "%.2f", heap.recovery.openSeconds * 1000)) ms")
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
                    let branch = teller.branch
                    let delta = Int.random(in: -5_000...5_000, using: &rng)
                    try heap.transaction(locking: [bank.history, branch, teller, account]) {
                        account.balance += delta
                        _ = account.balance
                        teller.balance += delta
                        branch.balance += delta
                        try bank.history.append(try HistoryEntry(teller: teller, branch: branch, account: account, delta: delta, time: Date()))
                    }
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
