// ferrite-bank: a bank whose accounts live in a persistent heap, moving money between random
// accounts in failure-atomic transactions. Kill it at any moment (Ctrl-C, kill -9) and start it
// again: it recovers, and the total of all balances is exactly what it was.
//
//   swift run ferrite-bank [--pool PATH] [--accounts N] [--seconds S] [--durability storage|memory]
//
// A new pool is created in storage mode (write-ahead log + fdatasync: safe against power loss on
// any disk) unless `--durability memory` asks for memory mode; an existing pool keeps its mode.
import FerriteHeap
import Foundation

/// One account: an id, a balance and a 128-byte payload (J-NVM's bank record).
final class Account: PersistentObject {
    static let persistentTypeName = "FerriteBank.Account"
    static let persistentSize = 16 + 128
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    var id: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    var balance: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
}

/// The bank: how many accounts, how many transfers so far, then a reference per account.
final class Bank: PersistentObject {
    static let persistentTypeName = "FerriteBank.Bank"
    static let persistentSize = 16
    static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] {
        (0..<handle[Int.self, at: 0]).map { 16 + 8 * $0 }
    }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    var accountCount: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    var transfers: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
    func account(_ index: Int) throws -> Account { try handle.object(at: 16 + 8 * index, as: Account.self)! }
    func setAccount(_ index: Int, _ account: Account) { handle.setObject(account, at: 16 + 8 * index) }
}

var poolPath = "ferrite-bank.pool"
var accountCount = 10_000
var seconds: Double? = nil
var options = HeapOptions()
options.durability = .storage
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--pool": poolPath = arguments.popFirst() ?? poolPath
    case "--accounts": accountCount = arguments.popFirst().flatMap(Int.init) ?? accountCount
    case "--seconds": seconds = arguments.popFirst().flatMap(Double.init)
    case "--durability":
        switch arguments.popFirst() {
        case "storage": options.durability = .storage
        case "memory": options.durability = .memory
        default: print("--durability takes storage or memory"); exit(2)
        }
    default:
        print("usage: ferrite-bank [--pool PATH] [--accounts N] [--seconds S] [--durability storage|memory]")
        exit(2)
    }
}
let initialBalance = 1_000

do {
    let heap = try Heap(path: poolPath, options: options)
    try heap.register(Account.self)
    try heap.register(Bank.self)
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
    let bank: Bank
    if let existing = try heap.root("bank", as: Bank.self) {
        bank = existing
        print("opened the bank: \(bank.accountCount) accounts, \(bank.transfers) transfers so far, in \(String(format: "%.2f", heap.recovery.openSeconds * 1000)) ms")
    } else {
        print("creating \(accountCount) accounts of \(initialBalance)...")
        bank = try heap.transaction {
            let bank = try heap.allocate(Bank.self, size: 16 + 8 * accountCount)
            bank.accountCount = accountCount
            try heap.setRoot("bank", to: bank)
            return bank
        }
        for start in stride(from: 0, to: accountCount, by: 1000) {
            try heap.transaction {
                for index in start..<min(accountCount, start + 1000) {
                    let account = try heap.allocate(Account.self)
                    account.id = index
                    account.balance = initialBalance
                    bank.setAccount(index, account)
                }
            }
        }
    }
    let accounts = try (0..<bank.accountCount).map { try bank.account($0) }
    let expected = accounts.count * initialBalance
    func total() -> Int { accounts.reduce(0) { $0 + $1.balance } }
    let startTotal = total()
    print("total balance \(startTotal) (expected \(expected)): \(startTotal == expected ? "invariant holds" : "INVARIANT BROKEN")")
    guard startTotal == expected else { exit(1) }

    var rng = SystemRandomNumberGenerator()
    let started = Date()
    var lastReport = started
    var lastTransfers = bank.transfers
    while true {
        let from = accounts[Int.random(in: 0..<accounts.count, using: &rng)]
        let to = accounts[Int.random(in: 0..<accounts.count, using: &rng)]
        let amount = Int.random(in: 1...100, using: &rng)
        try heap.transaction {
            from.balance -= amount
            to.balance += amount
            bank.transfers += 1
        }
        if bank.transfers % 1024 == 0 {
            let now = Date()
            if now.timeIntervalSince(lastReport) >= 1 {
                let rate = Double(bank.transfers - lastTransfers) / now.timeIntervalSince(lastReport)
                print("\(bank.transfers) transfers (\(Int(rate))/s), total balance \(total())")
                lastReport = now
                lastTransfers = bank.transfers
            }
            if let seconds, now.timeIntervalSince(started) >= seconds { break }
        }
    }
    let endTotal = total()
    print("stopped after \(bank.transfers) transfers; total balance \(endTotal): \(endTotal == expected ? "invariant holds" : "INVARIANT BROKEN")")
    exit(endTotal == expected ? 0 : 1)
} catch {
    print("ferrite-bank: \(error)")
    exit(1)
}
