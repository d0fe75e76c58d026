import CFerriteShim
import FerriteMedium

/// The kinds of records in a log slot (see docs/pool-format.md).
///
/// A slot holds the redo log of one committed transaction: an 8-byte header with the transaction's
/// commit number, then records `kind u32, length u32, offset u64, payload (padded to 8),
/// checksum u64`. Each checksum covers its record and is seeded with the commit number, so
/// records left over from an earlier use of the slot never validate.
enum LogRecordKind {
    /// The new bytes of the range at `offset`.
    static let data: UInt32 = 1
    /// Blocks allocated, as (block, bytes used) pairs: their bits are set.
    static let allocations: UInt32 = 2
    /// Blocks freed, as (block, capacity) pairs: their bits are cleared.
    static let frees: UInt32 = 3
    /// Chunk-table words, as (chunk index, new value) pairs.
    static let chunks: UInt32 = 4
    /// The last record: the transaction is complete in the log.
    static let commit: UInt32 = 5

    static let headerBytes = 16
    static func size(payload: Int) -> Int { headerBytes + payload.roundedUp(to: 8) + 8 }
}

/// A parsed record: where its payload lies in the slot.
struct LogRecord {
    var kind: UInt32
    var offset: UInt64
    var payload: UnsafeMutableRawPointer
    var length: Int

    /// The pairs of an allocations, frees or chunks record.
    func pairs() -> [(UInt64, UInt64)] {
        (0..<length / 16).map {
            (payload.load(fromByteOffset: $0 * 16, as: UInt64.self), payload.load(fromByteOffset: $0 * 16 + 8, as: UInt64.self))
        }
    }
}

/// One log slot, in the durable view.
struct RedoLog {
    let slot: UnsafeMutableRawPointer
    let capacity: Int

    /// The commit number stored in the slot header.
    var seq: UInt64 { ferrite_atomic_load_u64(slot) }

    /// Writes a record at `cursor` (which it advances); false when the slot is full.
    func append(kind: UInt32, offset: UInt64, payload: UnsafeRawPointer?, length: Int, seq: UInt64, cursor: inout Int) -> Bool {
        let size = LogRecordKind.size(payload: length)
        guard cursor + size <= capacity else { return false }
        let record = slot + cursor
        record.storeBytes(of: kind, toByteOffset: 0, as: UInt32.self)
        record.storeBytes(of: UInt32(length), toByteOffset: 4, as: UInt32.self)
        record.storeBytes(of: offset, toByteOffset: 8, as: UInt64.self)
        let padded = length.roundedUp(to: 8)
        if let payload, length > 0 { (record + LogRecordKind.headerBytes).copyMemory(from: payload, byteCount: length) }
        if padded > length { (record + LogRecordKind.headerBytes + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
        let sum = Checksum.hash(record, count: LogRecordKind.headerBytes + padded, seed: seq)
        record.storeBytes(of: sum, toByteOffset: LogRecordKind.headerBytes + padded, as: UInt64.self)
        cursor += size
        return true
    }

    /// The records of transaction `seq` if its log is complete (ends with a valid COMMIT record),
    /// else nil.
    func committedRecords(seq: UInt64) -> [LogRecord]? {
        var result: [LogRecord] = []
        var cursor = PoolLayout.logSlotHeaderSize
        while cursor + LogRecordKind.size(payload: 0) <= capacity {
            let record = slot + cursor
            let kind = record.load(fromByteOffset: 0, as: UInt32.self)
            let length = Int(record.load(fromByteOffset: 4, as: UInt32.self))
            guard (LogRecordKind.data...LogRecordKind.commit).contains(kind), cursor + LogRecordKind.size(payload: length) <= capacity else { return nil }
            let padded = length.roundedUp(to: 8)
            let sum = Checksum.hash(record, count: LogRecordKind.headerBytes + padded, seed: seq)
            guard sum == record.load(fromByteOffset: LogRecordKind.headerBytes + padded, as: UInt64.self) else { return nil }
            if kind == LogRecordKind.commit { return result }
            result.append(LogRecord(kind: kind, offset: record.load(fromByteOffset: 8, as: UInt64.self),
                                    payload: record + LogRecordKind.headerBytes, length: length))
            cursor += LogRecordKind.size(payload: length)
        }
        return nil
    }

    /// Applies committed records to the durable view (and bitmap and chunk-table words to the
    /// working view too), writing back every range it changes. Idempotent. Does not fence.
    static func apply(_ records: [LogRecord], allocator: Allocator, poolSize: Int) {
        visit(records, allocator: allocator, poolSize: poolSize, applying: true)
    }

    /// Writes back (without applying) every durable range the records change: what another thread
    /// must flush to make this transaction's applied effects durable with its own fence.
    static func flushApplied(_ records: [LogRecord], allocator: Allocator, poolSize: Int) {
        visit(records, allocator: allocator, poolSize: poolSize, applying: false)
    }

    private static func visit(_ records: [LogRecord], allocator: Allocator, poolSize: Int, applying: Bool) {
        let domain = allocator.domain
        for record in records {
            switch record.kind {
            case LogRecordKind.data:
                let offset = Int(truncatingIfNeeded: record.offset)
                guard offset >= 0, record.length >= 0, offset <= poolSize - record.length else { continue }
                if applying { (allocator.durable + offset).copyMemory(from: record.payload, byteCount: record.length) }
                domain.flush(allocator.durable + offset, count: record.length)
            case LogRecordKind.allocations, LogRecordKind.frees:
                for (block, _) in record.pairs() {
                    let offset = Int(truncatingIfNeeded: block)
                    if applying {
                        allocator.setBit(offset, allocated: record.kind == LogRecordKind.allocations)
                    } else if let location = allocator.locateSmall(offset) {
                        domain.flush(allocator.durable + (UnsafeMutableRawPointer(location.bitmap + location.word) - allocator.base), count: 8)
                    }
                }
            case LogRecordKind.chunks:
                for (index, value) in record.pairs() where index < UInt64(allocator.layout.maxChunks) {
                    if applying {
                        allocator.writeChunkEntry(Int(index), value)
                    } else {
                        domain.flush(allocator.durable + allocator.layout.chunkTableOffset + Int(index) * 8, count: 8)
                    }
                }
            default:
                break
            }
        }
    }
}
