import CFerriteShim
import FerriteMedium

/// Chunk-table entry kinds (the low 8 bits of an entry; see docs/pool-format.md).
enum ChunkEntry {
    static let free: UInt64 = 0
    static let small: UInt64 = 1      // bits 8...: block size
    static let hugeHead: UInt64 = 2   // bits 8...: number of chunks in the run
    static let hugeTail: UInt64 = 3   // bits 8...: index of the run's head chunk

    @inline(__always) static func kind(_ entry: UInt64) -> UInt64 { entry & 0xFF }
    @inline(__always) static func value(_ entry: UInt64) -> Int { Int(truncatingIfNeeded: entry >> 8) }
    @inline(__always) static func make(_ kind: UInt64, _ value: Int) -> UInt64 { kind | UInt64(value) << 8 }
}

/// Volatile state of one small-block chunk: where its bitmap is, and which blocks are held by
/// transactions still in flight (allocated but not yet committed, or freed but not yet committed).
final class SmallChunk {
    let index: Int
    let classIndex: Int
    let blockSize: Int
    let blockCount: Int
    let words: Int
    /// Start of the chunk in the pool (pool offset).
    let start: Int
    let firstBlock: Int
    /// The persistent allocation bitmap (one bit per block; 1 = allocated).
    let bitmap: UnsafeMutablePointer<UInt64>
    /// Blocks held by in-flight transactions; never allocated while held.
    let inflight: UnsafeMutablePointer<UInt64>
    // Guarded by the class lock:
    @exclusivity(unchecked) var owned = false
    @exclusivity(unchecked) var listed = false
    // Owner only:
    @exclusivity(unchecked) var cursor = 0

    init(index: Int, classIndex: Int, sizeClass: SizeClasses.SizeClass, start: Int, base: UnsafeMutableRawPointer) {
        self.index = index
        self.classIndex = classIndex
        self.blockSize = sizeClass.blockSize
        self.blockCount = sizeClass.blockCount
        self.words = sizeClass.bitmapWords
        self.start = start
        self.firstBlock = start + sizeClass.bitmapBytes
        self.bitmap = (base + start).assumingMemoryBound(to: UInt64.self)
        self.inflight = .allocate(capacity: words)
        inflight.initialize(repeating: 0, count: words)
    }

    deinit { inflight.deallocate() }

    @inline(__always) func validMask(word: Int) -> UInt64 {
        let remaining = blockCount - word * 64
        return remaining >= 64 ? ~0 : (1 << UInt64(remaining)) &- 1
    }

    @inline(__always) func offset(ofBlock block: Int) -> Int { firstBlock + block * blockSize }
}

/// Per-thread allocation state: the chunk each size class currently allocates from. A chunk is
/// owned by one thread cache at a time, so two threads never contend to allocate.
final class ThreadCache {
    var chunks: [SmallChunk?]
    init(classCount: Int) { chunks = Array(repeating: nil, count: classCount) }
}

/// The crash-consistent allocator.
///
/// The persistent truth is the chunk table (what each chunk holds) and, in each small chunk, an
/// allocation bitmap. Transactions change bits only through their committed redo logs, so after
/// any crash recovery restores a state in which every block is either allocated (and owned by a
/// committed object) or free: never leaked, never handed out twice. Free lists are not stored:
/// a thread scans the bitmap of the chunk it owns. Opening a pool reads only the chunk table.
final class Allocator: @unchecked Sendable {
    /// The working view: allocation decisions read it.
    let base: UnsafeMutableRawPointer
    /// The durable view: committed changes are applied to it too.
    let durable: UnsafeMutableRawPointer
    let layout: PoolLayout
    let domain: PersistDomain
    let mapping: PoolMapping
    let sizes: SizeClasses
    let chunkTable: UnsafeMutablePointer<UInt64>

    private let chunkLock = Lock()
    /// Maps the pages of the chunks after those just handed out (set by the heap; nil in tests
    /// of simulated media, whose views are plain memory).
    var prefault: ChunkPrefault?
    /// Chunks known to the allocator (guarded by chunkLock); the header holds the durable count.
    private(set) var chunkCount: Int
    /// Volatile chunk states (guarded by chunkLock): 0 free, 1 small, 2 huge head, 3 huge tail, 4 reserved.
    private let chunkStates: UnsafeMutablePointer<UInt8>
    private var freeChunkHint = 0
    /// Small-chunk states by chunk index; written under chunkLock when a chunk is formatted.
    let smallChunks: UnsafeMutablePointer<SmallChunk?>
    private let classLocks: [Lock]
    private var available: [[Int]]

    static let stateFree: UInt8 = 0, stateSmall: UInt8 = 1, stateHugeHead: UInt8 = 2, stateHugeTail: UInt8 = 3, stateReserved: UInt8 = 4

    init(base: UnsafeMutableRawPointer, durable: UnsafeMutableRawPointer, layout: PoolLayout, domain: PersistDomain, mapping: PoolMapping, chunkCount: Int) {
        self.base = base
        self.durable = durable
        self.layout = layout
        self.domain = domain
        self.mapping = mapping
        self.sizes = SizeClasses(chunkSize: layout.chunkSize)
        self.chunkTable = (base + layout.chunkTableOffset).assumingMemoryBound(to: UInt64.self)
        self.chunkCount = chunkCount
        self.chunkStates = .allocate(capacity: layout.maxChunks)
        chunkStates.initialize(repeating: Self.stateFree, count: layout.maxChunks)
        self.smallChunks = .allocate(capacity: layout.maxChunks)
        smallChunks.initialize(repeating: nil, count: layout.maxChunks)
        self.classLocks = sizes.classes.map { _ in Lock() }
        self.available = Array(repeating: [], count: sizes.classes.count)
        // One pass over the chunk table: O(chunks), independent of how many objects they hold.
        for index in 0..<chunkCount {
            let entry = chunkTable[index]
            switch ChunkEntry.kind(entry) {
            case ChunkEntry.small:
                if let cls = sizes.classIndex(ofExactBlockSize: ChunkEntry.value(entry)) {
                    let chunk = SmallChunk(index: index, classIndex: cls, sizeClass: sizes.classes[cls],
                                           start: layout.heapOffset + index * layout.chunkSize, base: base)
                    smallChunks[index] = chunk
                    chunk.listed = true
                    available[cls].append(index)
                }
                chunkStates[index] = Self.stateSmall
            case ChunkEntry.hugeHead: chunkStates[index] = Self.stateHugeHead
            case ChunkEntry.hugeTail: chunkStates[index] = Self.stateHugeTail
            default: chunkStates[index] = Self.stateFree
            }
        }
        for cls in available.indices { available[cls].reverse() }
    }

    deinit {
        smallChunks.deinitialize(count: layout.maxChunks)
        smallChunks.deallocate()
        chunkStates.deallocate()
    }

    var maximumBytes: Int { layout.maxChunks * layout.chunkSize }

    /// Chunks holding blocks (small-block chunks, however full, and huge runs). O(chunks).
    var chunksInUse: Int {
        chunkLock.withLock { (0..<chunkCount).reduce(0) { $0 + (chunkStates[$1] == Self.stateFree ? 0 : 1) } }
    }

    /// Runs of consecutive chunks that are not free, by chunk index, in order. O(chunks).
    func chunkRunsInUse() -> [Range<Int>] {
        chunkLock.withLock {
            var runs: [Range<Int>] = []
            var index = 0
            while index < chunkCount {
                guard chunkStates[index] != Self.stateFree else { index += 1; continue }
                let start = index
                while index < chunkCount && chunkStates[index] != Self.stateFree { index += 1 }
                runs.append(start..<index)
            }
            return runs
        }
    }

    // MARK: Small blocks

    /// Picks a free block of at least `size` bytes and marks it held; the caller logs the
    /// allocation and sets its bitmap bit later (``setBit``). Returns the block's pool offset.
    func reserveSmall(size: Int, classIndex cls: Int, cache: ThreadCache) throws(HeapError) -> (Int, SmallChunk) {
        if let chunk = cache.chunks[cls], let offset = takeFree(in: chunk) { return (offset, chunk) }
        var retried = false
        while true {
            if let old = cache.chunks[cls] {
                classLocks[cls].withLock { old.owned = false }
                cache.chunks[cls] = nil
            }
            let next: SmallChunk? = classLocks[cls].withLock {
                while let index = available[cls].popLast() {
                    let chunk = smallChunks[index]!
                    chunk.listed = false
                    if !chunk.owned { chunk.owned = true; return chunk }
                }
                return nil
            }
            let chunk: SmallChunk
            if let next {
                chunk = next
            } else if !retried && domain.hasDeferredReleases {
                // Freed blocks wait for their transactions to be retired: retire, then look again.
                retried = true
                domain.retire()
                continue
            } else {
                chunk = try formatSmallChunk(classIndex: cls)
            }
            cache.chunks[cls] = chunk
            if let offset = takeFree(in: chunk) { return (offset, chunk) }
        }
    }

    private func takeFree(in chunk: SmallChunk) -> Int? {
        let words = chunk.words
        var w = chunk.cursor
        for _ in 0..<words {
            let allocated = ferrite_atomic_load_u64(chunk.bitmap + w)
            let held = ferrite_atomic_load_u64(chunk.inflight + w)
            let free = ~(allocated | held) & chunk.validMask(word: w)
            if free != 0 {
                let bit = free.trailingZeroBitCount
                _ = ferrite_atomic_fetch_or_u64(chunk.inflight + w, 1 << UInt64(bit))
                chunk.cursor = w
                return chunk.offset(ofBlock: w * 64 + bit)
            }
            w += 1
            if w == words { w = 0 }
        }
        return nil
    }

    private func formatSmallChunk(classIndex cls: Int) throws(HeapError) -> SmallChunk {
        try chunkLock.withLock { () throws(HeapError) -> SmallChunk in
            let index = try findFreeRun(length: 1, requestedBytes: sizes.classes[cls].blockSize, allowGrowth: true)!
            let start = layout.heapOffset + index * layout.chunkSize
            let sizeClass = sizes.classes[cls]
            // Zero the bitmap durably before the chunk table says the chunk holds small blocks.
            // The chunk is free, and no log above the watermark touches it (freed space is only
            // reused once the watermark passes the transaction that freed it).
            for view in [base, durable] { (view + start).initializeMemory(as: UInt8.self, repeating: 0, count: sizeClass.bitmapBytes) }
            // Plain medium fences: the domain's fence may release retired runs, which takes chunkLock.
            domain.medium.persist(durable + start, count: sizeClass.bitmapBytes)
            writeChunkEntry(index, ChunkEntry.make(ChunkEntry.small, sizeClass.blockSize))
            domain.medium.fence()
            let chunk = SmallChunk(index: index, classIndex: cls, sizeClass: sizeClass, start: start, base: base)
            chunk.owned = true
            smallChunks[index] = chunk
            chunkStates[index] = Self.stateSmall
            return chunk
        }
    }

    /// The chunk and bit of a small block, from persistent state alone (recovery uses this).
    func locateSmall(_ offset: Int) -> (bitmap: UnsafeMutablePointer<UInt64>, word: Int, mask: UInt64, blockSize: Int)? {
        guard offset >= layout.heapOffset else { return nil }
        let index = (offset - layout.heapOffset) / layout.chunkSize
        guard index < chunkCount else { return nil }
        let entry = chunkTable[index]
        guard ChunkEntry.kind(entry) == ChunkEntry.small,
              let cls = sizes.classIndex(ofExactBlockSize: ChunkEntry.value(entry)) else { return nil }
        let sizeClass = sizes.classes[cls]
        let start = layout.heapOffset + index * layout.chunkSize
        let relative = offset - start - sizeClass.bitmapBytes
        guard relative >= 0, relative % sizeClass.blockSize == 0 else { return nil }
        let block = relative / sizeClass.blockSize
        guard block < sizeClass.blockCount else { return nil }
        return ((base + start).assumingMemoryBound(to: UInt64.self), block / 64, 1 << UInt64(block % 64), sizeClass.blockSize)
    }

    /// Sets (allocates) or clears (frees) a block's bitmap bit in both views, and writes the
    /// durable word back (without fencing).
    /// Sets or clears a small block's bit in both views. Returns the durable bitmap word's pool
    /// offset, written back here unless `writeBack` is false (the caller then writes it back
    /// before its next fence).
    @discardableResult
    func setBit(_ offset: Int, allocated: Bool, writeBack: Bool = true) -> Int? {
        guard let location = locateSmall(offset) else { return nil }
        let word = location.bitmap + location.word
        let durableWord = (durable + (UnsafeMutableRawPointer(word) - base)).assumingMemoryBound(to: UInt64.self)
        for target in word == durableWord ? [word] : [word, durableWord] {
            if allocated { _ = ferrite_atomic_fetch_or_u64(target, location.mask) } else { _ = ferrite_atomic_fetch_and_u64(target, ~location.mask) }
        }
        if writeBack { domain.flush(durableWord, count: 8) }
        return UnsafeMutableRawPointer(durableWord) - durable
    }

    /// Stores a chunk-table entry in both views; writes the durable word back (no fence) unless
    /// `writeBack` is false. Returns the entry's pool offset.
    @discardableResult
    func writeChunkEntry(_ index: Int, _ value: UInt64, writeBack: Bool = true) -> Int {
        let offset = layout.chunkTableOffset + index * 8
        ferrite_atomic_store_u64(base + offset, value)
        ferrite_atomic_store_u64(durable + offset, value)
        if writeBack { domain.flush(durable + offset, count: 8) }
        return offset
    }

    /// Releases a freed block once its transaction is durably retired: it may be allocated again.
    func releaseFreed(_ offset: Int) {
        release(offset)
        if let chunk = chunk(containing: offset), !chunk.owned { noteFreed(in: chunk) }
    }

    /// Whether a block (small or huge) is allocated, from persistent state alone.
    func isLive(_ offset: Int) -> Bool { isAllocated(offset) || hugeRun(at: offset) != nil }

    /// Whether a small block's bit is set.
    func isAllocated(_ offset: Int) -> Bool {
        guard let location = locateSmall(offset) else { return false }
        return ferrite_atomic_load_u64(location.bitmap + location.word) & location.mask != 0
    }

    func chunk(containing offset: Int) -> SmallChunk? {
        guard offset >= layout.heapOffset else { return nil }
        let index = (offset - layout.heapOffset) / layout.chunkSize
        guard index < layout.maxChunks else { return nil }
        return smallChunks[index]
    }

    /// Marks a live block held by a transaction that frees it. Fails if it is not live.
    func holdForFree(_ offset: Int) -> Bool {
        guard let chunk = chunk(containing: offset), let location = locateSmall(offset) else { return false }
        guard ferrite_atomic_load_u64(location.bitmap + location.word) & location.mask != 0 else { return false }
        let old = ferrite_atomic_fetch_or_u64(chunk.inflight + location.word, location.mask)
        return old & location.mask == 0
    }

    /// Releases a block held by a transaction that has finished (committed or rolled back).
    func release(_ offset: Int) {
        guard let chunk = chunk(containing: offset), let location = locateSmall(offset) else { return }
        _ = ferrite_atomic_fetch_and_u64(chunk.inflight + location.word, ~location.mask)
    }

    /// After blocks of a chunk were freed: make sure some thread will find them.
    func noteFreed(in chunk: SmallChunk) {
        let cls = chunk.classIndex
        classLocks[cls].withLock {
            if !chunk.owned && !chunk.listed {
                chunk.listed = true
                available[cls].append(chunk.index)
            }
        }
    }

    // MARK: Huge blocks (whole chunks)

    /// Reserves a run of chunks for `bytes`; the caller logs and applies the chunk-table entries.
    func reserveHuge(bytes: Int) throws(HeapError) -> (index: Int, count: Int) {
        let count = (bytes + layout.chunkSize - 1) / layout.chunkSize
        for attempt in 0..<2 {
            // Before growing the pool, retire transactions whose freed runs wait for it.
            let allowGrowth = attempt == 1 || !domain.hasDeferredReleases
            let found = try chunkLock.withLock { () throws(HeapError) -> Int? in
                guard let index = try findFreeRun(length: count, requestedBytes: bytes, allowGrowth: allowGrowth) else { return nil }
                for i in index..<index + count { chunkStates[i] = Self.stateReserved }
                return index
            }
            if let found { return (found, count) }
            domain.retire()
        }
        preconditionFailure("growth was allowed")
    }

    /// The chunk-table words of a huge run once allocated.
    func hugeEntries(index: Int, count: Int) -> [UInt64] {
        (0..<count).map { $0 == 0 ? ChunkEntry.make(ChunkEntry.hugeHead, count) : ChunkEntry.make(ChunkEntry.hugeTail, index) }
    }

    /// The run of a huge block starting at `offset`, if it is one.
    func hugeRun(at offset: Int) -> (index: Int, count: Int)? {
        guard offset >= layout.heapOffset, (offset - layout.heapOffset) % layout.chunkSize == 0 else { return nil }
        let index = (offset - layout.heapOffset) / layout.chunkSize
        guard index < chunkCount else { return nil }
        let entry = chunkTable[index]
        guard ChunkEntry.kind(entry) == ChunkEntry.hugeHead else { return nil }
        return (index, ChunkEntry.value(entry))
    }

    /// Marks a live huge run as being freed; fails if it is already being freed.
    func holdHugeForFree(index: Int) -> Bool {
        chunkLock.withLock {
            guard chunkStates[index] == Self.stateHugeHead else { return false }
            chunkStates[index] = Self.stateReserved
            return true
        }
    }

    /// Settles the volatile state of a huge run after its transaction ended.
    func settleHuge(index: Int, count: Int, allocated: Bool) {
        chunkLock.withLock {
            for i in index..<index + count {
                chunkStates[i] = allocated ? (i == index ? Self.stateHugeHead : Self.stateHugeTail) : Self.stateFree
            }
            if !allocated { freeChunkHint = min(freeChunkHint, index) }
        }
    }

    // MARK: Chunks and growth

    /// Finds `length` free chunks in a row, growing the pool if needed and allowed (nil if not).
    /// chunkLock must be held.
    private func findFreeRun(length: Int, requestedBytes: Int, allowGrowth: Bool) throws(HeapError) -> Int? {
        let start = try findFreeRunUnprefaulted(length: length, requestedBytes: requestedBytes, allowGrowth: allowGrowth)
        // The chunks handed out next are the free ones after this run: map their pages meanwhile
        // (free ones only: see ChunkPrefault).
        if let start, let prefault {
            let after = start + length
            var end = after
            while end < min(chunkCount, after + ChunkPrefault.chunksAhead) && chunkStates[end] == Self.stateFree { end += 1 }
            if end > after { prefault.request(after..<end) }
        }
        return start
    }

    private func findFreeRunUnprefaulted(length: Int, requestedBytes: Int, allowGrowth: Bool) throws(HeapError) -> Int? {
        var runStart = freeChunkHint, runLength = 0
        var i = freeChunkHint
        var firstFree: Int? = nil
        while i < chunkCount {
            if chunkStates[i] == Self.stateFree {
                if firstFree == nil { firstFree = i }
                if runLength == 0 { runStart = i }
                runLength += 1
                if runLength == length {
                    if length == 1 { freeChunkHint = i + 1 }
                    return runStart
                }
            } else {
                runLength = 0
            }
            i += 1
        }
        if length == 1, let firstFree { return firstFree }
        guard allowGrowth else { return nil }
        // Grow: the run starts at the trailing free chunks (if any) and extends past the end.
        let start = runLength > 0 ? runStart : chunkCount
        let needed = start + length
        guard needed <= layout.maxChunks else {
            throw .poolFull(requestedBytes: requestedBytes, maximumBytes: layout.maximumSize)
        }
        let target = min(layout.maxChunks, max(needed, chunkCount + max(4, chunkCount / 4)))
        try grow(to: target)
        if length == 1 { freeChunkHint = start + 1 }
        return start
    }

    private func grow(to newCount: Int) throws(HeapError) {
        try mapping.grow(to: layout.fileSize(chunks: newCount))
        ferrite_atomic_store_u64(base + PoolLayout.offChunkCount, UInt64(newCount))
        ferrite_atomic_store_u64(durable + PoolLayout.offChunkCount, UInt64(newCount))
        domain.medium.persist(durable + PoolLayout.offChunkCount, count: 8)
        chunkCount = newCount
    }

    /// Bytes in use by chunks (a coarse measure of pool usage).
    var statistics: (chunks: Int, freeChunks: Int) {
        chunkLock.withLock {
            var free = 0
            for i in 0..<chunkCount where chunkStates[i] == Self.stateFree { free += 1 }
            return (chunkCount, free)
        }
    }
}
