import CFerriteShim
import FerriteMedium

/// The kinds of records in a log slot (see docs/pool-format.md).
///
/// A record is `kind u32, length u32, offset u64, payload (padded to 8), checksum u64`; the
/// checksum covers everything before it and is seeded with the transaction's sequence number, so
/// records left over from an earlier transaction in the same slot never validate.
enum UndoRecord {
    /// The old bytes of the range at `offset` (`length` bytes). Undo: copy them back.
    static let data: UInt32 = 1
    /// Blocks this transaction allocated, as (block, bytes used) pairs. Undo: clear their bits.
    static let allocations: UInt32 = 2
    /// Blocks this transaction freed, as (block, block capacity) pairs. Undo: set their bits.
    static let frees: UInt32 = 3
    /// The commit record: a hash of every effect of the transaction (see ``UndoLog/commitHash``).
    static let commit: UInt32 = 4

    static let headerBytes = 16
    static func size(payload: Int) -> Int { headerBytes + payload.roundedUp(to: 8) + 8 }
}

/// A parsed record: where its payload lies in the slot.
struct LogRecord {
    var kind: UInt32
    var offset: UInt64
    var payload: UnsafeMutableRawPointer
    var length: Int

    /// The (block, bytes) pairs of an allocations or frees record.
    func pairs() -> [(block: Int, bytes: Int)] {
        (0..<length / 16).map {
            (Int(truncatingIfNeeded: payload.load(fromByteOffset: $0 * 16, as: UInt64.self)),
             Int(truncatingIfNeeded: payload.load(fromByteOffset: $0 * 16 + 8, as: UInt64.self)))
        }
    }
}

/// One log slot.
struct UndoLog {
    let slot: UnsafeMutableRawPointer
    let capacity: Int

    static func state(seq: UInt64, active: Bool) -> UInt64 { seq << 1 | (active ? 1 : 0) }

    var state: UInt64 { ferrite_atomic_load_u64(slot) }
    var isActive: Bool { state & 1 == 1 }
    var seq: UInt64 { state >> 1 }

    /// Writes a record at `cursor` (which it advances) and returns it; nil when the slot is full.
    func append(kind: UInt32, offset: UInt64, payload: UnsafeRawPointer?, length: Int, seq: UInt64, cursor: inout Int) -> LogRecord? {
        let size = UndoRecord.size(payload: length)
        guard cursor + size <= capacity else { return nil }
        let record = slot + cursor
        record.storeBytes(of: kind, toByteOffset: 0, as: UInt32.self)
        record.storeBytes(of: UInt32(length), toByteOffset: 4, as: UInt32.self)
        record.storeBytes(of: offset, toByteOffset: 8, as: UInt64.self)
        let padded = length.roundedUp(to: 8)
        if let payload, length > 0 { (record + UndoRecord.headerBytes).copyMemory(from: payload, byteCount: length) }
        if padded > length { (record + UndoRecord.headerBytes + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
        let sum = Checksum.hash(record, count: UndoRecord.headerBytes + padded, seed: seq)
        record.storeBytes(of: sum, toByteOffset: UndoRecord.headerBytes + padded, as: UInt64.self)
        cursor += size
        return LogRecord(kind: kind, offset: offset, payload: record + UndoRecord.headerBytes, length: length)
    }

    /// The valid records of transaction `seq`, in the order they were written.
    func records(seq: UInt64) -> [LogRecord] {
        var result: [LogRecord] = []
        var cursor = PoolLayout.logSlotHeaderSize
        while cursor + UndoRecord.size(payload: 0) <= capacity {
            let record = slot + cursor
            let kind = record.load(fromByteOffset: 0, as: UInt32.self)
            let length = Int(record.load(fromByteOffset: 4, as: UInt32.self))
            guard (UndoRecord.data...UndoRecord.commit).contains(kind), cursor + UndoRecord.size(payload: length) <= capacity else { break }
            let padded = length.roundedUp(to: 8)
            let sum = Checksum.hash(record, count: UndoRecord.headerBytes + padded, seed: seq)
            guard sum == record.load(fromByteOffset: UndoRecord.headerBytes + padded, as: UInt64.self) else { break }
            result.append(LogRecord(kind: kind, offset: record.load(fromByteOffset: 8, as: UInt64.self),
                                    payload: record + UndoRecord.headerBytes, length: length))
            cursor += UndoRecord.size(payload: length)
            if kind == UndoRecord.commit { break }
        }
        return result
    }

    /// The hash a COMMIT record holds: every effect of the transaction, as the pool holds it now.
    ///
    /// It covers the current bytes of every logged range (except ranges inside blocks the
    /// transaction freed), the allocation state and bytes of every block it allocated (unless it
    /// also freed it), and the allocation state of every block it freed. When a crash leaves the
    /// COMMIT record durable but some effect not, the hash differs and the transaction is rolled
    /// back; when it matches, every effect is durable and the transaction is committed.
    static func commitHash(records: [LogRecord], seq: UInt64, base: UnsafeMutableRawPointer, poolSize: Int, allocator: Allocator) -> UInt64 {
        var hasher = StreamHasher(seed: seq)
        var freed: [(block: Int, bytes: Int)] = []
        for record in records where record.kind == UndoRecord.frees { freed.append(contentsOf: record.pairs()) }
        func insideFreed(_ offset: Int, _ length: Int) -> Bool {
            freed.contains { offset >= $0.block && offset + length <= $0.block + $0.bytes }
        }
        func inPool(_ offset: Int, _ length: Int) -> Bool { offset >= 0 && length >= 0 && offset <= poolSize - length }
        for record in records {
            switch record.kind {
            case UndoRecord.data:
                let offset = Int(truncatingIfNeeded: record.offset)
                if insideFreed(offset, record.length) { continue }
                if inPool(offset, record.length) { hasher.add(base + offset, count: record.length) } else { hasher.add(~0) }
            case UndoRecord.allocations:
                for (block, bytes) in record.pairs() where !freed.contains(where: { $0.block == block }) {
                    hasher.add(allocator.isLive(block) ? 1 : 0)
                    if inPool(block, bytes) { hasher.add(base + block, count: bytes) } else { hasher.add(~0) }
                }
            case UndoRecord.frees:
                for (block, _) in record.pairs() { hasher.add(allocator.isLive(block) ? 1 : 0) }
            default:
                break
            }
        }
        return hasher.value
    }

    /// Settles an active slot at recovery: if its transaction committed (a valid COMMIT record
    /// whose hash matches the pool), it is kept; otherwise it is rolled back. Either way the slot
    /// ends durably idle. Idempotent: a crash while settling settles the same way again.
    /// Returns whether the transaction was rolled back, and how many records were undone.
    func settle(base: UnsafeMutableRawPointer, poolSize: Int, allocator: Allocator, domain: PersistDomain) -> (rolledBack: Bool, undone: Int) {
        let seq = self.seq
        let found = records(seq: seq)
        if let last = found.last, last.kind == UndoRecord.commit, last.length == 8,
           last.payload.load(as: UInt64.self) == Self.commitHash(records: found.dropLast(), seq: seq, base: base, poolSize: poolSize, allocator: allocator) {
            ferrite_atomic_store_u64(slot, Self.state(seq: seq, active: false))
            domain.persist(slot, count: 8)
            return (false, 0)
        }
        return (true, rollBack(records: found, base: base, poolSize: poolSize, allocator: allocator, domain: domain))
    }

    /// Undoes `records` newest first, makes the result durable, then marks the slot idle.
    @discardableResult
    func rollBack(records: [LogRecord], base: UnsafeMutableRawPointer, poolSize: Int, allocator: Allocator, domain: PersistDomain) -> Int {
        for record in records.reversed() {
            switch record.kind {
            case UndoRecord.data:
                let offset = Int(truncatingIfNeeded: record.offset)
                guard offset >= 0, record.length >= 0, offset <= poolSize - record.length else { continue }
                (base + offset).copyMemory(from: record.payload, byteCount: record.length)
                domain.flush(base + offset, count: record.length)
            case UndoRecord.allocations, UndoRecord.frees:
                for (block, _) in record.pairs() { allocator.setBit(block, allocated: record.kind == UndoRecord.frees) }
            default:
                break
            }
        }
        domain.fence()
        ferrite_atomic_store_u64(slot, Self.state(seq: seq, active: false))
        domain.persist(slot, count: 8)
        return records.count
    }
}
