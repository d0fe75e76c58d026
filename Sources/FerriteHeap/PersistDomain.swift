import CFerriteShim
import FerriteMedium

/// The medium, plus the log slots whose transactions committed but whose idle mark may not be
/// durable yet.
///
/// A transaction commits with one fence that makes its data and its COMMIT record durable; it then
/// marks its slot idle without fencing. Until that mark is durable, recovery would re-examine the
/// slot, and must not find the transaction's data changed by a later transaction. So every fence
/// Ferrite issues first writes back the header of every such slot: no transaction changes
/// persistent state before one of its own fences, so by the time anyone changes committed data,
/// the committed transaction's slot is durably idle.
final class PersistDomain: @unchecked Sendable {
    let medium: any PersistenceMedium
    private let base: UnsafeMutableRawPointer
    private let layout: PoolLayout
    /// Per slot: the sequence number + 1 of a transaction whose idle mark is not yet durable, or 0.
    private let pending: UnsafeMutablePointer<UInt64>
    /// Bit i set: slot i may be pending (bit 63 stands for every slot from 63 on).
    private let summary: UnsafeMutablePointer<UInt64>

    init(medium: any PersistenceMedium, base: UnsafeMutableRawPointer, layout: PoolLayout) {
        self.medium = medium
        self.base = base
        self.layout = layout
        pending = .allocate(capacity: layout.logSlotCount)
        pending.initialize(repeating: 0, count: layout.logSlotCount)
        summary = .allocate(capacity: 1)
        summary.initialize(to: 0)
    }

    deinit {
        pending.deallocate()
        summary.deallocate()
    }

    @inline(__always) private static func bit(_ slot: Int) -> UInt64 { 1 << UInt64(Swift.min(slot, 63)) }

    @inline(__always) func flush(_ address: UnsafeRawPointer, count: Int) { medium.flush(address, count: count) }

    /// Fences, after writing back the headers of slots awaiting a durable idle mark; then those
    /// slots are settled.
    func fence() {
        let mask = ferrite_atomic_load_u64(summary)
        if mask == 0 {
            medium.fence()
            return
        }
        let count = layout.logSlotCount
        withUnsafeTemporaryAllocation(of: (slot: Int, value: UInt64).self, capacity: count) { settled in
            var n = 0
            for slot in 0..<count where mask & Self.bit(slot) != 0 {
                let value = ferrite_atomic_load_u64(pending + slot)
                if value != 0 {
                    medium.flush(base + layout.logSlotOffset(slot), count: 8)
                    settled[n] = (slot, value)
                    n += 1
                }
            }
            medium.fence()
            for i in 0..<n {
                let (slot, value) = settled[i]
                if ferrite_atomic_cas_u64(pending + slot, value, 0) != 0 {
                    _ = ferrite_atomic_fetch_and_u64(summary, ~Self.bit(slot))
                    // Another slot sharing bit 63, or a new mark, may still be pending: re-set.
                    for other in (slot < 63 ? slot..<slot + 1 : 63..<count) where ferrite_atomic_load_u64(pending + other) != 0 {
                        _ = ferrite_atomic_fetch_or_u64(summary, Self.bit(other))
                    }
                }
            }
        }
    }

    /// Writes back a range and fences: the range is durable when this returns.
    func persist(_ address: UnsafeRawPointer, count: Int) {
        medium.flush(address, count: count)
        fence()
    }

    /// Records that `slot`'s idle mark (for transaction `seq`) was stored and written back, but
    /// not fenced. Call before releasing the slot and before releasing anything the transaction held.
    func markIdlePending(slot: Int, seq: UInt64) {
        ferrite_atomic_store_u64(pending + slot, seq &+ 1)
        _ = ferrite_atomic_fetch_or_u64(summary, Self.bit(slot))
    }

    /// Whether `slot`'s idle mark may not be durable yet (then it must not be reused).
    func isIdlePending(_ slot: Int) -> Bool { ferrite_atomic_load_u64(pending + slot) != 0 }
}
