/// Layout upgrades: bringing every object of a type up to the type's current size when a program
/// adds fields to it.
extension Heap {
    /// Gives every object of `type` with fewer than `type.persistentSize` bytes of fields (objects
    /// made by an earlier version of the program) the current size, then calls `initialize` with
    /// each upgraded object and its old size, so that it can fill in the new fields (which start
    /// zeroed).
    ///
    /// An object whose block has room grows in place. Any other moves to a new block: its fields
    /// are copied, every reference to it (from roots, and from objects of registered types) is
    /// rewritten, and its old block is freed. Finding those references walks everything reachable
    /// from the roots, so every type whose objects may refer to `type`'s must be registered first
    /// (``HeapError/migrationBlocked(type:unregistered:)`` names those that are not).
    ///
    /// The work is split into transactions of a bounded size, so a crash leaves some objects
    /// upgraded and the others as they were: run the upgrade again to finish (its result then
    /// counts the rest). It cannot run inside a transaction
    /// (``HeapError/upgradeInTransaction(type:)``), and no other thread may use the heap's objects
    /// of `type`, or those that refer to them, while it runs. An object referred to from more
    /// places than one transaction's log can rewrite (about `logSlotSize / 80` of them in memory
    /// mode) cannot be moved: the upgrade then throws ``HeapError/transactionTooLarge(logBytes:)``.
    /// Returns the number of objects upgraded.
    ///
    /// `layouts` gives the reference offsets of types this process has not registered but whose
    /// layout the caller knows (from a schema the pool records), by type id, so that the walk can
    /// look inside their objects too.
    public func upgradeObjects(of type: any PersistentObject.Type, layouts: [UInt64: [Int]] = [:],
                               initialize: (_ object: ObjectHandle, _ oldSize: Int) throws -> Void) throws -> Int {
        guard !inTransaction else { throw HeapError.upgradeInTransaction(type: type.persistentTypeName) }
        let id = type.persistentTypeID
        let newSize = type.persistentSize
        let newClass = allocator.sizes.classIndex(forBlockSize: newSize + ObjectHeader.size)
        var grows: [(block: UInt64, size: Int)] = []
        var moves: [(block: UInt64, size: Int)] = []
        walkBlocks(problem: { _ in }) { offset, _, classIndex in
            let block = base + offset
            guard block.load(as: UInt64.self) == id else { return }
            let size = Int(truncatingIfNeeded: block.load(fromByteOffset: 8, as: UInt64.self))
            guard size < newSize else { return }
            if let classIndex, classIndex == newClass { grows.append((UInt64(offset), size)) } else { moves.append((UInt64(offset), size)) }
        }
        if grows.isEmpty && moves.isEmpty { return 0 }
        let referrers = moves.isEmpty ? [:] : try self.referrers(to: Set(moves.map(\.block)), of: type, layouts: layouts)

        // Work items in batches that keep each transaction's log within its limit: a batch whose
        // log turns out too large rolls back and is retried in halves.
        var budget = min(layout.logSlotSize / 4, 64 << 10)
        var relocated: [UInt64: UInt64] = [:]  // old block -> new block, for committed batches
        var next = 0
        let items = grows.map { ($0.block, $0.size, false) } + moves.map { ($0.block, $0.size, true) }
        while next < items.count {
            var end = next
            var spent = 0
            while end < items.count, spent < budget || end == next {
                let item = items[end]
                spent += item.2 ? 2 * (newSize + ObjectHeader.size) + 128 + 80 * (referrers[item.0]?.count ?? 0) : 2 * (newSize - item.1) + 192
                end += 1
            }
            let batch = items[next..<end]
            var moved: [UInt64: UInt64] = [:]
            do {
                try transaction {
                    let context = self.context()
                    // Copy or grow every object of the batch first, then rewrite the references
                    // to the moved ones (wherever their referrers now live), then free the old blocks.
                    for item in batch {
                        if item.2 {
                            let handle = try allocateBlock(typeID: id, size: newSize)
                            handle.fields.copyMemory(from: base + Int(item.0) + ObjectHeader.size, byteCount: item.1)
                            moved[item.0] = handle.reference
                            try initialize(handle, item.1)
                        } else {
                            let block = Int(item.0)
                            try context.prepareRawWrite(offset: block + 8, count: 8)
                            (base + block).storeBytes(of: UInt64(newSize), toByteOffset: 8, as: UInt64.self)
                            let start = block + ObjectHeader.size + item.1
                            try context.prepareRawWrite(offset: start, count: newSize - item.1)
                            (base + start).initializeMemory(as: UInt8.self, repeating: 0, count: newSize - item.1)
                            try initialize(ObjectHandle(heap: self, reference: item.0), item.1)
                        }
                    }
                    for item in batch where item.2 {
                        let target = moved[item.0]!
                        for slot in referrers[item.0] ?? [] {
                            var offset = slot.offset
                            var container = slot.block
                            if let copy = relocated[slot.block] ?? moved[slot.block] {
                                offset = Int(copy) + (slot.offset - Int(slot.block))
                                container = copy
                            }
                            if container == 0 {
                                try context.prepareRawWrite(offset: offset, count: 8)
                            } else if !context.prepareWrite(block: container, offset: offset, count: 8) {
                                throw HeapError.transactionAborted
                            }
                            (base + offset).storeBytes(of: target, as: UInt64.self)
                        }
                        try context.free(block: item.0)
                    }
                }
            } catch HeapError.transactionTooLarge where end - next > 1 {
                budget = max(1, budget / 2)
                continue
            }
            relocated.merge(moved) { $1 }
            next = end
        }
        return items.count
    }

    /// The number of objects of `type` whose fields are not `type.persistentSize` bytes (objects
    /// made with another layout). Walks the chunk table.
    public func objectsWithOtherSizes(of type: any PersistentObject.Type) -> Int {
        let id = type.persistentTypeID
        var count = 0
        walkBlocks(problem: { _ in }) { offset, _, _ in
            let block = base + offset
            if block.load(as: UInt64.self) == id, Int(truncatingIfNeeded: block.load(fromByteOffset: 8, as: UInt64.self)) != type.persistentSize {
                count += 1
            }
        }
        return count
    }

    /// Every word that holds a reference to one of `targets`, as (the block that contains it, 0
    /// for the root table; its pool offset). Walks everything reachable from the roots.
    private func referrers(to targets: Set<UInt64>, of type: any PersistentObject.Type,
                           layouts: [UInt64: [Int]]) throws(HeapError) -> [UInt64: [(block: UInt64, offset: Int)]] {
        let registered = knownTypes
        let stored = typesLock.withLock { poolTypes }
        var result: [UInt64: [(block: UInt64, offset: Int)]] = [:]
        var seen: Set<UInt64> = []
        var stack: [UInt64] = []
        var blocked: Set<String> = []
        for index in 0..<PoolLayout.rootCapacity {
            let offset = layout.rootTableOffset + index * PoolLayout.rootEntrySize
            let reference = (base + offset).load(as: UInt64.self)
            guard reference != 0, (base + offset).load(fromByteOffset: 8, as: UInt8.self) != 0 else { continue }
            if targets.contains(reference) { result[reference, default: []].append((0, offset)) }
            stack.append(reference)
        }
        while let reference = stack.popLast() {
            guard seen.insert(reference).inserted,
                  Int(reference) >= layout.heapOffset, Int(reference) + ObjectHeader.size <= mapping.mappedSize else { continue }
            let handle = ObjectHandle(heap: self, reference: reference)
            let typeID = handle.typeID
            let offsets: [Int]
            if let holder = registered[typeID] {
                offsets = holder.persistentReferenceOffsets(of: handle)
            } else if let known = layouts[typeID] {
                offsets = known
            } else {
                if typeID != TypeID.bytes { blocked.insert(stored[typeID] ?? "type \(String(typeID, radix: 16))") }
                continue
            }
            for offset in offsets where offset >= 0 && offset + 8 <= handle.size {
                let target = handle.fields.load(fromByteOffset: offset, as: UInt64.self)
                guard target != 0 else { continue }
                if targets.contains(target) {
                    result[target, default: []].append((reference, Int(reference) + ObjectHeader.size + offset))
                }
                stack.append(target)
            }
        }
        if !blocked.isEmpty { throw .migrationBlocked(type: type.persistentTypeName, unregistered: blocked.sorted()) }
        return result
    }
}
