import CFerriteShim
import FerriteMedium

/// One log slot's undo records: their format, and rolling them back.
///
/// A slot starts with a 64-byte header whose first word is the slot state: `seq << 1 | active`.
/// Records follow, each `kind u32, length u32, offset u64, payload (padded to 8), checksum u64`,
/// where the checksum covers everything before it and is seeded with the transaction's sequence
/// number, so records left over from an earlier transaction in the same slot never validate.
enum UndoRecord {
    /// Restore `length` bytes at pool offset `offset` from the payload.
    static let data: UInt32 = 1
    /// The payload lists small blocks this transaction allocated: on rollback, clear their bits.
    static let allocations: UInt32 = 2
    /// The payload lists small blocks this transaction freed: on rollback, set their bits again.
    static let frees: UInt32 = 3

    static let headerBytes = 16
    static func size(payload: Int) -> Int { headerBytes + payload.roundedUp(to: 8) + 8 }
}

struct UndoLog {
    let slot: UnsafeMutableRawPointer
    let capacity: Int

    static func state(seq: UInt64, active: Bool) -> UInt64 { seq << 1 | (active ? 1 : 0) }

    var state: UInt64 { ferrite_atomic_load_u64(slot) }
    var isActive: Bool { state & 1 == 1 }
    var seq: UInt64 { state >> 1 }

    /// Writes a record at `cursor` (which it advances); returns false when the slot is full.
    func append(kind: UInt32, offset: UInt64, payload: UnsafeRawPointer?, length: Int, seq: UInt64, cursor: inout Int) -> Bool {
        let size = UndoRecord.size(payload: length)
        guard cursor + size <= capacity else { return false }
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
        return true
    }

    /// The valid records of transaction `seq`, in the order they were written.
    func records(seq: UInt64) -> [(kind: UInt32, offset: UInt64, payload: UnsafeMutableRawPointer, length: Int)] {
        var result: [(UInt32, UInt64, UnsafeMutableRawPointer, Int)] = []
        var cursor = PoolLayout.logSlotHeaderSize
        while cursor + UndoRecord.size(payload: 0) <= capacity {
            let record = slot + cursor
            let kind = record.load(fromByteOffset: 0, as: UInt32.self)
            let length = Int(record.load(fromByteOffset: 4, as: UInt32.self))
            guard (UndoRecord.data...UndoRecord.frees).contains(kind), cursor + UndoRecord.size(payload: length) <= capacity else { break }
            let padded = length.roundedUp(to: 8)
            let sum = Checksum.hash(record, count: UndoRecord.headerBytes + padded, seed: seq)
            guard sum == record.load(fromByteOffset: UndoRecord.headerBytes + padded, as: UInt64.self) else { break }
            result.append((kind, record.load(fromByteOffset: 8, as: UInt64.self), record + UndoRecord.headerBytes, length))
            cursor += UndoRecord.size(payload: length)
        }
        return result
    }

    /// Undoes every valid record of the active transaction, newest first, makes the result
    /// durable, then marks the slot idle. Idempotent: a crash during rollback rolls back again.
    /// Returns how many records were undone.
    @discardableResult
    func rollBack(base: UnsafeMutableRawPointer, poolSize: Int, allocator: Allocator, medium: any PersistenceMedium) -> Int {
        let seq = self.seq
        let undo = records(seq: seq)
        for record in undo.reversed() {
            switch record.kind {
            case UndoRecord.data:
                let offset = Int(record.offset)
                guard offset >= 0, offset + record.length <= poolSize else { continue }
                (base + offset).copyMemory(from: record.payload, byteCount: record.length)
                medium.flush(base + offset, count: record.length)
            case UndoRecord.allocations, UndoRecord.frees:
                for i in 0..<record.length / 8 {
                    let block = Int(record.payload.load(fromByteOffset: i * 8, as: UInt64.self))
                    allocator.setBit(block, allocated: record.kind == UndoRecord.frees)
                }
            default:
                break
            }
        }
        medium.fence()
        ferrite_atomic_store_u64(slot, Self.state(seq: seq, active: false))
        medium.persist(slot, count: 8)
        return undo.count
    }
}
