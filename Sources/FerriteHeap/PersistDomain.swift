import CFerriteShim
import FerriteMedium

/// The medium, plus the bookkeeping that lets a transaction commit with a single fence.
///
/// A transaction's commit fence makes its redo log durable; its effects are then applied to the
/// durable view and written back *without* a fence. Those effects become durable at the next fence
/// of the committing thread, or at the next fence of any thread that writes them back itself
/// (every fence does so for every other thread's applied transactions). Once a fence has made a
/// transaction's effects durable, it is *retired*.
///
/// The *applied watermark* W, kept in the pool header, is the commit number below which every
/// transaction is retired. Recovery replays the committed logs above W, in commit order. A log slot
/// is reused, and space a transaction freed is handed out again, only once W has passed the
/// transaction durably, so recovery never replays a log over newer data.
final class PersistDomain: @unchecked Sendable {
    let medium: any PersistenceMedium
    private let durable: UnsafeMutableRawPointer
    private let layout: PoolLayout
    /// Set by the heap once its allocator exists.
    unowned(unsafe) var allocator: Allocator!
    var poolSize: () -> Int = { 0 }

    private let lock = Lock()
    private var nextSeq: UInt64
    /// Commit numbers handed out and not yet retired.
    private var inFlight: [UInt64] = []
    /// Applied, not yet retired transactions: their slot, and who applied them.
    private var applied: [(seq: UInt64, slot: Int, owner: ObjectIdentifier)] = []
    /// The watermark a fence may store next: every commit up to it is retired.
    private var retiredW: UInt64
    /// The highest watermark stored in the header so far, and the highest known durable.
    private var storedW: UInt64
    private var durableW: UInt64 {
        get { ferrite_atomic_load_u64(durableWord) }
        set { ferrite_atomic_store_u64(durableWord, newValue) }
    }
    private let durableWord: UnsafeMutablePointer<UInt64>
    /// Per slot: the commit number of the transaction last logged in it (read without the lock).
    private let slotSeq: UnsafeMutablePointer<UInt64>
    /// Space freed by transactions, released when the watermark durably passes them.
    private var deferred: [(seq: UInt64, release: [UInt64], hugeRuns: [(Int, Int)])] = []
    /// Non-zero when a fence has retirement work to do (lock-free fast path otherwise).
    private let work: UnsafeMutablePointer<UInt64>

    init(medium: any PersistenceMedium, durable: UnsafeMutableRawPointer, layout: PoolLayout, watermark: UInt64, highestSeq: UInt64, slotSeqs: [UInt64]) {
        self.medium = medium
        self.durable = durable
        self.layout = layout
        self.nextSeq = max(watermark, highestSeq) + 1
        self.retiredW = watermark
        self.storedW = watermark
        durableWord = .allocate(capacity: 1)
        durableWord.initialize(to: watermark)
        slotSeq = .allocate(capacity: slotSeqs.count)
        slotSeq.initialize(from: slotSeqs, count: slotSeqs.count)
        work = .allocate(capacity: 1)
        work.initialize(to: 0)
    }

    deinit {
        work.deallocate()
        durableWord.deallocate()
        slotSeq.deallocate()
    }

    /// The watermark known to be durable in the header.
    var durableWatermark: UInt64 { durableW }

    @inline(__always) func flush(_ address: UnsafeRawPointer, count: Int) { medium.flush(address, count: count) }

    // MARK: Commits

    /// Hands out the next commit number.
    func beginCommit() -> UInt64 {
        lock.withLock {
            let seq = nextSeq
            nextSeq += 1
            inFlight.append(seq)
            return seq
        }
    }

    /// Takes back a commit number whose transaction failed before its commit fence.
    func abandonCommit(_ seq: UInt64) {
        lock.withLock {
            if let i = inFlight.firstIndex(of: seq) { inFlight.remove(at: i) }
            retiredW = (inFlight.min() ?? nextSeq) - 1
            ferrite_atomic_store_u64(work, 1)
        }
    }

    /// Records that transaction `seq`, logged in `slot`, is applied (written back, not fenced).
    /// `freed` and `freedHuge` are released once it is durably retired.
    func didApply(seq: UInt64, slot: Int, owner: ObjectIdentifier, freed: [UInt64], freedHuge: [(Int, Int)]) {
        lock.withLock {
            applied.append((seq, slot, owner))
            ferrite_atomic_store_u64(slotSeq + slot, seq)
            if !freed.isEmpty || !freedHuge.isEmpty { deferred.append((seq, freed, freedHuge)) }
            ferrite_atomic_store_u64(work, 1)
        }
    }

    /// Whether `slot` may take a new log: its last transaction is durably retired.
    func isReusable(_ slot: Int) -> Bool {
        ferrite_atomic_load_u64(slotSeq + slot) <= durableW
    }

    // MARK: Fences

    /// Fences, retiring applied transactions: first stores the watermark and writes back every
    /// other thread's applied effects, so that this fence makes them durable too.
    func fence(owner: ObjectIdentifier? = nil) {
        if ferrite_atomic_load_u64(work) == 0 {
            medium.fence()
            return
        }
        lock.lock()
        let retiring = applied
        // Store (and write back) the watermark ourselves, so that our fence makes it durable.
        // Under the lock, stores happen in increasing order.
        let watermark = max(retiredW, storedW)
        let storing = watermark > durableW
        if storing {
            storedW = watermark
            ferrite_atomic_store_u64(durable + PoolLayout.offAppliedSeq, watermark)
            medium.flush(durable + PoolLayout.offAppliedSeq, count: 8)
        }
        lock.unlock()
        for entry in retiring where entry.owner != owner {
            let log = RedoLog(slot: durable + layout.logSlotOffset(entry.slot), capacity: layout.logSlotSize)
            if log.seq == entry.seq, let records = log.committedRecords(seq: entry.seq) {
                RedoLog.flushApplied(records, allocator: allocator, poolSize: poolSize())
            }
        }
        medium.fence()
        var released: [(seq: UInt64, release: [UInt64], hugeRuns: [(Int, Int)])] = []
        lock.withLock {
            if !retiring.isEmpty {
                let seqs = Set(retiring.map(\.seq))
                applied.removeAll { seqs.contains($0.seq) }
                inFlight.removeAll { seqs.contains($0) }
                retiredW = (inFlight.min() ?? nextSeq) - 1
            }
            if storing && watermark > durableW { durableW = watermark }
            if !deferred.isEmpty {
                released = deferred.filter { $0.seq <= durableW }
                deferred.removeAll { $0.seq <= durableW }
            }
            let idle = applied.isEmpty && retiredW == storedW && storedW == durableW && deferred.isEmpty
            ferrite_atomic_store_u64(work, idle ? 0 : 1)
        }
        for entry in released {
            for block in entry.release { allocator.releaseFreed(Int(block)) }
            for run in entry.hugeRuns { allocator.settleHuge(index: run.0, count: run.1, allocated: false) }
        }
    }

    /// Whether freed space waits for its transaction to be retired.
    var hasDeferredReleases: Bool { lock.withLock { !deferred.isEmpty } }

    /// Retires every applied transaction and makes the watermark durable (two fences), releasing
    /// the space they freed. Must not be called with an allocator lock held.
    func retire() {
        fence()
        fence()
    }

    /// Writes back a range and fences: the range is durable when this returns.
    func persist(_ address: UnsafeRawPointer, count: Int) {
        medium.flush(address, count: count)
        fence()
    }
}
