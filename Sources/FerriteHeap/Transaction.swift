import CFerriteShim
import FerriteMedium

/// The state of the calling thread's transaction on one heap. One per thread per heap, reused
/// from one transaction to the next so that steady-state transactions allocate nothing.
///
/// The commit protocol (undo logging, writes in place; docs/pool-format.md has the details):
/// 1. Before the first store to an object segment, its old bytes are appended to the slot's log
///    and fenced; then the store goes to the object in place. Allocation and free records ride
///    along with that fence, and only then do bitmap bits change.
/// 2. Commit appends a COMMIT record holding a hash of all the transaction's effects, writes back
///    the record, every changed segment and every new block, and fences: that fence is the
///    commit point. A transaction that changes one segment makes two ordered persist points.
/// 3. The slot is then marked idle without a fence; the next fence anyone issues makes the mark
///    durable (``PersistDomain``), before any later transaction can change what this one wrote.
final class TransactionContext {
    unowned(unsafe) let heap: Heap
    let cache: ThreadCache

    @exclusivity(unchecked) var depth = 0
    @exclusivity(unchecked) var failure: (any Error)?

    // The log slot, acquired at the first logged change.
    @exclusivity(unchecked) var slotIndex = -1
    @exclusivity(unchecked) var lastSlot = -1
    @exclusivity(unchecked) var log = UndoLog(slot: UnsafeMutableRawPointer(bitPattern: 64)!, capacity: 0)
    @exclusivity(unchecked) var seq: UInt64 = 0
    @exclusivity(unchecked) var cursor = 0
    @exclusivity(unchecked) var unflushedFrom = 0
    /// The records written so far (the COMMIT hash is computed over them).
    @exclusivity(unchecked) var records: [LogRecord] = []

    /// Segments (pool offsets) whose old bytes are in the log, with their lengths.
    @exclusivity(unchecked) var snapshotted = OffsetMap()
    /// Blocks allocated by this transaction, with the bytes they use: writes to them need no undo.
    @exclusivity(unchecked) var newBlocks = OffsetMap()
    /// Allocations (block, bytes) and frees (block, capacity) not yet logged.
    @exclusivity(unchecked) var pendingAllocations: [UInt64] = []
    @exclusivity(unchecked) var pendingFrees: [UInt64] = []
    /// Chunk-table words to log and apply (huge allocations and frees).
    @exclusivity(unchecked) var pendingChunkWrites: [(index: Int, value: UInt64)] = []
    /// Small blocks to release from the allocator's in-flight set when the transaction ends.
    @exclusivity(unchecked) var heldBlocks: [UInt64] = []
    /// Huge runs this transaction allocates or frees: allocated before it, and after it commits.
    @exclusivity(unchecked) var heldHuge: [(index: Int, count: Int, before: Bool, after: Bool)] = []

    init(heap: Heap) {
        self.heap = heap
        self.cache = ThreadCache(classCount: heap.allocator.sizes.classes.count)
    }

    var isActive: Bool { depth > 0 }
    var logStarted: Bool { slotIndex >= 0 }
    var hasPendingAllocatorWork: Bool { !pendingAllocations.isEmpty || !pendingFrees.isEmpty || !pendingChunkWrites.isEmpty }

    // MARK: Logging

    private func startLog() {
        guard !logStarted else { return }
        slotIndex = heap.acquireLogSlot(after: lastSlot)
        lastSlot = slotIndex
        log = heap.logSlot(slotIndex)
        seq = log.seq &+ 1
        ferrite_atomic_store_u64(log.slot, UndoLog.state(seq: seq, active: true))
        cursor = PoolLayout.logSlotHeaderSize
        unflushedFrom = 0
    }

    private func append(kind: UInt32, offset: UInt64, payload: UnsafeRawPointer?, length: Int) throws(HeapError) {
        guard let record = log.append(kind: kind, offset: offset, payload: payload, length: length, seq: seq, cursor: &cursor) else {
            throw .transactionTooLarge(logBytes: log.capacity)
        }
        records.append(record)
    }

    private func appendPairs(kind: UInt32, _ blocks: [UInt64]) throws(HeapError) {
        guard !blocks.isEmpty else { return }
        let record = blocks.withUnsafeBytes { raw in
            log.append(kind: kind, offset: 0, payload: raw.baseAddress, length: raw.count, seq: seq, cursor: &cursor)
        }
        guard let record else { throw .transactionTooLarge(logBytes: log.capacity) }
        records.append(record)
    }

    /// Logs pending allocator records, makes the log durable, then applies those records.
    private func persistLog() throws(HeapError) {
        startLog()
        try appendPairs(kind: UndoRecord.allocations, pendingAllocations)
        try appendPairs(kind: UndoRecord.frees, pendingFrees)
        let table = heap.allocator.chunkTable
        for write in pendingChunkWrites {
            try append(kind: UndoRecord.data, offset: UInt64(heap.layout.chunkTableOffset + write.index * 8), payload: table + write.index, length: 8)
        }
        let domain = heap.domain
        domain.flush(log.slot + unflushedFrom, count: cursor - unflushedFrom)
        domain.fence()
        unflushedFrom = cursor
        var i = 0
        while i < pendingAllocations.count { heap.allocator.setBit(Int(pendingAllocations[i]), allocated: true); i += 2 }
        i = 0
        while i < pendingFrees.count { heap.allocator.setBit(Int(pendingFrees[i]), allocated: false); i += 2 }
        for write in pendingChunkWrites {
            ferrite_atomic_store_u64(table + write.index, write.value)
            domain.flush(table + write.index, count: 8)
        }
        pendingAllocations.removeAll(keepingCapacity: true)
        pendingFrees.removeAll(keepingCapacity: true)
        pendingChunkWrites.removeAll(keepingCapacity: true)
    }

    // MARK: Writes

    /// Makes sure the old bytes of `offset ..< offset + count` (pool offsets, inside the object
    /// whose block starts at `block`) are logged before the caller stores there.
    /// Returns false if the store must not happen (the transaction is doomed).
    @inline(__always)
    func prepareWrite(block: UInt64, offset: Int, count: Int) -> Bool {
        if failure != nil { return false }
        if newBlocks[block] != nil { return true }
        let blockStart = Int(block)
        let blockEnd = blockStart + ObjectHeader.size + heap.payloadSize(ofBlock: blockStart)
        let segmentSize = blockEnd - blockStart <= Heap.segmentBytes ? blockEnd - blockStart : Heap.segmentBytes
        var segment = blockStart + (offset - blockStart) / segmentSize * segmentSize
        while segment < offset + count {
            let key = UInt64(segment)
            if snapshotted[key] == nil {
                let length = min(segmentSize, blockEnd - segment)
                do {
                    startLog()
                    try append(kind: UndoRecord.data, offset: key, payload: heap.base + segment, length: length)
                    try persistLog()
                } catch {
                    failure = error
                    return false
                }
                snapshotted.set(key, length)
            }
            segment += segmentSize
        }
        return true
    }

    /// Logs the old bytes of a range outside any object (roots) before a store.
    func prepareRawWrite(offset: Int, count: Int) throws(HeapError) {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let key = UInt64(offset)
        if let length = snapshotted[key], length >= count { return }
        startLog()
        try append(kind: UndoRecord.data, offset: key, payload: heap.base + offset, length: count)
        try persistLog()
        snapshotted.set(key, count)
    }

    // MARK: Allocation

    /// Allocates a block for `bytes` (header included); returns its pool offset.
    func allocate(bytes: Int) throws(HeapError) -> Int {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let allocator = heap.allocator
        if let cls = allocator.sizes.classIndex(forBlockSize: bytes) {
            let (offset, _) = try allocator.reserveSmall(size: bytes, classIndex: cls, cache: cache)
            pendingAllocations.append(UInt64(offset)); pendingAllocations.append(UInt64(bytes))
            heldBlocks.append(UInt64(offset))
            newBlocks.set(UInt64(offset), bytes)
            return offset
        }
        let run = try allocator.reserveHuge(bytes: bytes)
        for (i, value) in allocator.hugeEntries(index: run.index, count: run.count).enumerated() {
            pendingChunkWrites.append((run.index + i, value))
        }
        heldHuge.append((run.index, run.count, false, true))
        let offset = heap.layout.heapOffset + run.index * heap.layout.chunkSize
        pendingAllocations.append(UInt64(offset)); pendingAllocations.append(UInt64(bytes))
        newBlocks.set(UInt64(offset), bytes)
        return offset
    }

    private func removePendingAllocation(_ block: UInt64) -> Bool {
        var i = 0
        while i < pendingAllocations.count {
            if pendingAllocations[i] == block {
                pendingAllocations.removeSubrange(i..<i + 2)
                return true
            }
            i += 2
        }
        return false
    }

    func free(block: UInt64) throws(HeapError) {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let allocator = heap.allocator
        let offset = Int(block)
        let chunkSize = heap.layout.chunkSize
        if newBlocks[block] != nil {
            // Freed by the transaction that allocated it.
            newBlocks.remove(block)
            if let i = heldHuge.firstIndex(where: { heap.layout.heapOffset + $0.index * chunkSize == offset }) {
                heldHuge[i].after = false
                let run = heldHuge[i]
                if !removePendingAllocation(block) {
                    pendingFrees.append(block); pendingFrees.append(UInt64(run.count * chunkSize))
                }
                for c in 0..<run.count { pendingChunkWrites.append((run.index + c, 0)) }
            } else if !removePendingAllocation(block) {
                pendingFrees.append(block); pendingFrees.append(UInt64(allocator.locateSmall(offset)?.blockSize ?? 0))
            }
            return
        }
        if let run = allocator.hugeRun(at: offset) {
            guard allocator.holdHugeForFree(index: run.index) else { throw .invalidFree(block) }
            heldHuge.append((run.index, run.count, true, false))
            pendingFrees.append(block); pendingFrees.append(UInt64(run.count * chunkSize))
            for c in 0..<run.count { pendingChunkWrites.append((run.index + c, 0)) }
            return
        }
        guard let location = allocator.locateSmall(offset), allocator.holdForFree(offset) else { throw .invalidFree(block) }
        pendingFrees.append(block); pendingFrees.append(UInt64(location.blockSize))
        heldBlocks.append(block)
    }

    // MARK: Ending

    func commit() throws(HeapError) {
        if failure != nil {
            let error = failure
            abort()
            throw (error as? HeapError) ?? .transactionAborted
        }
        if hasPendingAllocatorWork {
            do { try persistLog() } catch { failure = error; abort(); throw error }
        }
        if logStarted {
            let heap = self.heap
            let base = heap.base
            let hash = UndoLog.commitHash(records: records, seq: seq, base: base, poolSize: heap.mapping.mappedSize, allocator: heap.allocator)
            do {
                try withUnsafeBytes(of: hash) { (raw) throws(HeapError) in
                    try append(kind: UndoRecord.commit, offset: 0, payload: raw.baseAddress, length: 8)
                }
            } catch { failure = error; abort(); throw error }
            let domain = heap.domain
            domain.flush(log.slot + unflushedFrom, count: cursor - unflushedFrom)
            let segments = snapshotted.keys, lengths = snapshotted.values
            for i in segments.indices { domain.flush(base + Int(segments[i]), count: lengths[i]) }
            let blocks = newBlocks.keys, sizes = newBlocks.values
            for i in blocks.indices { domain.flush(base + Int(blocks[i]), count: sizes[i]) }
            domain.fence()  // the commit point
            ferrite_atomic_store_u64(log.slot, UndoLog.state(seq: seq, active: false))
            domain.flush(log.slot, count: 8)
            domain.markIdlePending(slot: slotIndex, seq: seq)
        }
        finish(committed: true)
    }

    func abort() {
        if logStarted {
            log.rollBack(records: records, base: heap.base, poolSize: heap.mapping.mappedSize, allocator: heap.allocator, domain: heap.domain)
        }
        finish(committed: false)
    }

    private func finish(committed: Bool) {
        let allocator = heap.allocator
        if !heldBlocks.isEmpty {
            var lastChunk: SmallChunk? = nil
            for block in heldBlocks {
                allocator.release(Int(block))
                if let chunk = allocator.chunk(containing: Int(block)), chunk !== lastChunk {
                    lastChunk = chunk
                    if !chunk.owned { allocator.noteFreed(in: chunk) }
                }
            }
            heldBlocks.removeAll(keepingCapacity: true)
        }
        if !heldHuge.isEmpty {
            for run in heldHuge {
                allocator.settleHuge(index: run.index, count: run.count, allocated: committed ? run.after : run.before)
            }
            heldHuge.removeAll(keepingCapacity: true)
        }
        if logStarted {
            heap.releaseLogSlot(slotIndex)
            slotIndex = -1
            records.removeAll(keepingCapacity: true)
        }
        failure = nil
        snapshotted.removeAll()
        newBlocks.removeAll()
        if hasPendingAllocatorWork {
            pendingAllocations.removeAll(keepingCapacity: true)
            pendingFrees.removeAll(keepingCapacity: true)
            pendingChunkWrites.removeAll(keepingCapacity: true)
        }
    }
}
