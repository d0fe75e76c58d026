import CFerriteShim
import FerriteMedium

/// The state of the calling thread's transaction on one heap. One per thread per heap, reused
/// from one transaction to the next so that steady-state transactions allocate nothing.
///
/// The commit protocol (undo logging, writes in place):
/// 1. Before the first store to an object segment, its old bytes are appended to the slot's log,
///    written back and fenced; then the store goes to the object in place.
/// 2. Allocations and frees are logged as logical undo records that ride along with the next
///    log fence; only then are bitmap bits changed.
/// 3. Commit writes back every changed segment, new block and bitmap word, fences, then marks the
///    slot idle and fences again. A crash before that last fence rolls the transaction back.
final class TransactionContext {
    unowned let heap: Heap
    let cache: ThreadCache

    var depth = 0
    var failure: (any Error)?

    // The log slot, acquired at the first logged change.
    var slotIndex = -1
    var log = UndoLog(slot: UnsafeMutableRawPointer(bitPattern: 64)!, capacity: 0)
    var seq: UInt64 = 0
    var cursor = 0
    var unflushedFrom = 0

    /// Segments (pool offsets) whose old bytes are in the log, with their lengths.
    var snapshotted: [UInt64: Int] = [:]
    /// Blocks allocated by this transaction: writes to them need no undo.
    var newBlocks: [UInt64: Int] = [:]
    /// Allocations and frees not yet logged.
    var pendingAllocations: [UInt64] = []
    var pendingFrees: [UInt64] = []
    /// Chunk-table words to log and apply (huge allocations and frees): offset -> new value.
    var pendingChunkWrites: [(index: Int, value: UInt64)] = []
    /// Blocks to release from the allocator's in-flight set when the transaction ends.
    var heldBlocks: [UInt64] = []
    /// Huge runs this transaction allocates or frees: whether each is allocated before it, and after it commits.
    var heldHuge: [(index: Int, count: Int, before: Bool, after: Bool)] = []

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
        slotIndex = heap.acquireLogSlot()
        log = heap.logSlot(slotIndex)
        seq = log.seq &+ 1
        ferrite_atomic_store_u64(log.slot, UndoLog.state(seq: seq, active: true))
        cursor = PoolLayout.logSlotHeaderSize
        unflushedFrom = 0
    }

    private func append(kind: UInt32, offset: UInt64, payload: UnsafeRawPointer?, length: Int) throws(HeapError) {
        guard log.append(kind: kind, offset: offset, payload: payload, length: length, seq: seq, cursor: &cursor) else {
            throw .transactionTooLarge(logBytes: log.capacity)
        }
    }

    /// Logs pending allocator records, makes the log durable, then applies those records.
    private func persistLog() throws(HeapError) {
        startLog()
        for (kind, blocks) in [(UndoRecord.allocations, pendingAllocations), (UndoRecord.frees, pendingFrees)] where !blocks.isEmpty {
            let logged = blocks.withUnsafeBytes { raw in
                log.append(kind: kind, offset: 0, payload: raw.baseAddress, length: raw.count, seq: seq, cursor: &cursor)
            }
            guard logged else { throw .transactionTooLarge(logBytes: log.capacity) }
        }
        let table = heap.allocator.chunkTable
        for write in pendingChunkWrites {
            try append(kind: UndoRecord.data, offset: UInt64(heap.layout.chunkTableOffset + write.index * 8),
                       payload: table + write.index, length: 8)
        }
        heap.medium.flush(log.slot + unflushedFrom, count: cursor - unflushedFrom)
        heap.medium.fence()
        unflushedFrom = cursor
        for block in pendingAllocations { heap.allocator.setBit(Int(block), allocated: true) }
        for block in pendingFrees { heap.allocator.setBit(Int(block), allocated: false) }
        for write in pendingChunkWrites {
            ferrite_atomic_store_u64(table + write.index, write.value)
            heap.medium.flush(table + write.index, count: 8)
        }
        pendingAllocations.removeAll(keepingCapacity: true)
        pendingFrees.removeAll(keepingCapacity: true)
        pendingChunkWrites.removeAll(keepingCapacity: true)
    }

    // MARK: Writes

    /// Makes sure the old bytes of `offset ..< offset + count` (pool offsets, inside the object
    /// whose block starts at `block`) are logged before the caller stores there.
    /// Returns false if the store must not happen (the transaction is doomed).
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
                snapshotted[key] = length
            }
            segment += segmentSize
        }
        return true
    }

    /// Logs the old bytes of a range outside any object (roots, type table) before a store.
    func prepareRawWrite(offset: Int, count: Int) throws(HeapError) {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let key = UInt64(offset)
        if let length = snapshotted[key], length >= count { return }
        startLog()
        try append(kind: UndoRecord.data, offset: key, payload: heap.base + offset, length: count)
        try persistLog()
        snapshotted[key] = count
    }

    // MARK: Allocation

    func allocate(bytes: Int) throws(HeapError) -> Int {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let allocator = heap.allocator
        if let cls = allocator.sizes.classIndex(forBlockSize: bytes) {
            let (offset, _) = try allocator.reserveSmall(size: bytes, classIndex: cls, cache: cache)
            pendingAllocations.append(UInt64(offset))
            heldBlocks.append(UInt64(offset))
            newBlocks[UInt64(offset)] = allocator.sizes.classes[cls].blockSize
            return offset
        }
        let run = try allocator.reserveHuge(bytes: bytes)
        for (i, value) in allocator.hugeEntries(index: run.index, count: run.count).enumerated() {
            pendingChunkWrites.append((run.index + i, value))
        }
        heldHuge.append((run.index, run.count, false, true))
        let offset = heap.layout.heapOffset + run.index * heap.layout.chunkSize
        newBlocks[UInt64(offset)] = run.count * heap.layout.chunkSize
        return offset
    }

    func free(block: UInt64) throws(HeapError) {
        if let failure { throw (failure as? HeapError) ?? .transactionAborted }
        let allocator = heap.allocator
        let offset = Int(block)
        let chunkSize = heap.layout.chunkSize
        if let size = newBlocks[block] {
            // Freed by the transaction that allocated it.
            newBlocks[block] = nil
            if size >= chunkSize, let i = heldHuge.firstIndex(where: { heap.layout.heapOffset + $0.index * chunkSize == offset }) {
                heldHuge[i].after = false
                for c in 0..<heldHuge[i].count { pendingChunkWrites.append((heldHuge[i].index + c, 0)) }
            } else if let i = pendingAllocations.firstIndex(of: block) {
                pendingAllocations.remove(at: i)  // never logged nor applied: nothing to undo
            } else {
                pendingFrees.append(block)
            }
            return
        }
        if let run = allocator.hugeRun(at: offset) {
            guard allocator.holdHugeForFree(index: run.index) else { throw .invalidFree(block) }
            heldHuge.append((run.index, run.count, true, false))
            for c in 0..<run.count { pendingChunkWrites.append((run.index + c, 0)) }
            return
        }
        guard allocator.holdForFree(offset) else { throw .invalidFree(block) }
        pendingFrees.append(block)
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
            let medium = heap.medium
            for (segment, length) in snapshotted { medium.flush(heap.base + Int(segment), count: length) }
            for (block, size) in newBlocks { medium.flush(heap.base + Int(block), count: min(size, ObjectHeader.size + heap.payloadSize(ofBlock: Int(block)))) }
            medium.fence()
            ferrite_atomic_store_u64(log.slot, UndoLog.state(seq: seq, active: false))
            medium.persist(log.slot, count: 8)
        }
        finish(committed: true)
    }

    func abort() {
        if logStarted {
            log.rollBack(base: heap.base, poolSize: heap.mapping.mappedSize, allocator: heap.allocator, medium: heap.medium)
        }
        finish(committed: false)
    }

    private func finish(committed: Bool) {
        let allocator = heap.allocator
        var touched: [ObjectIdentifier: SmallChunk] = [:]
        for block in heldBlocks {
            allocator.release(Int(block))
            if let chunk = allocator.chunk(containing: Int(block)) { touched[ObjectIdentifier(chunk)] = chunk }
        }
        for chunk in touched.values where chunk.owned == false { allocator.noteFreed(in: chunk) }
        for run in heldHuge {
            allocator.settleHuge(index: run.index, count: run.count, allocated: committed ? run.after : run.before)
        }
        if logStarted { heap.releaseLogSlot(slotIndex) }
        slotIndex = -1
        failure = nil
        snapshotted.removeAll(keepingCapacity: true)
        newBlocks.removeAll(keepingCapacity: true)
        pendingAllocations.removeAll(keepingCapacity: true)
        pendingFrees.removeAll(keepingCapacity: true)
        pendingChunkWrites.removeAll(keepingCapacity: true)
        heldBlocks.removeAll(keepingCapacity: true)
        heldHuge.removeAll(keepingCapacity: true)
    }
}
