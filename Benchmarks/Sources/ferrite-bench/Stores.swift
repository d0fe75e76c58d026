import FerriteObjects
import Foundation
import Synchronization
import PeerStores

/// The bytes of a YCSB record: 10 fields of 100 bytes.
let fieldCount = 10, fieldBytes = 100, recordBytes = fieldCount * fieldBytes

/// A store YCSB drives, embedded in this process. Every method may be called from several threads
/// at once; `read` and `scan` copy records into `buffer` (`recordBytes` bytes, or `count` times
/// that for scans).
protocol YCSBStore: AnyObject, Sendable {
    /// Inserts `count` records (keys, and records back to back), in as few transactions as the
    /// store allows (the load phase).
    func insertBatch(_ keys: [String], _ records: UnsafeRawBufferPointer) throws
    func insert(_ key: String, _ record: UnsafeRawBufferPointer) throws
    /// Whether the key was found.
    func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool
    /// Rewrites one field; whether the key was found.
    func update(_ key: String, field: Int, _ value: UnsafeRawBufferPointer) throws -> Bool
    /// Reads up to `count` records in key order from `key`; how many were read.
    func scan(_ key: String, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Bytes the store occupies on its medium.
    var storedBytes: Int { get }
    func close()
}

struct StoreError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The stores `--stores` can name, and how each is made in `directory` (on /dev/shm for the
/// memory stores, on the disk of the working directory for the others).
enum StoreKind: String, CaseIterable, Codable, Sendable {
    case ferriteMemory = "ferrite-memory", ferriteStorage = "ferrite-storage"
    case sqliteFull = "sqlite-full", sqliteNormal = "sqlite-normal"
    case lmdb, lmdbNosync = "lmdb-nosync"
    case marshal, dictionary

    var onDisk: Bool { [.ferriteStorage, .sqliteFull, .sqliteNormal, .lmdb, .lmdbNosync].contains(self) }
    /// Whether it keeps its records in key order (workload E's scans).
    var scans: Bool { ![.marshal, .dictionary].contains(self) }

    func open(in directory: String, ordered: Bool, threads: Int) throws -> any YCSBStore {
        switch self {
        case .ferriteMemory: try FerriteStore(path: directory + "/ycsb.pool", durability: .memory, ordered: ordered)
        case .ferriteStorage: try FerriteStore(path: directory + "/ycsb.pool", durability: .storage, ordered: ordered)
        case .sqliteFull: try SQLiteStore(path: directory + "/ycsb.sqlite", full: true, threads: threads)
        case .sqliteNormal: try SQLiteStore(path: directory + "/ycsb.sqlite", full: false, threads: threads)
        case .lmdb: try LMDBStore(directory: directory, nosync: false)
        case .lmdbNosync: try LMDBStore(directory: directory, nosync: true)
        case .marshal: try MarshalStore(path: directory + "/ycsb.records")
        case .dictionary: DictionaryStore()
        }
    }
}

/// Bytes used by the files of a directory.
func directoryBytes(_ path: String) -> Int {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
    return files.reduce(0) { total, name in
        var info = stat()
        return stat(path + "/" + name, &info) == 0 ? total + Int(info.st_blocks) * 512 : total
    }
}

// MARK: - Ferrite

/// A YCSB record in the pool: its 10 fields, in place, then the word of its writer lock (1,008
/// bytes: the same 1 KiB block as the fields alone).
final class YCSBRecord: PersistentObject, PersistentStorable, @unchecked Sendable {
    static let persistentTypeName = "Bench.YCSBRecord"
    static let persistentSize = recordBytes + 8
    static let lockOffset = recordBytes
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }

    /// Copies the fields, never half an update: an optimistic read, retried if a writer held or
    /// took the record's lock meanwhile (``ObjectHandle/readConsistently(wordAt:_:)``).
    func copyFields(into target: UnsafeMutableRawPointer) {
        handle.readConsistently(wordAt: Self.lockOffset) { target.copyMemory(from: handle.fields, byteCount: recordBytes) }
    }
}

/// Ferrite: records are objects in the pool, found through a persistent hash map (and, when the
/// workload scans, a persistent sorted map as well). Every write is one failure-atomic
/// transaction that holds the record's writer lock until it ends; updates of different records
/// run in parallel, inserts take the maps' locks. Reads take no lock: they copy the record and
/// check that no writer came by (a seqlock), as the maps' own lookups do.
final class FerriteStore: YCSBStore, @unchecked Sendable {
    let heap: Heap
    let path: String
    let table: PersistentDictionary<String, YCSBRecord>
    let ordered: PersistentSortedMap<String, YCSBRecord>?

    init(path: String, durability: Durability, ordered: Bool) throws {
        var options = HeapOptions()
        options.durability = durability
        options.maximumSize = 64 << 30
        options.logSlotCount = 8        // load batches of 1,000 records (1 MB) need big redo logs
        options.logSlotSize = 4 << 20
        self.path = path
        let heap = try Heap(path: path, options: options)
        self.heap = heap
        try heap.register(YCSBRecord.self)
        (table, self.ordered) = try heap.transaction {
            let table = try PersistentDictionary<String, YCSBRecord>.make(in: heap)
            try heap.setRoot("usertable", to: table)
            guard ordered else { return (table, nil) }
            let index = try PersistentSortedMap<String, YCSBRecord>.make(in: heap)
            try heap.setRoot("usertable.ordered", to: index)
            return (table, index)
        }
    }

    private func add(_ key: String, _ record: UnsafeRawBufferPointer) throws {
        let object = try heap.allocate(YCSBRecord.self)
        object.handle.fields.copyMemory(from: record.baseAddress!, byteCount: recordBytes)  // a new block: copied whole at commit
        try table.updateValue(object, forKey: key)
        try ordered?.updateValue(object, forKey: key)
    }

    func insertBatch(_ keys: [String], _ records: UnsafeRawBufferPointer) throws {
        try heap.transaction {
            for (index, key) in keys.enumerated() {
                try add(key, UnsafeRawBufferPointer(rebasing: records[index * recordBytes ..< (index + 1) * recordBytes]))
            }
        }
    }

    /// Runs a write transaction holding its locks only until it is logged (early lock release):
    /// the wait for the disk comes after the locks are released, and is shared with every other
    /// thread's (group commit). The operation returns once its commit is durable, as before.
    private func durably(_ body: () throws -> Void) throws {
        heap.makeLogRoomIfNeeded()
        try heap.deferringDurability { try body() }
        heap.waitUntilDurable(heap.commitPoint)
    }

    func insert(_ key: String, _ record: UnsafeRawBufferPointer) throws {
        try durably { try heap.transaction { try add(key, record) } }
    }

    func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        guard let record = table[key] else { return false }
        record.copyFields(into: buffer.baseAddress!)
        return true
    }

    func update(_ key: String, field: Int, _ value: UnsafeRawBufferPointer) throws -> Bool {
        guard let record = table[key] else { return false }
        try durably {
            try heap.transaction {
                try record.handle.lockUntilTransactionEnds(wordAt: YCSBRecord.lockOffset)
                record.handle.storeBytes(value, at: field * fieldBytes)
            }
        }
        return true
    }

    func scan(_ key: String, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let ordered else { throw StoreError("this Ferrite store was opened without its ordered index") }
        let records = ordered.values(from: key, limit: count)
        for (index, record) in records.enumerated() { record.copyFields(into: buffer.baseAddress! + index * recordBytes) }
        return records.count
    }

    var storedBytes: Int {
        var info = stat()
        var log = stat()
        let pool = stat(path, &info) == 0 ? Int(info.st_blocks) * 512 : 0
        return pool + (stat(Heap.logPath(forPool: path), &log) == 0 ? Int(log.st_blocks) * 512 : 0)
    }

    func close() {
        if let stats = heap.storageStatistics {
            // How well group commit batched: load and run together.
            let perSync = Double(stats.logRecords) / Double(max(stats.logSyncs, 1))
            FileHandle.standardError.write(Data(("\(path): \(stats.logRecords) log records in \(stats.logSyncs) syncs "
                + "(\(String(format: "%.1f", perSync)) per sync), \(stats.checkpoints) checkpoints\n").utf8))
        }
        heap.close()
    }
}

// MARK: - SQLite

/// SQLite (WAL, synchronous FULL or NORMAL): one connection per thread, taken from a pool.
final class SQLiteStore: YCSBStore, @unchecked Sendable {
    let path: String
    /// A connection, used by one thread at a time.
    final class Connection: @unchecked Sendable {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
    }
    private let connections: Mutex<[Connection]>

    init(path: String, full: Bool, threads: Int) throws {
        self.path = path
        var opened: [Connection] = []
        for _ in 0..<threads {
            guard let connection = ycsb_sqlite_open(path, full ? 1 : 0) else { throw StoreError("cannot open SQLite at \(path)") }
            opened.append(Connection(connection))
        }
        connections = Mutex(opened)
    }

    private func withConnection<R>(_ body: (OpaquePointer) throws -> R) throws -> R {
        guard let connection = connections.withLock({ $0.popLast() }) else { throw StoreError("more threads than SQLite connections") }
        defer { connections.withLock { $0.append(connection) } }
        return try body(connection.pointer)
    }

    private func check(_ result: Int32, _ what: String) throws -> Bool {
        if result < 0 { throw StoreError("SQLite \(what) failed") }
        return result == 0
    }

    func insertBatch(_ keys: [String], _ records: UnsafeRawBufferPointer) throws {
        try withConnection { db in
            _ = try check(ycsb_sqlite_begin(db), "begin")
            for (index, key) in keys.enumerated() {
                _ = try check(ycsb_sqlite_insert(db, key, key.utf8.count, records.baseAddress! + index * recordBytes), "insert")
            }
            _ = try check(ycsb_sqlite_commit(db), "commit")
        }
    }

    func insert(_ key: String, _ record: UnsafeRawBufferPointer) throws {
        try withConnection { db in _ = try check(ycsb_sqlite_insert(db, key, key.utf8.count, record.baseAddress), "insert") }
    }

    func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        try withConnection { db in try check(ycsb_sqlite_read(db, key, key.utf8.count, buffer.baseAddress), "read") }
    }

    func update(_ key: String, field: Int, _ value: UnsafeRawBufferPointer) throws -> Bool {
        try withConnection { db in try check(ycsb_sqlite_update(db, key, key.utf8.count, Int32(field), value.baseAddress), "update") }
    }

    func scan(_ key: String, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try withConnection { db in
            let rows = ycsb_sqlite_scan(db, key, key.utf8.count, Int32(count), buffer.baseAddress)
            if rows < 0 { throw StoreError("SQLite scan failed") }
            return Int(rows)
        }
    }

    var storedBytes: Int { directoryBytes((path as NSString).deletingLastPathComponent) }

    func close() { connections.withLock { for connection in $0 { ycsb_sqlite_close(connection.pointer) }; $0 = [] } }
}

// MARK: - LMDB

/// LMDB (durable, or MDB_NOSYNC): one environment, key -> the record's 1,000 bytes.
final class LMDBStore: YCSBStore, @unchecked Sendable {
    let directory: String
    let db: OpaquePointer

    init(directory: String, nosync: Bool) throws {
        self.directory = directory
        guard let db = ycsb_lmdb_open(directory, 64 << 30, nosync ? 1 : 0) else { throw StoreError("cannot open LMDB in \(directory)") }
        self.db = db
    }

    func insertBatch(_ keys: [String], _ records: UnsafeRawBufferPointer) throws {
        let cKeys = keys.map { strdup($0)! }
        defer { cKeys.forEach { free($0) } }
        let lengths = keys.map { $0.utf8.count }
        let pointers = cKeys.map { UnsafePointer<CChar>($0) as UnsafePointer<CChar>? }
        if ycsb_lmdb_insert_batch(db, pointers, lengths, records.baseAddress, Int32(keys.count)) != 0 { throw StoreError("LMDB insert failed") }
    }

    func insert(_ key: String, _ record: UnsafeRawBufferPointer) throws {
        if ycsb_lmdb_insert(db, key, key.utf8.count, record.baseAddress) != 0 { throw StoreError("LMDB insert failed") }
    }

    func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        let result = ycsb_lmdb_read(db, key, key.utf8.count, buffer.baseAddress)
        if result < 0 { throw StoreError("LMDB read failed") }
        return result == 0
    }

    func update(_ key: String, field: Int, _ value: UnsafeRawBufferPointer) throws -> Bool {
        let result = ycsb_lmdb_update(db, key, key.utf8.count, Int32(field), value.baseAddress)
        if result < 0 { throw StoreError("LMDB update failed") }
        return result == 0
    }

    func scan(_ key: String, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let rows = ycsb_lmdb_scan(db, key, key.utf8.count, Int32(count), buffer.baseAddress)
        if rows < 0 { throw StoreError("LMDB scan failed") }
        return Int(rows)
    }

    var storedBytes: Int { directoryBytes(directory) }

    func close() { ycsb_lmdb_close(db) }
}

// MARK: - Marshalled records in a file

/// The file-store baseline of J-NVM's evaluation: each record is encoded with Codable (JSON) and
/// written to a file; an in-memory index maps keys to where their latest encoding lies. Reads
/// decode, updates decode, change a field, encode and append. (No fsync: like J-NVM's file
/// backend on tmpfs, it survives a process crash, not a power loss; no ordered index, so no scans.)
final class MarshalStore: YCSBStore, @unchecked Sendable {
    struct Record: Codable {
        var fields: [Data]
    }
    let path: String
    let descriptor: Int32
    private let state = Mutex<(index: [String: (offset: Int, length: Int)], end: Int)>(([:], 0))

    init(path: String) throws {
        self.path = path
        descriptor = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        if descriptor < 0 { throw StoreError("cannot create \(path)") }
    }

    private func append(_ key: String, _ record: Record) throws {
        let encoded = try JSONEncoder().encode(record)
        let offset = state.withLock { state -> Int in
            let offset = state.end
            state.end += encoded.count
            return offset
        }
        let written = encoded.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        if written != encoded.count { throw StoreError("write to \(path) failed") }
        state.withLock { $0.index[key] = (offset, encoded.count) }
    }

    private func load(_ key: String) throws -> Record? {
        guard let place = state.withLock({ $0.index[key] }) else { return nil }
        var data = Data(count: place.length)
        let read = data.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, place.length, off_t(place.offset)) }
        if read != place.length { throw StoreError("read from \(path) failed") }
        return try JSONDecoder().decode(Record.self, from: data)
    }

    private static func record(_ bytes: UnsafeRawBufferPointer) -> Record {
        Record(fields: (0..<fieldCount).map { Data(bytes[$0 * fieldBytes ..< ($0 + 1) * fieldBytes]) })
    }

    func insertBatch(_ keys: [String], _ records: UnsafeRawBufferPointer) throws {
        for (index, key) in keys.enumerated() {
            try append(key, Self.record(UnsafeRawBufferPointer(rebasing: records[index * recordBytes ..< (index + 1) * recordBytes])))
        }
    }

    func insert(_ key: String, _ record: UnsafeRawBufferPointer) throws { try append(key, Self.record(record)) }

    func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        guard let record = try load(key) else { return false }
        for (index, field) in record.fields.enumerated() { field.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: buffer[index * fieldBytes ..< (index + 1) * fieldBytes])) }
        return true
    }

    func update(_ key: String, field: Int, _ value: UnsafeRawBufferPointer) throws -> Bool {
        guard var record = try load(key) else { return false }
        record.fields[field] = Data(value)
        try append(key, record)
        return true
    }

    func scan(_ key: String, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        throw StoreError("marshal keeps no ordered index: no scans")
    }

    var storedBytes: Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_blocks) * 512 : 0
    }

    func close() { Foundation.close(descriptor) }
}

// MARK: - Swift's Dictionary

/// The volatile upper bound: a Swift Dictionary of records under a lock. Nothing survives the
/// process; no ordered index, so no scans.
final class DictionaryStore: YCSBStore, @unchecked Sendable {
    private let table = Mutex<[String: [UInt8]]>([:])

    func insertBatch(_ keys: [String], _ records: UnsafeRawBufferPointer) throws {
        table.withLock { table in
            for (index, key) in keys.enumerated() { table[key] = Array(records[index * recordBytes ..< (index + 1) * recordBytes]) }
        }
    }

    func insert(_ key: String, _ record: UnsafeRawBufferPointer) throws {
        let bytes = Array(record)
        table.withLock { $0[key] = bytes }
    }

    func read(_ key: String, into buffer: UnsafeMutableRawBufferPointer) throws -> Bool {
        table.withLock { table in
            guard let record = table[key] else { return false }
            record.withUnsafeBytes { buffer.copyMemory(from: $0) }
            return true
        }
    }

    func update(_ key: String, field: Int, _ value: UnsafeRawBufferPointer) throws -> Bool {
        table.withLock { table in
            guard table[key] != nil else { return false }
            table[key]!.withUnsafeMutableBytes { (UnsafeMutableRawBufferPointer(rebasing: $0[field * fieldBytes ..< (field + 1) * fieldBytes])).copyMemory(from: value) }
            return true
        }
    }

    func scan(_ key: String, count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        throw StoreError("Dictionary keeps no order: no scans")
    }

    var storedBytes: Int { 0 }
    func close() { table.withLock { $0 = [:] } }
}
