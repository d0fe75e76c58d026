import FerriteObjects
import Foundation

// The TPC-B-like bank of pgbench: branches, tellers, accounts and an append-only history, each a
// `@Persistent` class whose properties live in the pool.

@Persistent("FerriteBank.Branch")
final class Branch {
    let id: Int
    var balance: Int = 0

    init(id: Int) throws {
        self.id = id
    }
}

@Persistent("FerriteBank.Teller")
final class Teller {
    let id: Int
    var balance: Int = 0
    var branch: Branch

    init(id: Int, branch: Branch) throws {
        self.id = id
        self.branch = branch
    }
}

@Persistent("FerriteBank.Account")
final class Account {
    let id: Int
    var balance: Int = 0
    var branch: Branch

    init(id: Int, branch: Branch) throws {
        self.id = id
        self.branch = branch
    }
}

/// One committed transaction, as pgbench's history table records it.
@Persistent("FerriteBank.History")
final class HistoryEntry {
    let teller: Teller
    let branch: Branch
    let account: Account
    let delta: Int
    let time: Date

    init(teller: Teller, branch: Branch, account: Account, delta: Int, time: Date) throws {
        self.teller = teller
        self.branch = branch
        self.account = account
        self.delta = delta
        self.time = time
    }
}

/// The bank: its scale and its tables.
@Persistent("FerriteBank.Bank")
final class Bank {
    let scale: Int
    var branches: PersistentArray<Branch>
    var tellers: PersistentArray<Teller>
    var accounts: PersistentArray<Account>
    var history: PersistentArray<HistoryEntry>

    init(scale: Int, in heap: Heap) throws {
        self.scale = scale
        branches = try PersistentArray.make(in: heap)
        tellers = try PersistentArray.make(in: heap)
        accounts = try PersistentArray.make(in: heap)
        history = try PersistentArray.make(in: heap)
    }

    /// Sums of the balances of each table and of the history's deltas: all equal when the bank is
    /// consistent (pgbench's invariant).
    var totals: (accounts: Int, tellers: Int, branches: Int, history: Int) {
        (accounts.reduce(0) { $0 + $1.balance }, tellers.reduce(0) { $0 + $1.balance },
         branches.reduce(0) { $0 + $1.balance }, history.reduce(0) { $0 + $1.delta })
    }
}
