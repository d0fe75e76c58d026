import CFerriteShim
import FerriteMedium

/// The state of the calling thread's transaction on one heap. One per thread per heap, reused
/// from one transaction to the next so that steady-state transactions allocate nothing.
///
/// The commit protocol (redo logging; docs/pool-format.md has the details):
/// 1. Stores go to the working view in place. The transaction remembers which 8-byte words of
///    which cache lines it wrote, and the lines' old contents (in DRAM, to abort).
/// 2. Commit writes a redo log to a free slot: the new bytes of every written word, the blocks
///    allocated and freed, the chunk-table changes, then a COMMIT record. New blocks are copied to
///    the durable view directly (nothing references them before the commit). Everything is written
///    back, then one fence: the commit point.
/// 3. The log is applied to the durable view, neither written back nor fenced: the thread's next
///    commit writes those lines back together with its own log, before its fence, which makes
///    them durable and retires the transaction. (Writing them back at once would cost a second
///    wait: the next locked instruction, a spinlock or a reference count, waits for every pending
///    write-back to finish.) Another thread that needs the watermark to pass an idle thread's
///    transaction writes its lines back itself from the log (``PersistDomain``).
/// An abort restores the written words from DRAM; nothing reaches the medium.
final class TransactionContext: PooledThreadValue {
    /// Keeps this thread's hot fields off the cache lines of whatever is allocated before it.
    private let paddingBefore: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    unowned(unsafe) let heap: Heap
    // Shared objects, held strongly: loading a `let` of a guaranteed `self` borrows it with no
    // reference counting (an unowned(unsafe) reference would be retained around every call, and a
    // reference count every thread writes is a cache line all cores fight over).
    let domain: PersistDomain
    let allocator: Allocator
    let mapping: PoolMapping
    let layout: PoolLayout
    let working: UnsafeMutableRawPointer
    let cache: ThreadCache
    /// This thread's applied, unretired commits (see ``PersistDomain``).
    let lane: CommitLane

    @exclusivity(unchecked) var depth = 0
    @exclusivity(unchecked) var failure: (any Error)?
    @exclusivity(unchecked) var lastSlot = -1
    /// The log slots this thread tries first (``PersistDomain/homeSlots(laneIndex:)``).
    let homeSlots: Range<Int>
    /// Type ids this thread has registered and recorded in the pool already.
    @exclusivity(unchecked) var recordedTypes: [UInt64] = []
    /// Types this thread has registered (ids), valid while the heap's registration generation is
    /// `typeCacheGeneration`.
    @exclusivity(unchecked) var registeredTypes: [UInt64] = []
    @exclusivity(unchecked) var typeCacheGeneration = 0
    /// Types registered inside the current transaction: withdrawn if it rolls back.
    @exclusivity(unchecked) var provisionalTypes: [UInt64] = []
    /// What to run once the current transaction has committed (``Heap/afterCommit(_:)``).
    @exclusivity(unchecked) var afterCommitActions: [() -> Void] = []

    /// Forgets the cached registrations if types were withdrawn since they were cached.
    @inline(__always)
    func refreshTypeCaches(generation: Int) {
        if generation != typeCacheGeneration {
            recordedTypes.removeAll()
            registeredTypes.removeAll()
            typeCacheGeneration = generation
        }
    }
    /// Transaction locks (``ObjectHandle/lockUntilTransactionEnds(wordAt:)``) this transaction
    /// holds: released when it ends, after any rollback.
    @exclusivity(unchecked) var heldLocks: [UnsafeMutableRawPointer] = []
    /// Durable-view lines this thread applied and has not written back yet (pool offsets): written
    /// back just before its next commit fence.
    @exclusivity(unchecked) var pendingWriteBack = ScratchBuffer<UInt64>()

    /// Cache lines written (pool offset of the line) -> index into `lineMasks` / `savedLines`.
    @exclusivity(unchecked) var lines = OffsetMap()
    /// Per written line: which of its eight words were written.
    @exclusivity(unchecked) var lineMasks = ScratchBuffer<UInt8>()
    /// Per written line: its eight words before the transaction wrote them.
    @exclusivity(unchecked) var savedLines = ScratchBuffer<UInt64>(capacity: 64)
    /// Blocks allocated by this transaction, with the bytes they use: writes to them need no
    /// tracking, and they are copied to the durable view at commit.
    @exclusivity(unchecked) var newBlocks = OffsetMap()
    /// New blocks too large to log, copied to the durable view before the log (commit scratch).
    @exclusivity(unchecked) var unloggedBlocks = ScratchBuffer<UInt64>()
    /// (block, bytes) pairs allocated and (block, capacity) pairs freed.
    @exclusivity(unchecked) var allocations = ScratchBuffer<UInt64>()
    @exclusivity(unchecked) var frees = ScratchBuffer<UInt64>()
    /// (chunk index, value) pairs for huge allocations and frees.
    @exclusivity(unchecked) var chunkWrites = ScratchBuffer<UInt64>()
    /// Small blocks held by this transaction: allocated (released at its end) and freed
    /// (released once it is durably retired, or at an abort).
    @exclusivity(unchecked) var heldAllocated = ScratchBuffer<UInt64>()
    @exclusivity(unchecked) var heldFreed = ScratchBuffer<UInt64>()
    /// Huge runs this transaction allocates or frees: allocated before it, and after it commits.
    @exclusivity(unchecked) var heldHuge: [(index: Int, count: Int, before: Bool, after: Bool)] = []

    /// Keeps this thread's hot fields off the cache lines of whatever is allocated after it.
    private let paddingAfter: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    init(heap: Heap) {
        self.heap = heap
        self.domain = heap.domain
        self.allocator = heap.allocator
        self.mapping = heap.mapping
        self.layout = heap.layout
        self.working = heap.base
        self.cache = ThreadCache(classCount: heap.allocator.sizes.classes.count)
        self.lane = heap.domain.makeLane()
        // Threads rotate through slots of their own where they can: a slot's bookkeeping line
        // moving between cores on every commit costs more than the commit's fence.
        let laneIndex = heap.domain.laneIndex(of: lane)
        self.homeSlots = heap.domain.homeSlots(laneIndex: laneIndex)
        self.lastSlot = homeSlots.lowerBound + (laneIndex / 2 &* 7) % homeSlots.count - 1
        super.init(pool: heap.contextPool)
    }

    /// A thread that exited inside a transaction leaves its context to nobody.
    override var isReusable: Bool { !isActive }

    deinit {
        lines.deallocate(); newBlocks.deallocate()
        lineMasks.deallocate(); savedLines.deallocate()
        allocations.deallocate(); frees.deallocate(); chunkWrites.deallocate()
        heldAllocated.deallocate(); heldFreed.deallocate(); unloggedBlocks.deallocate()
        pendingWriteBack.deallocate()
    }

    var isActive: Bool { depth > 0 }
    var hasChanges: Bool { !lines.isEmpty || !newBlocks.isEmpty || !allocations.isEmpty || !frees.isEmpty || !chunkWrites.isEmpty }

    // MARK: Writes

    /// Records that `count` bytes at pool offset `offset`, inside the object whose block starts at
    /// `block`, are about to be written. Returns false if the store must not happen (the
    /// transaction is doomed).
    @inline(__always)
    func prepareWrite(block: UInt64, offset: Int, count: Int) -> Bool {
        if failure != nil { return false }
        if newBlocks[block] != nil { return true }
        track(offset: offset, count: count)
        return true
    }

    /// Records a write of `count` bytes at pool offset `offset` (outside new blocks).
    func track(offset: Int, count: Int) {
        let end = offset + count
        var line = offset & ~63
        let base = working
        while line < end {
            let index: Int
            if let existing = lines[UInt64(line)] {
                index = existing
            } else {
                index = lineMasks.count
                lines.set(UInt64(line), index)
                lineMasks.append(0)
                let words = (base + line).assumingMemoryBound(to: UInt64.self)
                for w in 0..<8 { savedLines.append(words[w]) }
            }
            let first = (max(offset, line) - line) >> 3
            let last = (min(end, line + 64) - line - 1) >> 3
            lineMasks[index] |= UInt8(truncatingIfNeeded: (0xFF << first) & (0xFF >> (7 - last)))
            line += 64
        }
    }

    /// Records a write to a range outside any object (roots).
    func prepareRawWrite(offset: Int, count: Int) throws(HeapError) {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        track(offset: offset, count: count)
    }

    // MARK: Allocation

    /// Allocates a block for `bytes` (header included); returns its pool offset.
    func allocate(bytes: Int) throws(HeapError) -> Int {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        if let cls = allocator.sizes.classIndex(forBlockSize: bytes) {
            let (offset, _) = try allocator.reserveSmall(size: bytes, classIndex: cls, cache: cache)
            allocations.append(UInt64(offset)); allocations.append(UInt64(bytes))
            heldAllocated.append(UInt64(offset))
            newBlocks.set(UInt64(offset), bytes)
            return offset
        }
        let run = try allocator.reserveHuge(bytes: bytes)
        for (i, value) in allocator.hugeEntries(index: run.index, count: run.count).enumerated() {
            chunkWrites.append(UInt64(run.index + i)); chunkWrites.append(value)
        }
        heldHuge.append((run.index, run.count, false, true))
        let offset = layout.heapOffset + run.index * layout.chunkSize
        allocations.append(UInt64(offset)); allocations.append(UInt64(bytes))
        newBlocks.set(UInt64(offset), bytes)
        return offset
    }

    private func removeAllocation(_ block: UInt64) {
        var i = 0
        while i < allocations.count {
            if allocations[i] == block { allocations.remove(at: i, count: 2); return }
            i += 2
        }
    }

    func free(block: UInt64) throws(HeapError) {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let offset = Int(block)
        let chunkSize = layout.chunkSize
        if newBlocks[block] != nil {
            // Freed by the transaction that allocated it: as if it never was.
            newBlocks.remove(block)
            removeAllocation(block)
            if let i = heldHuge.firstIndex(where: { layout.heapOffset + $0.index * chunkSize == offset }) {
                heldHuge[i].after = false
                for c in 0..<heldHuge[i].count { chunkWrites.append(UInt64(heldHuge[i].index + c)); chunkWrites.append(0) }
            }
            return
        }
        if let run = allocator.hugeRun(at: offset) {
            guard allocator.holdHugeForFree(index: run.index) else { throw .invalidFree(block) }
            heldHuge.append((run.index, run.count, true, false))
            frees.append(block); frees.append(UInt64(run.count * chunkSize))
            for c in 0..<run.count { chunkWrites.append(UInt64(run.index + c)); chunkWrites.append(0) }
            return
        }
        guard let location = allocator.locateSmall(offset), allocator.holdForFree(offset) else { throw .invalidFree(block) }
        frees.append(block); frees.append(UInt64(location.blockSize))
        heldFreed.append(block)
    }

    // MARK: Ending

    func commit() throws(HeapError) {
        if failure != nil {
            let error = failure
            abort()
            throw (error as? HeapError) ?? .transactionAborted
        }
        guard hasChanges else { finish(committed: false, rolledBack: false); return }
        let durable = mapping.durable
        // The slot first, then the commit number: a thread waiting for a slot must not hold a
        // number, or the watermark could never pass it to free the slots it waits for.
        let slot = domain.acquireLogSlot(after: lastSlot, home: homeSlots)
        lastSlot = slot
        let seq = domain.beginCommit(lane: lane)
        let log = RedoLog(slot: durable + layout.logSlotOffset(slot), capacity: layout.logSlotSize)
        ferrite_atomic_store_u64(log.slot, seq)
        var cursor = PoolLayout.logSlotHeaderSize
        var full = false
        // The new bytes of every written word, one record per run of written words in a line.
        let keys = lines.keys, indexes = lines.values
        for i in 0..<keys.count where !full {
            let line = Int(keys[i])
            var mask = Int(lineMasks[indexes[i]])
            while mask != 0 && !full {
                let first = mask.trailingZeroBitCount
                var last = first
                while last < 7 && mask & (1 << (last + 1)) != 0 { last += 1 }
                mask &= ~((1 << (last + 1)) - (1 << first))
                let offset = line + first * 8
                full = !log.append(kind: LogRecordKind.data, offset: UInt64(offset), payload: working + offset, length: (last - first + 1) * 8, seq: seq, cursor: &cursor)
            }
        }
        func appendPairs(_ kind: UInt32, _ pairs: ScratchBuffer<UInt64>) {
            guard !pairs.isEmpty, !full else { return }
            full = !log.append(kind: kind, offset: 0, payload: pairs.bytes.baseAddress, length: pairs.bytes.count, seq: seq, cursor: &cursor)
        }
        appendPairs(LogRecordKind.allocations, allocations)
        appendPairs(LogRecordKind.frees, frees)
        appendPairs(LogRecordKind.chunks, chunkWrites)
        // New blocks are logged whole, like any other write, so that a complete log always
        // carries them: whatever reaches the medium before the commit point, and in whatever
        // order, recovery never replays a log whose new blocks are not there. A block too large
        // for the log's remaining room is copied to the durable view instead, and made durable by
        // a fence of its own before the COMMIT record is written.
        let blocks = newBlocks.keys, sizes = newBlocks.values
        let largestLogged = layout.logSlotSize / 16
        var copiedBlocks = false
        unloggedBlocks.removeAll()
        for i in 0..<blocks.count where !full {
            let offset = Int(blocks[i]), size = sizes[i].roundedUp(to: 8)
            if size <= largestLogged && cursor + LogRecordKind.size(payload: size) + LogRecordKind.size(payload: 0) <= log.capacity {
                full = !log.append(kind: LogRecordKind.data, offset: blocks[i], payload: working + offset, length: size, seq: seq, cursor: &cursor)
            } else {
                (durable + offset).copyMemory(from: working + offset, byteCount: sizes[i])
                domain.flush(durable + offset, count: sizes[i])
                unloggedBlocks.append(blocks[i])
                copiedBlocks = true
            }
        }
        if copiedBlocks && !full { domain.medium.fence() }
        if !full { full = !log.append(kind: LogRecordKind.commit, offset: 0, payload: nil, length: 0, seq: seq, cursor: &cursor) }
        if full {
            domain.abandonCommit(lane: lane)
            domain.releaseLogSlot(slot)
            abort()
            throw .transactionTooLarge(logBytes: log.capacity)
        }
        // The lines earlier commits applied, written back now: this fence makes them durable too.
        for i in 0..<pendingWriteBack.count { domain.flush(durable + Int(pendingWriteBack[i]), count: 64) }
        pendingWriteBack.removeAll()
        domain.flush(log.slot, count: cursor)
        domain.fence(lane: lane, committing: seq)  // the commit point
        // Apply to the durable view; the next commit writes the lines back (see above).
        for i in 0..<keys.count {
            let line = Int(keys[i])
            let mask = lineMasks[indexes[i]]
            if mask == 0xFF {
                (durable + line).copyMemory(from: working + line, byteCount: 64)
            } else {
                let source = (working + line).assumingMemoryBound(to: UInt64.self)
                let target = (durable + line).assumingMemoryBound(to: UInt64.self)
                for w in 0..<8 where mask & (1 << w) != 0 { target[w] = source[w] }
            }
            pendingWriteBack.append(UInt64(line))
        }
        for i in 0..<blocks.count where !unloggedBlocks.contains(blocks[i]) {
            let offset = Int(blocks[i])
            (durable + offset).copyMemory(from: working + offset, byteCount: sizes[i])
            var line = offset & ~63
            while line < offset + sizes[i] { pendingWriteBack.append(UInt64(line)); line += 64 }
        }
        var i = 0
        while i < allocations.count {
            if let word = allocator.setBit(Int(allocations[i]), allocated: true, writeBack: false) { pendingWriteBack.append(UInt64(word & ~63)) }
            i += 2
        }
        i = 0
        while i < frees.count {
            if let word = allocator.setBit(Int(frees[i]), allocated: false, writeBack: false) { pendingWriteBack.append(UInt64(word & ~63)) }
            i += 2
        }
        i = 0
        while i < chunkWrites.count {
            pendingWriteBack.append(UInt64(allocator.writeChunkEntry(Int(chunkWrites[i]), chunkWrites[i + 1], writeBack: false) & ~63))
            i += 2
        }
        // Runs freed (or allocated and freed) appear in this log: reuse waits for its retirement.
        var freedHuge: [(Int, Int)] = []
        if !heldHuge.isEmpty {
            freedHuge = heldHuge.filter { !$0.after }.map { ($0.index, $0.count) }
            heldHuge.removeAll { !$0.after }
        }
        let freed = heldFreed.isEmpty ? [] : (0..<heldFreed.count).map { heldFreed[$0] }
        domain.didApply(lane: lane, slot: slot, freed: freed, freedHuge: freedHuge)
        domain.releaseLogSlot(slot)
        heldFreed.removeAll()  // released by the domain once retired
        finish(committed: true)
    }

    func abort() {
        // Restore the written words of the working view.
        let keys = lines.keys, indexes = lines.values
        for i in 0..<keys.count {
            let target = (working + Int(keys[i])).assumingMemoryBound(to: UInt64.self)
            let mask = lineMasks[indexes[i]]
            for w in 0..<8 where mask & (1 << w) != 0 { target[w] = savedLines[indexes[i] * 8 + w] }
        }
        finish(committed: false)
    }

    /// Ends the transaction. `rolledBack` (by default: not `committed`) withdraws the types it
    /// registered and drops its after-commit actions; a transaction that changed nothing ends
    /// uncommitted but not rolled back.
    private func finish(committed: Bool, rolledBack: Bool? = nil) {
        let rolledBack = rolledBack ?? !committed
        if !provisionalTypes.isEmpty {
            if rolledBack { heap.unpublish(provisionalTypes) }
            provisionalTypes.removeAll()
        }
        if rolledBack { afterCommitActions.removeAll() }
        for i in 0..<heldAllocated.count { allocator.release(Int(heldAllocated[i])) }
        heldAllocated.removeAll()
        for i in 0..<heldFreed.count { allocator.release(Int(heldFreed[i])) }  // aborted: the blocks stay live
        heldFreed.removeAll()
        if !heldHuge.isEmpty {
            for run in heldHuge {
                allocator.settleHuge(index: run.index, count: run.count, allocated: committed ? run.after : run.before)
            }
            heldHuge.removeAll(keepingCapacity: true)
        }
        failure = nil
        lines.removeAll()
        lineMasks.removeAll()
        savedLines.removeAll()
        newBlocks.removeAll()
        allocations.removeAll()
        frees.removeAll()
        chunkWrites.removeAll()
        if !heldLocks.isEmpty {
            for word in heldLocks { TransactionLock.release(word) }
            heldLocks.removeAll(keepingCapacity: true)
        }
    }
}
