import FerriteObjects
import Foundation

// The TPC-B-like bank of pgbench (workloads.md): branches, tellers, accounts and an append-only
// history, each a `@Persistent` class whose properties live in the pool. Used by the `ferrite-bank`
// example and by ferrite-bench.

@Persistent("FerriteBank.Branch")
public final class Branch {
    public let id: Int
    public var balance: Int = 0

    public init(id: Int) throws {
        self.id = id
    }
}

@Persistent("FerriteBank.Teller")
public final class Teller {
    public let id: Int
    public var balance: Int = 0
    public var branch: Branch

    public init(id: Int, branch: Branch) throws {
        self.id = id
        self.branch = branch
    }
}

@Persistent("FerriteBank.Account")
public final class Account {
    public let id: Int
    public var balance: Int = 0
    public var branch: Branch

    public init(id: Int, branch: Branch) throws {
        self.id = id
        self.branch = branch
    }
}

/// One committed transaction, as pgbench's history table records it.
@Persistent("FerriteBank.History")
public final class HistoryEntry {
    public let teller: Teller
    public let branch: Branch
    public let account: Account
    public let delta: Int
    public let time: Date

    public init(teller: Teller, branch: Branch, account: Account, delta: Int, time: Date) throws {
        self.teller = teller
        self.branch = branch
        self.account = account
        self.delta = delta
        self.time = time
    }
}

/// The bank: its scale and its tables.
@Persistent("FerriteBank.Bank")
public final class Bank {
    public let scale: Int
    public var branches: PersistentArray<Branch>
    public var tellers: PersistentArray<Teller>
    public var accounts: PersistentArray<Account>
    public var history: PersistentArray<HistoryEntry>

    public init(scale: Int, in heap: Heap) throws {
        self.scale = scale
        branches = try PersistentArray.make(in: heap)
        tellers = try PersistentArray.make(in: heap)
        accounts = try PersistentArray.make(in: heap)
        history = try PersistentArray.make(in: heap)
    }

    /// Sums of the balances of each table and of the history's deltas: all equal when the bank is
    /// consistent (pgbench's invariant).
    public var totals: (accounts: Int, tellers: Int, branches: Int, history: Int) {
        (accounts.reduce(0) { $0 + $1.balance }, tellers.reduce(0) { $0 + $1.balance },
         branches.reduce(0) { $0 + $1.balance }, history.reduce(0) { $0 + $1.delta })
    }
}

extension Bank {
    /// Accounts per unit of scale (pgbench's 100,000).
    public static let accountsPerBranch = 100_000

    /// The bank under root `bank`, made (at `scale`) if the pool has none. Accounts are made in
    /// transactions of a thousand; a creation interrupted by a crash resumes where it stopped.
    public static func open(in heap: Heap, scale: Int, progress: (Int, Int) -> Void = { _, _ in }) throws -> Bank {
        try heap.register(Bank.self)  // and, through its properties, every other type of the bank
        let bank = try heap.root("bank", as: Bank.self) ?? heap.transaction {
            let bank = try Bank(scale: scale, in: heap)
            for id in 0..<scale { try bank.branches.append(try Branch(id: id)) }
            for id in 0..<10 * scale { try bank.tellers.append(try Teller(id: id, branch: bank.branches[id / 10])) }
            try heap.setRoot("bank", to: bank)
            return bank
        }
        let total = accountsPerBranch * bank.scale
        for start in stride(from: bank.accounts.count, to: total, by: 1_000) {
            try heap.transaction {
                for id in start..<min(start + 1_000, total) {
                    try bank.accounts.append(try Account(id: id, branch: bank.branches[id / accountsPerBranch]))
                }
            }
            progress(min(start + 1_000, total), total)
        }
        return bank
    }

    /// Whether account, teller, branch and history totals agree (pgbench's invariant).
    public static func agree(_ totals: (accounts: Int, tellers: Int, branches: Int, history: Int)) -> Bool {
        totals.accounts == totals.tellers && totals.tellers == totals.branches && totals.branches == totals.history
    }

    /// One TPC-B transaction, failure-atomic: `delta` added to `account`, `teller` and the teller's
    /// branch, and a history entry appended. It locks what it touches (the history and the branch
    /// serialize such transactions, as in pgbench).
    public func transfer(_ delta: Int, account: Account, teller: Teller, in heap: Heap) throws {
        let branch = teller.branch
        try heap.transaction(locking: [history, branch, teller, account]) {
            account.balance += delta
            _ = account.balance
            teller.balance += delta
            branch.balance += delta
            try history.append(try HistoryEntry(teller: teller, branch: branch, account: account, delta: delta, time: Date()))
        }
    }
}
