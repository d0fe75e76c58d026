import FerriteBank
import FerriteObjects
import Foundation
import PeerStores
import Synchronization

/// A store running pgbench's TPC-B-like bank: `scale` branches, 10 × `scale` tellers and
/// 100,000 × `scale` accounts.
protocol BankStore: AnyObject, Sendable {
    /// One transaction: `delta` added to the account, the teller and the teller's branch, and a
    /// history entry appended, all or nothing and durable as the store is.
    func transaction(account: Int, teller: Int, delta: Int) throws
    /// Sums of the account, teller and branch balances and of the history deltas, and the number
    /// of history entries.
    func totals() throws -> [Int]
    func close()
}

extension StoreKind {
    var runsBank: Bool { ![.marshal, .dictionary].contains(self) }

    /// Opens the bank in `directory`, making it at `scale` if there is none.
    func openBank(in directory: String, scale: Int, threads: Int) throws -> any BankStore {
        switch self {
        case .ferriteMemory: try FerriteBankStore(path: directory + "/bank.pool", durability: .memory, scale: scale)
        case .ferriteStorage: try FerriteBankStore(path: directory + "/bank.pool", durability: .storage, scale: scale)
        case .sqliteFull: try SQLiteBankStore(path: directory + "/bank.sqlite", full: true, scale: scale, threads: threads)
        case .sqliteNormal: try SQLiteBankStore(path: directory + "/bank.sqlite", full: false, scale: scale, threads: threads)
        case .lmdb: try LMDBBankStore(directory: directory, nosync: false, scale: scale)
        case .lmdbNosync: try LMDBBankStore(directory: directory, nosync: true, scale: scale)
        case .marshal, .dictionary: throw StoreError("\(rawValue) does not run the bank")
        }
    }
}

/// Ferrite: the `@Persistent` bank of FerriteBank (the `ferrite-bank` example's).
final class FerriteBankStore: BankStore, @unchecked Sendable {
    let heap: Heap
    let bank: Bank

    init(path: String, durability: Durability, scale: Int) throws {
        var options = HeapOptions()
        options.durability = durability
        options.maximumSize = 64 << 30
        let heap = try Heap(path: path, options: options)
        self.heap = heap
        bank = try Bank.open(in: heap, scale: scale)
    }

    func transaction(account: Int, teller: Int, delta: Int) throws {
        try bank.transfer(delta, account: bank.accounts[account], teller: bank.tellers[teller], in: heap)
    }

    func totals() throws -> [Int] {
        let totals = bank.totals
        return [totals.accounts, totals.tellers, totals.branches, totals.history, bank.history.count]
    }

    func close() { heap.close() }
}

/// SQLite, one connection per thread.
final class SQLiteBankStore: BankStore, @unchecked Sendable {
    final class Connection: @unchecked Sendable {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
    }
    private let connections: Mutex<[Connection]>

    init(path: String, full: Bool, scale: Int, threads: Int) throws {
        var opened: [Connection] = []
        for _ in 0..<max(1, threads) {
            guard let connection = bank_sqlite_open(path, full ? 1 : 0) else { throw StoreError("cannot open SQLite at \(path)") }
            opened.append(Connection(connection))
        }
        if bank_sqlite_create(opened[0].pointer, Int32(scale)) != 0 { throw StoreError("cannot create the SQLite bank") }
        connections = Mutex(opened)
    }

    func transaction(account: Int, teller: Int, delta: Int) throws {
        guard let connection = connections.withLock({ $0.popLast() }) else { throw StoreError("more threads than SQLite connections") }
        defer { connections.withLock { $0.append(connection) } }
        if bank_sqlite_transaction(connection.pointer, Int32(account), Int32(teller), Int32(teller / 10), Int32(delta)) != 0 {
            throw StoreError("SQLite bank transaction failed")
        }
    }

    func totals() throws -> [Int] {
        var totals = [Int64](repeating: 0, count: 5)
        let connection = connections.withLock { $0.first! }
        if bank_sqlite_totals(connection.pointer, &totals) != 0 { throw StoreError("SQLite totals failed") }
        return totals.map { Int($0) }
    }

    func close() { connections.withLock { for connection in $0 { bank_sqlite_close(connection.pointer) }; $0 = [] } }
}

/// LMDB, one environment.
final class LMDBBankStore: BankStore, @unchecked Sendable {
    let db: OpaquePointer

    init(directory: String, nosync: Bool, scale: Int) throws {
        guard let db = bank_lmdb_open(directory, nosync ? 1 : 0) else { throw StoreError("cannot open LMDB in \(directory)") }
        self.db = db
        if bank_lmdb_create(db, Int32(scale)) != 0 { throw StoreError("cannot create the LMDB bank") }
    }

    func transaction(account: Int, teller: Int, delta: Int) throws {
        if bank_lmdb_transaction(db, Int32(account), Int32(teller), Int32(teller / 10), Int32(delta)) != 0 {
            throw StoreError("LMDB bank transaction failed")
        }
    }

    func totals() throws -> [Int] {
        var totals = [Int64](repeating: 0, count: 5)
        if bank_lmdb_totals(db, &totals) != 0 { throw StoreError("LMDB totals failed") }
        return totals.map { Int($0) }
    }

    func close() { bank_lmdb_close(db) }
}
