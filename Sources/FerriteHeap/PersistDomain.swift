import CFerriteShim
import FerriteMedium
#if canImport(Glibc)
import Glibc
#endif

/// One thread's commits that are applied but not yet retired, and the space they freed.
///
/// Owned by a ``TransactionContext``; another thread touches it only to retire its commits on its
/// behalf (when it stays idle while the watermark is needed), under `lock`.
final class CommitLane: @unchecked Sendable {
    /// Taken by the owner on every commit and by others only to retire on its behalf: a spinlock.
    let lock = SpinLock()
    /// Applied, unretired commits: (commit number, log slot). Guarded by `lock`.
    @exclusivity(unchecked) var applied: [(seq: UInt64, slot: Int)] = []
    /// Space freed by commits, released when the watermark durably passes them. Guarded by `lock`.
    @exclusivity(unchecked) var deferred: [(seq: UInt64, blocks: [UInt64], hugeRuns: [(Int, Int)])] = []
    /// The commit in progress (between taking a number and being applied), or 0.
    @exclusivity(unchecked) var current: UInt64 = 0
    /// The lowest commit number this lane holds unretired, or UInt64.max: read by any thread.
    let lowest: UnsafeMutablePointer<UInt64>

    init() {
        // A cache line of its own: every commit of this lane writes it.
        lowest = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: UInt64.self, capacity: 1)
        lowest.initialize(to: .max)
    }

    deinit { UnsafeMutableRawPointer(lowest).deallocate() }

    /// Recomputes `lowest` from `applied` and `current`. Lock held.
    func publishLowest() {
        var value = current == 0 ? UInt64.max : current
        for entry in applied where entry.seq < value { value = entry.seq }
        ferrite_atomic_store_u64(lowest, value)
    }
}

/// The medium, plus the bookkeeping that lets a transaction commit with a single fence.
///
/// A transaction's commit fence makes its redo log durable; its effects are then applied to the
/// durable view, neither written back nor fenced. They become durable at the committing thread's
/// next commit fence (it writes them back just before it), or at a fence of another thread that
/// writes them back itself from the log. Once a fence has made a transaction's effects durable, it
/// is *retired*.
///
/// The *applied watermark* W, kept in the pool header, is the commit number below which every
/// transaction is retired. Recovery replays the committed logs above W, in commit order. A log slot
/// is reused, and space a transaction freed is handed out again, only once W has durably passed
/// the transaction, so recovery never replays a log over newer data.
///
/// Each thread keeps its own ``CommitLane``: commits take a number from an atomic counter and
/// touch only their own lane, so threads do not contend. The watermark is computed from the lanes
/// now and then (every few commits, or when a slot or freed space waits for it).
final class PersistDomain: @unchecked Sendable {
    let medium: any PersistenceMedium
    private let durable: UnsafeMutableRawPointer
    private let layout: PoolLayout
    /// Set by the heap once its allocator exists.
    unowned(unsafe) var allocator: Allocator!
    var poolSize: () -> Int = { 0 }

    /// The storage of `nextSeq`, `durableWord` and `laneCount`.
    private let sharedWords: UnsafeMutableRawPointer
    /// The next commit number.
    private let nextSeq: UnsafeMutablePointer<UInt64>
    /// The watermark known durable in the header.
    private let durableWord: UnsafeMutablePointer<UInt64>
    /// Per slot, one cache line each: the commit number of the transaction last logged in it
    /// (word 0) and whether a transaction holds the slot now (word 1).
    private let slotSeq: UnsafeMutablePointer<UInt64>
    /// Guards the header's watermark and the lane registry.
    private let lock = Lock()
    @exclusivity(unchecked) private var storedW: UInt64
    /// Every lane, kept alive by `laneOwners`; read without the lock through `laneTable`.
    @exclusivity(unchecked) private var laneOwners: [CommitLane] = []
    private let laneTable: UnsafeMutablePointer<Unmanaged<CommitLane>>
    private let laneCount: UnsafeMutablePointer<UInt64>
    static let maximumLanes = 4096
    /// The lane of fences that belong to no transaction (recovery, the allocator's retire()).
    private let anonymous = CommitLane()

    /// How far the watermark may lag the commit counter before a fence stores it, and how many
    /// commits another thread's applied transaction may wait before a fence retires it on its
    /// behalf (normally its own thread's next fence does, at no extra cost), with few threads:
    /// ``fence(lane:urgent:committing:)`` raises it with the number of threads.
    static let watermarkStride: UInt64 = 16

    init(medium: any PersistenceMedium, durable: UnsafeMutableRawPointer, layout: PoolLayout, watermark: UInt64, highestSeq: UInt64, slotSeqs: [UInt64]) {
        self.medium = medium
        self.durable = durable
        self.layout = layout
        // The three shared words get 128 bytes each (a line and its prefetch buddy): the commit
        // counter is written by every commit of every thread, the durable watermark is read by
        // every commit; sharing a line, each commit of one thread would evict the other's copy.
        sharedWords = UnsafeMutableRawPointer.allocate(byteCount: 3 * 128, alignment: 128)
        nextSeq = (sharedWords + 0).bindMemory(to: UInt64.self, capacity: 1)
        nextSeq.initialize(to: max(watermark, highestSeq) + 1)
        durableWord = (sharedWords + 128).bindMemory(to: UInt64.self, capacity: 1)
        durableWord.initialize(to: watermark)
        storedW = watermark
        slotSeq = UnsafeMutableRawPointer.allocate(byteCount: slotSeqs.count * 64, alignment: 128)
            .bindMemory(to: UInt64.self, capacity: slotSeqs.count * 8)
        slotSeq.initialize(repeating: 0, count: slotSeqs.count * 8)
        for (slot, seq) in slotSeqs.enumerated() { slotSeq[slot * 8] = seq }
        laneTable = .allocate(capacity: Self.maximumLanes)
        laneCount = (sharedWords + 256).bindMemory(to: UInt64.self, capacity: 1)
        laneCount.initialize(to: 0)
        register(anonymous)
    }

    private func register(_ lane: CommitLane) {
        lock.withLock {
            let index = Int(ferrite_atomic_load_u64(laneCount))
            precondition(index < Self.maximumLanes, "more than \(Self.maximumLanes) threads use one heap at once")
            laneOwners.append(lane)
            (laneTable + index).initialize(to: Unmanaged.passUnretained(lane))
            ferrite_atomic_store_u64(laneCount, UInt64(index + 1))
        }
    }

    /// The position of `lane` in registration order.
    func laneIndex(of lane: CommitLane) -> Int {
        lock.withLock { laneOwners.firstIndex { $0 === lane } ?? 0 }
    }

    /// Calls `body` with every lane, without locking or retaining them.
    @inline(__always)
    private func forEachLane(_ body: (CommitLane) -> Void) {
        let count = Int(ferrite_atomic_load_u64(laneCount))
        for i in 0..<count { laneTable[i]._withUnsafeGuaranteedRef { body($0) } }
    }

    deinit {
        sharedWords.deallocate()
        UnsafeMutableRawPointer(slotSeq).deallocate()
        laneTable.deallocate()
    }

    @inline(__always) func flush(_ address: UnsafeRawPointer, count: Int) { medium.flush(address, count: count) }

    /// The watermark known to be durable in the header.
    var durableWatermark: UInt64 { ferrite_atomic_load_u64(durableWord) }

    /// How many lanes have been registered (the anonymous lane included).
    var laneTotal: Int { Int(ferrite_atomic_load_u64(laneCount)) }

    /// A new lane for a thread's transaction context.
    func makeLane() -> CommitLane {
        let lane = CommitLane()
        register(lane)
        return lane
    }

    // MARK: Commits

    /// Hands out the next commit number to `lane`, which publishes it before anyone can compute a
    /// watermark past it.
    func beginCommit(lane: CommitLane) -> UInt64 {
        lane.lock.lock()
        // Publish a lower bound first: the number we are about to take is at least this.
        if ferrite_atomic_load_u64(lane.lowest) == .max {
            ferrite_atomic_store_u64(lane.lowest, ferrite_atomic_load_u64(nextSeq))
        }
        let seq = ferrite_atomic_fetch_add_u64(nextSeq, 1)
        lane.current = seq
        lane.publishLowest()
        lane.lock.unlock()
        return seq
    }

    /// Takes back a commit number whose transaction failed before its commit fence.
    func abandonCommit(lane: CommitLane) {
        lane.lock.withLock {
            lane.current = 0
            lane.publishLowest()
        }
    }

    /// Records that the lane's current transaction, logged in `slot`, is applied (not yet written
    /// back, not fenced). `freed` and `freedHuge` are released once it is durably retired.
    func didApply(lane: CommitLane, slot: Int, freed: [UInt64], freedHuge: [(Int, Int)]) {
        lane.lock.withLock {
            let seq = lane.current
            lane.applied.append((seq, slot))
            if !freed.isEmpty || !freedHuge.isEmpty { lane.deferred.append((seq, freed, freedHuge)) }
            ferrite_atomic_store_u64(slotSeq + slot * 8, seq)
            lane.current = 0
            lane.publishLowest()
        }
    }

    /// The slots a lane tries first: half of them, by the lane's parity, so that two threads
    /// rotate through slots of their own and never move a slot's bookkeeping line between their
    /// cores (with more threads, those of the same parity share a half).
    func homeSlots(laneIndex: Int) -> Range<Int> {
        let count = layout.logSlotCount
        guard count >= 32 else { return 0..<count }
        let half = count / 2
        return laneIndex % 2 == 1 ? 0..<half : half..<count
    }

    /// Takes a free log slot whose last transaction is durably retired (its log must survive
    /// until then): the next one after `previous` in `home`, else any.
    func acquireLogSlot(after previous: Int, home: Range<Int>) -> Int {
        let count = layout.logSlotCount
        var attempts = 0
        func tryTake(_ slot: Int) -> Bool {
            let owner = slotSeq + slot * 8 + 1
            guard ferrite_atomic_load_u64(owner) == 0, isReusable(slot), ferrite_atomic_cas_u64(owner, 0, 1) != 0 else { return false }
            // Check again now that we own it: between the check above and the swap, another
            // thread may have taken the slot, logged a newer transaction in it and given it back.
            if isReusable(slot) { return true }
            ferrite_atomic_store_u64(owner, 0)
            return false
        }
        while true {
            let first = home.contains(previous + 1) ? previous + 1 : home.lowerBound
            for k in 0..<home.count {
                let slot = home.lowerBound + (first - home.lowerBound + k) % home.count
                if tryTake(slot) { return slot }
            }
            for k in 0..<count {
                let slot = (previous + 1 + k) % count
                if !home.contains(slot) && tryTake(slot) { return slot }
            }
            // Every free slot awaits retirement: a fence retires applied logs and stores the watermark.
            attempts += 1
            if attempts > 8 { usleep(20) }
            fence(urgent: true)
        }
    }

    /// Gives a slot back.
    func releaseLogSlot(_ slot: Int) {
        ferrite_atomic_store_u64(slotSeq + slot * 8 + 1, 0)
    }

    /// Whether `slot` may take a new log: its last transaction is durably retired.
    func isReusable(_ slot: Int) -> Bool {
        ferrite_atomic_load_u64(slotSeq + slot * 8) <= durableWatermark
    }

    /// Whether freed space waits for its transaction to be retired.
    var hasDeferredReleases: Bool {
        var waiting = false
        forEachLane { lane in if !waiting { waiting = lane.lock.withLock { !lane.deferred.isEmpty } } }
        return waiting
    }

    // MARK: Fences

    /// Fences, retiring the applied transactions of `lane` (whose effects its thread wrote back
    /// itself). When `urgent`, or when the watermark lags, it also computes and stores the
    /// watermark; when `urgent`, it first writes back and then retires other lanes' long-waiting
    /// (or, with no lane, all) applied transactions too.
    ///
    /// `committing` is the commit number a committing lane just took: it stands in for the
    /// commit counter (a lower bound of it, so every decision it feeds is conservative), which
    /// would otherwise be read here, a cache line every committing thread writes.
    func fence(lane: CommitLane? = nil, urgent: Bool = false, committing: UInt64? = nil) {
        let own = lane ?? anonymous
        let next = committing.map { $0 &+ 1 } ?? ferrite_atomic_load_u64(nextSeq)
        // The watermark is due when it lags, or when someone waits for it.
        // With many threads, each one's last commit waits about as many commits as there are
        // threads for its next fence: the stride and staleness grow with them (up to half of the
        // log slots), or every commit would compute the watermark and adopt other threads'
        // commits, flushing their lines a second time.
        let lanes = UInt64(ferrite_atomic_load_u64(laneCount))
        let patience = max(Self.watermarkStride, min(2 * lanes, UInt64(layout.logSlotCount / 2)))
        let computing = urgent || next &- 1 &- durableWatermark >= patience
        // Other lanes' commits to retire on their behalf: when the watermark is due, those of
        // lanes that have not fenced for a while (an idle thread would otherwise hold it back),
        // or, for a fence of no lane that is urgent, all of them.
        var adopted: [(lane: CommitLane, seq: UInt64, slot: Int)] = []
        if computing {
            let all = lane == nil && urgent
            forEachLane { other in
                // A lane's published lowest says, without locking it, whether it holds anything old.
                let lowest = ferrite_atomic_load_u64(other.lowest)
                guard other !== own, lowest != .max, all || lowest &+ patience < next else { return }
                other.lock.withLock {
                    for entry in other.applied where all || entry.seq &+ patience < next {
                        adopted.append((other, entry.seq, entry.slot))
                    }
                }
            }
            for entry in adopted {
                let log = RedoLog(slot: durable + layout.logSlotOffset(entry.slot), capacity: layout.logSlotSize)
                // An applied, unretired transaction's log stays in its slot until the watermark
                // passes it: anything else would lose committed data, so stop rather than retire it.
                guard log.seq == entry.seq, let records = log.committedRecords(seq: entry.seq) else {
                    // Its own thread retired it since we looked, the watermark passed it and the
                    // slot took a new log: nothing left to do for it.
                    if entry.seq <= durableWatermark { continue }
                    preconditionFailure("the log of applied transaction \(entry.seq) in slot \(entry.slot) was overwritten before it was retired")
                }
                RedoLog.flushApplied(records, allocator: allocator, poolSize: poolSize())
            }
        }
        // What this fence retires in our own lane: everything applied so far.
        let ownRetiring = own.lock.withLock { own.applied.count }
        // The watermark: below every lane's lowest unretired commit (computed before the fence, so
        // it does not count what this fence retires: conservative).
        var stored: UInt64? = nil
        if computing {
            var lowest = next
            forEachLane { other in
                let value = ferrite_atomic_load_u64(other.lowest)
                if value < lowest { lowest = value }
            }
            stored = lock.withLock { () -> UInt64? in
                let watermark = lowest - 1
                guard watermark > durableWatermark else { return nil }
                if watermark > storedW {
                    storedW = watermark
                    ferrite_atomic_store_u64(durable + PoolLayout.offAppliedSeq, watermark)
                }
                medium.flush(durable + PoolLayout.offAppliedSeq, count: 8)
                return storedW
            }
        }
        medium.fence()
        if let stored {
            lock.withLock { if stored > durableWatermark { ferrite_atomic_store_u64(durableWord, stored) } }
        }
        let durableW = durableWatermark
        var released: [(seq: UInt64, blocks: [UInt64], hugeRuns: [(Int, Int)])] = []
        func settle(_ target: CommitLane, retiring: (UInt64) -> Bool) {
            target.lock.withLock {
                target.applied.removeAll { retiring($0.seq) }
                target.publishLowest()
                if !target.deferred.isEmpty, target.deferred.contains(where: { $0.seq <= durableW }) {
                    released.append(contentsOf: target.deferred.filter { $0.seq <= durableW })
                    target.deferred.removeAll { $0.seq <= durableW }
                }
            }
        }
        if ownRetiring > 0 || !own.deferred.isEmpty {
            own.lock.withLock {
                own.applied.removeFirst(min(ownRetiring, own.applied.count))
                own.publishLowest()
                if !own.deferred.isEmpty, own.deferred[0].seq <= durableW {
                    released.append(contentsOf: own.deferred.filter { $0.seq <= durableW })
                    own.deferred.removeAll { $0.seq <= durableW }
                }
            }
        }
        if urgent || !adopted.isEmpty {
            // Retire what we adopted; an urgent fence also releases every lane's freed space that
            // the durable watermark has passed (its thread may be idle).
            forEachLane { other in
                guard other !== own else { return }
                let seqs = adopted.filter { $0.lane === other }.map(\.seq)
                if !seqs.isEmpty || urgent { settle(other) { seqs.contains($0) } }
            }
        }
        for entry in released {
            for block in entry.blocks { allocator.releaseFreed(Int(block)) }
            for run in entry.hugeRuns { allocator.settleHuge(index: run.0, count: run.1, allocated: false) }
        }
    }

    /// Retires every applied transaction of every thread and makes the watermark durable (a few
    /// fences), releasing the space they freed. Must not be called with an allocator lock held.
    func retire() {
        fence(urgent: true)
        fence(urgent: true)
        fence(urgent: true)
    }

    /// Writes back a range and fences: the range is durable when this returns.
    func persist(_ address: UnsafeRawPointer, count: Int) {
        medium.flush(address, count: count)
        fence()
    }
}
