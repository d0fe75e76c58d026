import CFerriteShim

/// The result of ``Heap/verify(checkReachability:)``.
public struct HeapVerification: Sendable, CustomStringConvertible {
    /// Every broken invariant found, in words. Empty when the heap is well-formed.
    public var problems: [String] = []
    /// Allocated blocks (objects and buffers).
    public var liveBlocks = 0
    /// Free small blocks in formatted chunks.
    public var freeBlocks = 0
    /// Bytes of fields in allocated blocks.
    public var liveBytes = 0
    /// Live blocks reachable from the roots.
    public var reachableBlocks = 0
    /// Live blocks not reachable from any root (leaks), when reachability was checked.
    public var unreachableBlocks: [UInt64] = []
    /// Whether no invariant is broken.
    public var isValid: Bool { problems.isEmpty }

    public var description: String {
        "\(liveBlocks) live blocks (\(liveBytes) bytes), \(freeBlocks) free, \(reachableBlocks) reachable, "
            + "\(unreachableBlocks.count) unreachable; " + (problems.isEmpty ? "valid" : "\(problems.count) problems: \(problems.prefix(5))")
    }
}

extension Heap {
    /// Walks the whole pool and checks every invariant: the chunk table is well-formed, every
    /// allocated block has a well-formed header of a known type and sits in the right size class,
    /// no transaction is left in flight, every reference (from roots and from objects of
    /// registered types) points at a live object of the right kind, and, with
    /// `checkReachability`, every live block is reachable from a root (nothing leaked).
    ///
    /// It reads the entire heap: use it in tests and diagnostics, not on a hot path. No
    /// transaction may run while it does.
    public func verify(checkReachability: Bool = true) -> HeapVerification {
        var result = HeapVerification()
        func problem(_ text: String) { if result.problems.count < 100 { result.problems.append(text) } }

        let known = typesLock.withLock { poolTypes }
        let registered = typesLock.withLock { swiftTypes }
        var live: [UInt64: UInt64] = [:]  // reference -> type id
        func checkHeader(_ offset: Int, capacity: Int, classIndex: Int?) {
            let block = base + offset
            let typeID = block.load(as: UInt64.self)
            let size = Int(truncatingIfNeeded: block.load(fromByteOffset: 8, as: UInt64.self))
            if typeID != TypeID.bytes && known[typeID] == nil {
                problem("block \(offset) has unknown type id \(String(typeID, radix: 16))")
            }
            if size < 0 || size + ObjectHeader.size > capacity {
                problem("block \(offset) claims \(size) bytes of fields, more than its \(capacity)-byte block")
            } else if let classIndex, allocator.sizes.classIndex(forBlockSize: size + ObjectHeader.size) != classIndex {
                problem("block \(offset) of \(size) bytes sits in the wrong size class")
            } else if classIndex == nil, size + ObjectHeader.size <= allocator.sizes.largestBlock {
                problem("huge block \(offset) holds only \(size) bytes")
            }
            live[UInt64(offset)] = typeID
            result.liveBlocks += 1
            result.liveBytes += max(0, size)
        }
        result.freeBlocks = walkBlocks(problem: problem, block: checkHeader)

        // References: from the roots, then through every object of a registered type.
        var reachable: Set<UInt64> = []
        var stack: [UInt64] = []
        for name in rootNames {
            guard let reference = (try? rootReference(name)) ?? nil else { continue }
            if live[reference] == nil { problem("root '\(name)' points at \(reference), which is not a live block") } else { stack.append(reference) }
        }
        var untraversable = 0
        while let reference = stack.popLast() {
            guard reachable.insert(reference).inserted, let typeID = live[reference] else { continue }
            guard let type = registered[typeID] else {
                if typeID != TypeID.bytes { untraversable += 1 }
                continue
            }
            let handle = ObjectHandle(heap: self, reference: reference)
            let fields = handle.fields
            for offset in type.persistentReferenceOffsets(of: handle) where offset >= 0 && offset + 8 <= handle.size {
                let target = fields.load(fromByteOffset: offset, as: UInt64.self)
                if target == 0 { continue }
                if live[target] == nil {
                    problem("\(type.persistentTypeName) \(reference) field +\(offset) points at \(target), not a live block")
                } else {
                    stack.append(target)
                }
            }
        }
        result.reachableBlocks = reachable.count
        if checkReachability && untraversable == 0 {
            result.unreachableBlocks = live.keys.filter { !reachable.contains($0) }.sorted()
            if !result.unreachableBlocks.isEmpty {
                problem("\(result.unreachableBlocks.count) live blocks are unreachable from any root (leaked), first \(result.unreachableBlocks[0])")
            }
        }
        return result
    }
}

extension Heap {
    /// Calls `block` for every allocated block (its pool offset, its capacity in bytes and its size
    /// class, nil for a huge run) by walking the chunk table and the chunks' bitmaps, and
    /// `problem` for every malformed chunk entry. Reads the whole chunk table: for the verifier
    /// and migrations, not for hot paths. Returns the number of free small blocks.
    @discardableResult
    func walkBlocks(problem: (String) -> Void, block: (_ offset: Int, _ capacity: Int, _ classIndex: Int?) -> Void) -> Int {
        let table = allocator.chunkTable
        let chunkCount = allocator.chunkCount
        let sizes = allocator.sizes
        var index = 0
        var freeBlocks = 0
        while index < chunkCount {
            let entry = table[index]
            let start = layout.heapOffset + index * layout.chunkSize
            switch ChunkEntry.kind(entry) {
            case ChunkEntry.free:
                index += 1
            case ChunkEntry.small:
                guard let cls = sizes.classIndex(ofExactBlockSize: ChunkEntry.value(entry)) else {
                    problem("chunk \(index) has invalid block size \(ChunkEntry.value(entry))")
                    index += 1
                    continue
                }
                let sizeClass = sizes.classes[cls]
                let bitmap = (base + start).assumingMemoryBound(to: UInt64.self)
                for w in 0..<sizeClass.bitmapWords {
                    let word = bitmap[w]
                    let remaining = sizeClass.blockCount - w * 64
                    let valid: UInt64 = remaining >= 64 ? ~0 : (1 << UInt64(remaining)) &- 1
                    if word & ~valid != 0 { problem("chunk \(index) has bitmap bits past its last block") }
                    var bits = word & valid
                    freeBlocks += min(64, remaining) - bits.nonzeroBitCount
                    while bits != 0 {
                        let bit = bits.trailingZeroBitCount
                        bits &= bits - 1
                        block(start + sizeClass.bitmapBytes + (w * 64 + bit) * sizeClass.blockSize, sizeClass.blockSize, cls)
                    }
                }
                index += 1
            case ChunkEntry.hugeHead:
                let count = ChunkEntry.value(entry)
                guard count >= 1, index + count <= chunkCount else {
                    problem("huge run at chunk \(index) of \(count) chunks overruns the pool")
                    index += 1
                    continue
                }
                for tail in index + 1 ..< index + count where table[tail] != ChunkEntry.make(ChunkEntry.hugeTail, index) {
                    problem("chunk \(tail) should continue the huge run at \(index)")
                }
                block(start, count * layout.chunkSize, nil)
                index += count
            default:
                problem("chunk \(index) has entry \(String(entry, radix: 16)) outside any run")
                index += 1
            }
        }
        for i in chunkCount..<min(layout.maxChunks, chunkCount + 64) where table[i] != 0 {
            problem("chunk table entry \(i) is set beyond the pool's \(chunkCount) chunks")
        }
        return freeBlocks
    }
}
