import FerriteHeap

/// An ordered map in a pool: a B+ tree whose leaves are linked both ways, so range scans run in
/// either direction.
///
/// Every node is a block of up to ``fanout`` keys: inner nodes route by separator keys (owned
/// copies, so that removing a key never leaves a separator pointing at freed storage), leaves hold
/// the keys and values in order. Inserting splits full nodes; removing a leaf's last key unlinks
/// and frees the leaf (nodes are not merged when merely underfull, as in many production
/// B-trees: lookups stay logarithmic in the number of keys ever stored).
///
/// It is a `BidirectionalCollection` of `(key, value)` pairs in key order: `for (k, v) in map`,
/// `map.reversed()`, `map[map.lowerBound(a)..<map.lowerBound(b)]`. Indices are invalidated by
/// any mutation. Mutations are failure-atomic and hold the map's transaction lock, as for
/// ``PersistentDictionary``; ``value(forKey:)`` and ``entries(from:through:limit:reverse:)`` may run
/// alongside a writer (they retry until they read no unfinished change). Walking the collection
/// needs no concurrent writer.
public final class PersistentSortedMap<Key: PersistentComparable, Value: PersistentStorable>: PersistentObject, TransactionLockedCollection, BidirectionalCollection, @unchecked Sendable {
    public static var persistentTypeName: String { "Ferrite.SortedMap<\(Key.persistentTag),\(Value.persistentTag)>" }
    public static var persistentSize: Int { 40 }
    public static var persistentReferenceOffsets: [Int] { [SortedMapLayout.root] }
    public static var persistentDependentTypes: [any PersistentObject.Type] { [SortedMapNode<Key, Value>.self] + referencedTypes(Key.self, Value.self) }
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    @usableFromInline typealias Node = SortedMapNodeView<Key, Value>
    /// The most keys a node holds.
    public static var fanout: Int { Node.fanout }

    /// Creates an empty map in `heap` (in the current transaction, or in one of its own).
    public static func make(in heap: Heap) throws -> PersistentSortedMap {
        try heap.transaction {
            let map = try heap.allocate(PersistentSortedMap.self)
            let leaf = try Node.make(leaf: true, in: heap)
            map.handle[UInt64.self, at: SortedMapLayout.root] = leaf.reference
            map.handle[UInt64.self, at: SortedMapLayout.first] = leaf.reference
            map.handle[UInt64.self, at: SortedMapLayout.last] = leaf.reference
            return map
        }
    }

    @inlinable var heap: Heap { handle.heap }
    @inlinable func node(_ reference: UInt64) -> Node { Node(reference: reference, heap: heap) }
    @inlinable var root: Node { node(handle[UInt64.self, at: SortedMapLayout.root]) }

    /// The number of keys.
    public var count: Int { handle.readConsistently(wordAt: SortedMapLayout.lock) { handle[Int.self, at: SortedMapLayout.count] } }
    public var isEmpty: Bool { count == 0 }

    // MARK: Lookups

    /// The leaf where `key` is or belongs, and the path of (inner node, child index) above it.
    private func descend(to key: Key, path: inout [(Node, Int)]) -> Node {
        var current = root
        var depth = 0
        while !current.isLeaf && depth < 64 {
            let child = current.upperBound(key, heap: heap)
            path.append((current, child))
            current = node(current.child(child))
            depth += 1
        }
        return current
    }

    /// The leaf where `key` is or belongs.
    @inlinable
    func leaf(for key: Key, heap: Heap) -> Node {
        var current = Node(reference: handle[UInt64.self, at: SortedMapLayout.root], heap: heap)
        var depth = 0
        while !current.isLeaf && depth < 64 {
            current = Node(reference: current.child(current.upperBound(key, heap: heap)), heap: heap)
            depth += 1
        }
        return current
    }

    /// The value for `key`, or nil.
    @inlinable
    public func value(forKey key: Key) -> Value? {
        let heap = self.heap
        return handle.readConsistently(wordAt: SortedMapLayout.lock) {
            let leaf = self.leaf(for: key, heap: heap)
            let position = leaf.lowerBound(key, heap: heap)
            guard position < leaf.count, Key.compareStored(at: leaf.key(position), heap: heap, with: key) == 0 else { return nil }
            return Value.loadStored(from: leaf.value(position), heap: heap)
        }
    }

    /// The value for `key` (nil if absent). Setting it stores (or, with nil, removes) the value;
    /// the setter traps if the pool is full (use ``updateValue(_:forKey:)`` to handle that).
    @inlinable
    public subscript(key: Key) -> Value? {
        get { value(forKey: key) }
        set {
            storeOrRemove(newValue, in: "PersistentSortedMap", update: { try updateValue($0, forKey: key) }, remove: { try removeValue(forKey: key) })
        }
    }

    /// Up to `limit` entries in key order from the first key at or after `start` (at or before it,
    /// `reverse`d), stopping at `end` (inclusive) when given. Consistent even alongside a writer.
    @inlinable
    public func entries(from start: Key? = nil, through end: Key? = nil, limit: Int = .max, reverse: Bool = false) -> [(key: Key, value: Value)] {
        let heap = self.heap
        return handle.readConsistently(wordAt: SortedMapLayout.lock) {
            var result: [(key: Key, value: Value)] = []
            if limit < 1 << 16 { result.reserveCapacity(limit) }
            walk(from: start, through: end, limit: limit, reverse: reverse, heap: heap) { leaf, position in
                result.append((Key.loadStored(from: leaf.key(position), heap: heap), Value.loadStored(from: leaf.value(position), heap: heap)))
            }
            return result
        }
    }

    /// The values of ``entries(from:through:limit:reverse:)``, without making the keys: a scan that
    /// needs only the values (records found through an index) saves a `Key` per entry (for
    /// `String` keys, an allocation and a UTF-8 check each). Consistent even alongside a writer.
    @inlinable
    public func values(from start: Key? = nil, through end: Key? = nil, limit: Int = .max, reverse: Bool = false) -> [Value] {
        let heap = self.heap
        return handle.readConsistently(wordAt: SortedMapLayout.lock) {
            var result: [Value] = []
            if limit < 1 << 16 { result.reserveCapacity(limit) }
            walk(from: start, through: end, limit: limit, reverse: reverse, heap: heap) { leaf, position in
                result.append(Value.loadStored(from: leaf.value(position), heap: heap))
            }
            return result
        }
    }

    /// Calls `visit` with the leaf and position of up to `limit` entries in key order from the
    /// first key at or after `start` (at or before it, `reverse`d), stopping after `end` when
    /// given. Runs inside ``readConsistently``: bounded however the nodes read.
    @inlinable
    func walk(from start: Key?, through end: Key?, limit: Int, reverse: Bool, heap: Heap, _ visit: (Node, Int) -> Void) {
        var leaf: Node, position: Int
        if let start {
            leaf = self.leaf(for: start, heap: heap)
            position = leaf.lowerBound(start, heap: heap)
            if reverse {
                // The last key at or before `start`.
                if position < leaf.count, Key.compareStored(at: leaf.key(position), heap: heap, with: start) == 0 {} else { position -= 1 }
            }
        } else {
            leaf = node(handle[UInt64.self, at: reverse ? SortedMapLayout.last : SortedMapLayout.first])
            position = reverse ? leaf.count - 1 : 0
        }
        var visited = 0, steps = 0
        while visited < limit && leaf.isValid && steps < 1 << 40 {
            steps += 1
            if position < 0 {
                leaf = node(leaf.previous); position = leaf.count - 1; continue
            }
            if position >= leaf.count {
                leaf = node(leaf.next); position = 0; continue
            }
            if let end {
                let order = Key.compareStored(at: leaf.key(position), heap: heap, with: end)
                if reverse ? order < 0 : order > 0 { break }
            }
            visit(leaf, position)
            visited += 1
            position += reverse ? -1 : 1
        }
    }

    // MARK: Mutations

    /// Takes the map's lock until the current transaction ends (mutations take it themselves).
    public func lock() throws { try handle.lockUntilTransactionEnds(wordAt: SortedMapLayout.lock) }

    /// Sets the value for `key` and returns the old one (nil if the key is new). Failure-atomic.
    @discardableResult
    public func updateValue(_ value: Value, forKey key: Key) throws -> Value? {
        try mutate {
            var path: [(Node, Int)] = []
            let leaf = descend(to: key, path: &path)
            let position = leaf.lowerBound(key, heap: heap)
            if position < leaf.count, Key.compareStored(at: leaf.key(position), heap: heap, with: key) == 0 {
                let old = Value.loadStored(from: leaf.value(position), heap: heap)
                if Value.persistentOwnsStorage { try Value.releaseStored(at: leaf.value(position), heap: heap) }
                try value.store(into: leaf.handle, at: leaf.valueOffset(position))
                return old
            }
            if leaf.count < Node.fanout {
                try leaf.insert(key, value, at: position)
            } else {
                // Split: the upper half moves to a new leaf linked after this one.
                let right = try Node.make(leaf: true, in: heap)
                let half = Node.fanout / 2
                leaf.moveUpperHalf(from: half, to: right)
                right.handle[UInt64.self, at: SortedMapNodeLayout.previous] = leaf.reference
                right.handle[UInt64.self, at: SortedMapNodeLayout.next] = leaf.next
                if leaf.next != 0 {
                    node(leaf.next).handle[UInt64.self, at: SortedMapNodeLayout.previous] = right.reference
                } else {
                    handle[UInt64.self, at: SortedMapLayout.last] = right.reference
                }
                leaf.handle[UInt64.self, at: SortedMapNodeLayout.next] = right.reference
                if position <= half { try leaf.insert(key, value, at: position) } else { try right.insert(key, value, at: position - half) }
                // The separator is a copy of the right leaf's first key, owned by the parent.
                let separator = Key.loadStored(from: right.key(0), heap: heap)
                try insertSeparator(separator, right: right, path: path)
            }
            handle[Int.self, at: SortedMapLayout.count] += 1
            return nil
        }
    }

    /// Inserts `separator` and the new node `right` after the child followed at the end of `path`
    /// (which is then the split node's parent), splitting inner nodes as needed.
    private func insertSeparator(_ separator: Key, right: Node, path: [(Node, Int)]) throws {
        var path = path
        var pending: (key: Key?, raw: [UInt8]?, right: Node) = (separator, nil, right)
        while true {
            guard let (parent, child) = path.popLast() else {
                // The root split: a new root above it.
                let newRoot = try Node.make(leaf: false, in: heap)
                newRoot.handle[UInt64.self, at: newRoot.childOffset(0)] = handle[UInt64.self, at: SortedMapLayout.root]
                try newRoot.insertInner(key: pending.key, raw: pending.raw, right: pending.right.reference, at: 0)
                handle[UInt64.self, at: SortedMapLayout.root] = newRoot.reference
                return
            }
            if parent.count < Node.fanout {
                try parent.insertInner(key: pending.key, raw: pending.raw, right: pending.right.reference, at: child)
                return
            }
            // Split the inner node: its middle key moves up (its bytes, with the storage it owns).
            let newRight = try Node.make(leaf: false, in: heap)
            let middle = Node.fanout / 2
            let up = parent.splitInner(at: middle, into: newRight)
            if child <= middle {
                try parent.insertInner(key: pending.key, raw: pending.raw, right: pending.right.reference, at: child)
            } else {
                try newRight.insertInner(key: pending.key, raw: pending.raw, right: pending.right.reference, at: child - middle - 1)
            }
            pending = (nil, up, newRight)
        }
    }

    /// Removes `key` and returns its value (nil if absent). Failure-atomic; frees what the key and
    /// value owned, and the leaf if it empties.
    @discardableResult
    public func removeValue(forKey key: Key) throws -> Value? {
        try mutate {
            var path: [(Node, Int)] = []
            let leaf = descend(to: key, path: &path)
            let position = leaf.lowerBound(key, heap: heap)
            guard position < leaf.count, Key.compareStored(at: leaf.key(position), heap: heap, with: key) == 0 else { return nil }
            let old = Value.loadStored(from: leaf.value(position), heap: heap)
            try leaf.remove(at: position, releasing: true)
            handle[Int.self, at: SortedMapLayout.count] -= 1
            if leaf.count == 0 && !path.isEmpty { try removeLeaf(leaf, path: path) }
            return old
        }
    }

    /// Unlinks and frees an empty leaf (not the only one), removing it from its ancestors.
    private func removeLeaf(_ leaf: Node, path: [(Node, Int)]) throws {
        if leaf.previous != 0 {
            node(leaf.previous).handle[UInt64.self, at: SortedMapNodeLayout.next] = leaf.next
        } else {
            handle[UInt64.self, at: SortedMapLayout.first] = leaf.next
        }
        if leaf.next != 0 {
            node(leaf.next).handle[UInt64.self, at: SortedMapNodeLayout.previous] = leaf.previous
        } else {
            handle[UInt64.self, at: SortedMapLayout.last] = leaf.previous
        }
        try heap.free(leaf.handle)
        var path = path
        while let (parent, child) = path.popLast() {
            if parent.count > 0 {
                try parent.removeInner(child: child)
                break
            }
            // The parent had this child only: it goes too.
            try heap.free(parent.handle)
        }
        // A root with one child and no key is replaced by that child.
        var current = root
        while !current.isLeaf && current.count == 0 {
            handle[UInt64.self, at: SortedMapLayout.root] = current.child(0)
            try heap.free(current.handle)
            current = root
        }
    }

    /// Removes every key, keeping one empty leaf. Failure-atomic.
    public func removeAll() throws {
        try mutate {
            try release(root)
            let leaf = try Node.make(leaf: true, in: heap)
            for field in [SortedMapLayout.root, SortedMapLayout.first, SortedMapLayout.last] { handle[UInt64.self, at: field] = leaf.reference }
            handle[Int.self, at: SortedMapLayout.count] = 0
        }
    }

    /// Frees the map, its nodes and what its keys and values own. Nothing may use it afterwards.
    public func destroy() throws {
        try mutate {
            try release(root)
            try heap.free(handle)
        }
    }

    private func release(_ node: Node) throws {
        for position in 0..<node.count {
            if Key.persistentOwnsStorage { try Key.releaseStored(at: node.key(position), heap: heap) }
            if node.isLeaf && Value.persistentOwnsStorage { try Value.releaseStored(at: node.value(position), heap: heap) }
        }
        if !node.isLeaf { for child in 0...node.count { try release(self.node(node.child(child))) } }
        try heap.free(node.handle)
    }

    // MARK: BidirectionalCollection

    /// A position in the map: a leaf and a slot in it. Invalidated by any mutation.
    public struct Index: Comparable {
        let leaf: UInt64
        let slot: Int
        /// The key at this position (nil at the end), for ordering positions of different leaves.
        let ordinal: Key?

        public static func == (lhs: Index, rhs: Index) -> Bool { lhs.leaf == rhs.leaf && lhs.slot == rhs.slot }
        public static func < (lhs: Index, rhs: Index) -> Bool {
            if lhs.leaf == rhs.leaf { return lhs.slot < rhs.slot }
            guard let a = lhs.ordinal else { return false }
            guard let b = rhs.ordinal else { return true }
            return a < b
        }
    }

    private func index(leaf: Node, slot: Int) -> Index {
        if slot < leaf.count { return Index(leaf: leaf.reference, slot: slot, ordinal: Key.loadStored(from: leaf.key(slot), heap: heap)) }
        if leaf.next != 0 { return index(leaf: node(leaf.next), slot: 0) }
        return endIndex
    }

    public var startIndex: Index { index(leaf: node(handle[UInt64.self, at: SortedMapLayout.first]), slot: 0) }
    public var endIndex: Index { Index(leaf: 0, slot: 0, ordinal: nil) }

    public func index(after i: Index) -> Index { index(leaf: node(i.leaf), slot: i.slot + 1) }

    public func index(before i: Index) -> Index {
        var leaf = i.leaf == 0 ? node(handle[UInt64.self, at: SortedMapLayout.last]) : node(i.leaf)
        var slot = i.leaf == 0 ? leaf.count : i.slot
        while slot == 0 {
            precondition(leaf.previous != 0, "index(before:) the start of a PersistentSortedMap")
            leaf = node(leaf.previous)
            slot = leaf.count
        }
        return Index(leaf: leaf.reference, slot: slot - 1, ordinal: Key.loadStored(from: leaf.key(slot - 1), heap: heap))
    }

    public subscript(position: Index) -> (key: Key, value: Value) {
        precondition(position.leaf != 0, "PersistentSortedMap index out of range")
        let leaf = node(position.leaf)
        return (Key.loadStored(from: leaf.key(position.slot), heap: heap), Value.loadStored(from: leaf.value(position.slot), heap: heap))
    }

    /// The position of the first key at or after `key`.
    public func lowerBound(_ key: Key) -> Index {
        var path: [(Node, Int)] = []
        let leaf = descend(to: key, path: &path)
        return index(leaf: leaf, slot: leaf.lowerBound(key, heap: heap))
    }

    /// The position of `key`, or nil.
    public func index(forKey key: Key) -> Index? {
        let i = lowerBound(key)
        return i.ordinal == key ? i : nil
    }

    /// Checks the tree's structure (ordering, separators, leaf links, count). For tests.
    public func checkInvariants() -> [String] {
        var problems: [String] = []
        var leaves: [UInt64] = []
        var total = 0
        func walk(_ node: Node, low: Key?, high: Key?, depth: Int, leafDepth: inout Int?) {
            var previous: Key?
            for position in 0..<node.count {
                let key = Key.loadStored(from: node.key(position), heap: heap)
                if let previous, !(previous < key) { problems.append("keys out of order in node \(node.reference)") }
                if let low, key < low { problems.append("key below its separator in node \(node.reference)") }
                if let high, !(key < high) { problems.append("key at or above its separator in node \(node.reference)") }
                previous = key
            }
            if node.isLeaf {
                if let leafDepth, leafDepth != depth { problems.append("leaves at different depths") }
                leafDepth = depth
                leaves.append(node.reference)
                total += node.count
                return
            }
            for child in 0...node.count {
                let childLow = child == 0 ? low : Key.loadStored(from: node.key(child - 1), heap: heap)
                let childHigh = child == node.count ? high : Key.loadStored(from: node.key(child), heap: heap)
                walk(self.node(node.child(child)), low: childLow, high: childHigh, depth: depth + 1, leafDepth: &leafDepth)
            }
        }
        var leafDepth: Int?
        walk(root, low: nil, high: nil, depth: 0, leafDepth: &leafDepth)
        if total != handle[Int.self, at: SortedMapLayout.count] { problems.append("count \(handle[Int.self, at: SortedMapLayout.count]) but \(total) keys") }
        var linked: [UInt64] = []
        var leaf = handle[UInt64.self, at: SortedMapLayout.first]
        var previous: UInt64 = 0
        while leaf != 0 && linked.count <= leaves.count {
            if node(leaf).previous != previous { problems.append("leaf \(leaf) has a wrong previous link") }
            linked.append(leaf)
            previous = leaf
            leaf = node(leaf).next
        }
        if linked != leaves { problems.append("the leaf chain does not list the leaves in order") }
        if handle[UInt64.self, at: SortedMapLayout.last] != previous { problems.append("the last-leaf link is wrong") }
        return problems
    }
}

/// Field offsets of a ``PersistentSortedMap``.
@usableFromInline enum SortedMapLayout {
    @usableFromInline static let lock = CollectionHeader.lock, count = 8, root = 16, first = 24, last = 32
}

/// Field offsets of a node: an info word (key count, bit 32 set for leaves), the leaf links, the
/// keys, then the values (leaves) or `fanout + 1` child references (inner nodes).
@usableFromInline enum SortedMapNodeLayout {
    @usableFromInline static let info = 0, previous = 8, next = 16, keys = 24
    @usableFromInline static let leafFlag: UInt64 = 1 << 32
}

/// A node of a sorted map, read and written in place.
@usableFromInline
struct SortedMapNodeView<Key: PersistentComparable, Value: PersistentStorable> {
    @usableFromInline let handle: ObjectHandle
    @usableFromInline let isValid: Bool

    @inlinable static var fanout: Int { 32 }
    @inlinable static var keyStride: Int { Stored.stride(Key.self) }
    @inlinable static var valueStride: Int { Stored.stride(Value.self) }
    @inlinable static var tailOffset: Int { SortedMapNodeLayout.keys + fanout * keyStride }
    @inlinable static var nodeSize: Int { tailOffset + Swift.max(fanout * valueStride, (fanout + 1) * 8) }

    /// A node view; a reference read alongside a writer may be anything, and then the node reads
    /// as an empty leaf unless it lies inside the pool.
    @inlinable
    init(reference: UInt64, heap: Heap) {
        handle = ObjectHandle(unchecked: reference, in: heap)
        isValid = reference != 0 && heap.contains(reference, count: Self.nodeSize)
    }

    static func make(leaf: Bool, in heap: Heap) throws(HeapError) -> SortedMapNodeView {
        let node = try heap.allocate(SortedMapNode<Key, Value>.self, size: nodeSize)
        if leaf { node.handle.fields.storeBytes(of: SortedMapNodeLayout.leafFlag, as: UInt64.self) }  // a new block
        return SortedMapNodeView(reference: node.reference, heap: heap)
    }

    @inlinable var reference: UInt64 { handle.reference }
    @inlinable var info: UInt64 { isValid ? handle[UInt64.self, at: SortedMapNodeLayout.info] : SortedMapNodeLayout.leafFlag }
    @inlinable var isLeaf: Bool { info & SortedMapNodeLayout.leafFlag != 0 }
    @inlinable var count: Int { Swift.min(Self.fanout, Int(info & 0xFFFF_FFFF)) }
    @inlinable var previous: UInt64 { isValid ? handle[UInt64.self, at: SortedMapNodeLayout.previous] : 0 }
    @inlinable var next: UInt64 { isValid ? handle[UInt64.self, at: SortedMapNodeLayout.next] : 0 }

    @inlinable func keyOffset(_ i: Int) -> Int { SortedMapNodeLayout.keys + i * Self.keyStride }
    @inlinable func valueOffset(_ i: Int) -> Int { Self.tailOffset + i * Self.valueStride }
    @inlinable func childOffset(_ i: Int) -> Int { Self.tailOffset + i * 8 }
    @inlinable func key(_ i: Int) -> UnsafeMutableRawPointer { handle.fields + keyOffset(i) }
    @inlinable func value(_ i: Int) -> UnsafeMutableRawPointer { handle.fields + valueOffset(i) }
    @inlinable func child(_ i: Int) -> UInt64 { handle[UInt64.self, at: childOffset(i)] }

    private func setCount(_ count: Int) {
        handle[UInt64.self, at: SortedMapNodeLayout.info] = (isLeaf ? SortedMapNodeLayout.leafFlag : 0) | UInt64(count)
    }

    /// The first position whose key is not less than `key`.
    @inlinable func lowerBound(_ key: Key, heap: Heap) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if Key.compareStored(at: self.key(middle), heap: heap, with: key) < 0 { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The first position whose key is greater than `key` (the child to follow).
    @inlinable func upperBound(_ key: Key, heap: Heap) -> Int {
        var low = 0, high = count
        while low < high {
            let middle = (low + high) / 2
            if Key.compareStored(at: self.key(middle), heap: heap, with: key) <= 0 { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Moves `count` stored items of `stride` bytes starting at `offset(from)` to `offset(to)` (logged).
    private func move(_ offset: (Int) -> Int, from: Int, to: Int, count: Int, stride: Int) {
        guard count > 0 else { return }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: handle.fields + offset(from), count: count * stride))
        bytes.withUnsafeBytes { handle.storeBytes($0, at: offset(to)) }
    }

    func insert(_ key: Key, _ value: Value, at position: Int) throws(HeapError) {
        let count = self.count
        move(keyOffset, from: position, to: position + 1, count: count - position, stride: Self.keyStride)
        move(valueOffset, from: position, to: position + 1, count: count - position, stride: Self.valueStride)
        try key.store(into: handle, at: keyOffset(position))
        try value.store(into: handle, at: valueOffset(position))
        setCount(count + 1)
    }

    /// Removes a leaf entry, freeing what it owns when `releasing`.
    func remove(at position: Int, releasing: Bool) throws(HeapError) {
        let count = self.count
        if releasing {
            if Key.persistentOwnsStorage { try Key.releaseStored(at: key(position), heap: handle.heap) }
            if Value.persistentOwnsStorage { try Value.releaseStored(at: value(position), heap: handle.heap) }
        }
        move(keyOffset, from: position + 1, to: position, count: count - position - 1, stride: Self.keyStride)
        move(valueOffset, from: position + 1, to: position, count: count - position - 1, stride: Self.valueStride)
        setCount(count - 1)
    }

    /// Moves the entries from `half` on into the empty new leaf `right`.
    func moveUpperHalf(from half: Int, to right: SortedMapNodeView) {
        let count = self.count, moved = count - half
        // `right` is a new block: written directly, copied whole at commit.
        right.handle.fields.advanced(by: keyOffset(0)).copyMemory(from: key(half), byteCount: moved * Self.keyStride)
        right.handle.fields.advanced(by: valueOffset(0)).copyMemory(from: value(half), byteCount: moved * Self.valueStride)
        right.handle.fields.storeBytes(of: SortedMapNodeLayout.leafFlag | UInt64(moved), as: UInt64.self)
        setCount(half)
    }

    /// Inserts a separator (a `key` to store, or the `raw` stored bytes of one moving up from a
    /// split) at `position`, with `right` as the child after it.
    func insertInner(key: Key?, raw: [UInt8]?, right: UInt64, at position: Int) throws(HeapError) {
        let count = self.count
        move(keyOffset, from: position, to: position + 1, count: count - position, stride: Self.keyStride)
        move(childOffset, from: position + 1, to: position + 2, count: count - position, stride: 8)
        if let key { try key.store(into: handle, at: keyOffset(position)) }
        if let raw { raw.withUnsafeBytes { handle.storeBytes($0, at: keyOffset(position)) } }
        handle[UInt64.self, at: childOffset(position + 1)] = right
        setCount(count + 1)
    }

    /// Splits a full inner node: keys after `middle` and their children move to the empty new
    /// node `right`; the middle key's stored bytes are returned (to move up, with what they own).
    func splitInner(at middle: Int, into right: SortedMapNodeView) -> [UInt8] {
        let count = self.count, moved = count - middle - 1
        let up = [UInt8](UnsafeRawBufferPointer(start: key(middle), count: Self.keyStride))
        right.handle.fields.advanced(by: keyOffset(0)).copyMemory(from: key(middle + 1), byteCount: moved * Self.keyStride)
        right.handle.fields.advanced(by: childOffset(0)).copyMemory(from: handle.fields + childOffset(middle + 1), byteCount: (moved + 1) * 8)
        right.handle.fields.storeBytes(of: UInt64(moved), as: UInt64.self)
        setCount(middle)
        return up
    }

    /// Removes child `child` and one separator next to it (the one before it, or the first).
    func removeInner(child: Int) throws(HeapError) {
        let count = self.count
        let separator = child > 0 ? child - 1 : 0
        if Key.persistentOwnsStorage { try Key.releaseStored(at: key(separator), heap: handle.heap) }
        move(keyOffset, from: separator + 1, to: separator, count: count - separator - 1, stride: Self.keyStride)
        move(childOffset, from: child + 1, to: child, count: count - child, stride: 8)
        setCount(count - 1)
    }
}

/// The block type of sorted-map nodes (so the verifier can follow their references).
final class SortedMapNode<Key: PersistentComparable, Value: PersistentStorable>: PersistentObject, @unchecked Sendable {
    static var persistentTypeName: String { "Ferrite.SortedMapNode<\(Key.persistentTag),\(Value.persistentTag)>" }
    static var persistentSize: Int { SortedMapNodeView<Key, Value>.nodeSize }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] {
        let node = SortedMapNodeView<Key, Value>(reference: handle.reference, heap: handle.heap)
        var offsets: [Int] = []
        for position in 0..<node.count {
            offsets += Key.persistentStoredReferenceOffsets.map { node.keyOffset(position) + $0 }
            if node.isLeaf { offsets += Value.persistentStoredReferenceOffsets.map { node.valueOffset(position) + $0 } }
        }
        if !node.isLeaf { for child in 0...node.count { offsets.append(node.childOffset(child)) } }
        if node.isLeaf { offsets += [SortedMapNodeLayout.previous, SortedMapNodeLayout.next] }
        return offsets
    }
}
