import FerriteHeap
import Synchronization

/// A hash map in a pool whose index is persistent: opening the pool rebuilds nothing, the first
/// lookup is as fast as the millionth.
///
/// Layout: open addressing with linear probing in one table block of fixed-size slots (a control
/// word with the key's stable hash, then the key's and the value's stored bytes; strings are
/// owned blocks the slots point at). It grows incrementally: when the table is three quarters
/// used, a table twice as large is allocated and every later mutation moves a few slots of the
/// old table into it, so no mutation ever rehashes the whole map. Lookups during that time
/// consult both tables.
///
/// Every mutation is failure-atomic, inside the caller's transaction or in one of its own (one
/// persist fence). A mutation holds the map's transaction lock until its transaction ends, so
/// writers take turns; readers take no lock and never wait for one another: a lookup that
/// overlaps a writer's transaction is retried until it reads no unfinished change (see
/// ``ObjectHandle/readConsistently(wordAt:_:)``). Lookups by a writer inside its transaction see
/// its own changes.
public final class PersistentDictionary<Key: PersistentHashable, Value: PersistentStorable>: PersistentObject, TransactionLockedCollection, Sequence, @unchecked Sendable {
    public static var persistentTypeName: String { "Ferrite.Dictionary<\(Key.persistentTag),\(Value.persistentTag)>" }
    public static var persistentSize: Int { 48 }
    public static var persistentReferenceOffsets: [Int] { [DictionaryLayout.table, DictionaryLayout.oldTable] }
    public static var persistentDependentTypes: [any PersistentObject.Type] { [HashTableObject<Key, Value>.self] + referencedTypes(Key.self, Value.self) }
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    @usableFromInline typealias Table = HashTable<Key, Value>

    /// Creates an empty dictionary in `heap` (in the current transaction, or in one of its own).
    public static func make(in heap: Heap, minimumCapacity: Int = 0) throws -> PersistentDictionary {
        try heap.transaction {
            let dictionary = try heap.allocate(PersistentDictionary.self)
            let capacity = Table.capacity(for: minimumCapacity)
            dictionary.handle[UInt64.self, at: DictionaryLayout.table] = try Table.make(capacity: capacity, in: heap).reference
            return dictionary
        }
    }

    @inlinable var heap: Heap { handle.heap }

    /// The number of keys.
    public var count: Int { handle.readConsistently(wordAt: DictionaryLayout.lock) { handle[Int.self, at: DictionaryLayout.count] } }
    public var isEmpty: Bool { count == 0 }

    // MARK: Lookups

    /// The value for `key`, or nil.
    @inlinable
    public func value(forKey key: Key) -> Value? {
        let hash = key.persistentHash
        let handle = self.handle
        let heap = handle.heap
        return handle.readConsistently(wordAt: DictionaryLayout.lock) { () -> Value? in
            guard let (table, slot) = Self.find(key, hash: hash, handle: handle, heap: heap, trusted: false) else { return nil }
            return Value.loadStored(from: table.value(slot), heap: heap)
        }
    }

    /// Whether the dictionary holds `key`.
    @inlinable
    public func contains(_ key: Key) -> Bool {
        let hash = key.persistentHash
        let handle = self.handle
        let heap = handle.heap
        return handle.readConsistently(wordAt: DictionaryLayout.lock) { Self.find(key, hash: hash, handle: handle, heap: heap, trusted: false) != nil }
    }

    /// Finds `key` in the current table, then in the old one while it is being migrated.
    @inlinable
    static func find(_ key: Key, hash: UInt64, handle: ObjectHandle, heap: Heap, trusted: Bool = true) -> (Table, Int)? {
        let current = Table(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap, trusted: trusted)
        if let slot = current.find(key, hash: hash, heap: heap) { return (current, slot) }
        let oldReference = handle[UInt64.self, at: DictionaryLayout.oldTable]
        if oldReference == 0 { return nil }
        let old = Table(reference: oldReference, heap: heap, trusted: trusted)
        if let slot = old.find(key, hash: hash, heap: heap) { return (old, slot) }
        return nil
    }

    // MARK: Mutations

    /// Takes the dictionary's lock until the current transaction ends, so that other threads'
    /// mutations wait and their readers see none of this transaction's changes before it ends.
    /// Mutations take it themselves; call it first to read and then write atomically.
    public func lock() throws { try handle.lockUntilTransactionEnds(wordAt: DictionaryLayout.lock) }

    /// Sets the value for `key` and returns the old one (nil if the key is new). Failure-atomic.
    @inlinable @discardableResult
    public func updateValue(_ value: Value, forKey key: Key) throws -> Value? {
        try mutate {
            try migrateStep()
            let hash = key.persistentHash
            let heap = self.heap
            if let (table, slot) = Self.find(key, hash: hash, handle: handle, heap: heap) {
                let old = Value.loadStored(from: table.value(slot), heap: heap)
                if Value.persistentOwnsStorage { try Value.releaseStored(at: table.value(slot), heap: heap) }
                let target = try table.writableSlot(slot)
                try value.store(into: target.segment, at: target.offset + 8 + Table.keyStride)
                return old
            }
            var table = Table(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap)
            if handle[Int.self, at: DictionaryLayout.used] + 1 > table.maximumLoad {
                try grow()
                table = Table(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap)
            }
            let (slot, reused) = table.insertionSlot(hash: hash)
            let target = try table.writableSlot(slot)
            try key.store(into: target.segment, at: target.offset + 8)
            try value.store(into: target.segment, at: target.offset + 8 + Table.keyStride)
            target.segment[UInt64.self, at: target.offset] = Table.tag(hash)
            handle[Int.self, at: DictionaryLayout.count] += 1
            if !reused { handle[Int.self, at: DictionaryLayout.used] += 1 }
            return nil
        }
    }

    /// Removes `key` and returns its value (nil if it was absent). Failure-atomic; frees what the
    /// key and value owned.
    @inlinable @discardableResult
    public func removeValue(forKey key: Key) throws -> Value? {
        try mutate {
            try migrateStep()
            let heap = self.heap
            guard let (table, slot) = Self.find(key, hash: key.persistentHash, handle: handle, heap: heap) else { return nil }
            let old = Value.loadStored(from: table.value(slot), heap: heap)
            if Key.persistentOwnsStorage { try Key.releaseStored(at: table.key(slot), heap: heap) }
            if Value.persistentOwnsStorage { try Value.releaseStored(at: table.value(slot), heap: heap) }
            let target = try table.writableSlot(slot)
            target.segment[UInt64.self, at: target.offset] = Table.tombstone
            handle[Int.self, at: DictionaryLayout.count] -= 1
            return old
        }
    }

    /// The value for `key` (nil if absent). Setting it stores (or, with nil, removes) the value,
    /// failure-atomically; the setter traps if the pool is full (use ``updateValue(_:forKey:)``
    /// to handle that error).
    @inlinable
    public subscript(key: Key) -> Value? {
        get { value(forKey: key) }
        set {
            storeOrRemove(newValue, in: "PersistentDictionary", update: { try updateValue($0, forKey: key) }, remove: { try removeValue(forKey: key) })
        }
    }

    /// Removes every key, keeping a small table. Failure-atomic.
    public func removeAll() throws {
        try mutate {
            try releaseAll()
            handle[UInt64.self, at: DictionaryLayout.table] = try Table.make(capacity: Table.capacity(for: 0), in: heap).reference
            handle[UInt64.self, at: DictionaryLayout.oldTable] = 0
            handle[Int.self, at: DictionaryLayout.count] = 0
            handle[Int.self, at: DictionaryLayout.used] = 0
        }
    }

    /// Frees the dictionary, its tables and what its keys and values own. Nothing may use or
    /// reference it afterwards.
    public func destroy() throws {
        try mutate {
            try releaseAll()
            try heap.free(handle)
        }
    }

    // MARK: Iteration

    /// Iterates over the key-value pairs in no particular order. Iterate while no other thread
    /// mutates the dictionary (or after calling ``lock()`` in a transaction).
    public func makeIterator() -> Iterator { Iterator(dictionary: self) }

    /// The pairs of a ``PersistentDictionary``.
    public struct Iterator: IteratorProtocol {
        let heap: Heap
        var tables: [(table: HashTable<Key, Value>, from: Int)]
        var slot: Int

        init(dictionary: PersistentDictionary) {
            heap = dictionary.heap
            let handle = dictionary.handle
            tables = [(HashTable(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap), 0)]
            let old = handle[UInt64.self, at: DictionaryLayout.oldTable]
            if old != 0 {
                let table = HashTable<Key, Value>(reference: old, heap: heap)
                tables.append((table, table.cursor))
            }
            slot = tables[0].from
        }

        public mutating func next() -> (key: Key, value: Value)? {
            while let (table, _) = tables.first {
                while slot < table.capacity {
                    defer { slot += 1 }
                    if table.isLive(slot) {
                        return (Key.loadStored(from: table.key(slot), heap: heap), Value.loadStored(from: table.value(slot), heap: heap))
                    }
                }
                tables.removeFirst()
                slot = tables.first?.from ?? 0
            }
            return nil
        }
    }

    /// One page of a resumable scan, as Redis's `SCAN` works: start with cursor 0 and pass each
    /// returned cursor to the next call until it returns 0. Every key present for the whole scan
    /// is returned at least once, however the table grows or migrates between calls; keys
    /// inserted or removed meanwhile may or may not be, and a key may be returned twice. Each call
    /// returns about `count` pairs (fewer at the end, or where the table is sparse).
    ///
    /// The cursor walks hashes in the order of their bit-reversed low bits (the home slot's
    /// bits): a table that doubles splits every home slot in two without moving its place in
    /// that order, so the part already walked stays walked.
    public func scan(from cursor: UInt64, count: Int) -> (pairs: [(key: Key, value: Value)], cursor: UInt64) {
        let handle = self.handle
        let heap = handle.heap
        return handle.readConsistently(wordAt: DictionaryLayout.lock) { () -> ([(key: Key, value: Value)], UInt64) in
            let current = Table(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap, trusted: false)
            guard current.capacity > 1 else { return ([], 0) }
            let oldReference = handle[UInt64.self, at: DictionaryLayout.oldTable]
            let old = oldReference == 0 ? nil : Table(reference: oldReference, heap: heap, trusted: false)
            let bits = current.capacity.trailingZeroBitCount
            let mask = UInt64(current.capacity - 1)
            var pairs: [(key: Key, value: Value)] = []
            var position = cursor
            var visited = 0
            // Every live slot of `table` probed from `home` whose hash has home slot `want` in
            // the current table.
            func collect(_ table: Table, from home: Int, want: UInt64) {
                let tableMask = table.capacity - 1
                var slot = home
                for _ in 0..<table.capacity {
                    guard let address = table.slot(slot) else { return }
                    let control = address.load(as: UInt64.self)
                    if control == 0 { return }
                    if control & 1 << 63 != 0 && control & mask == want {
                        pairs.append((Key.loadStored(from: address + 8, heap: heap), Value.loadStored(from: address + 8 + Table.keyStride, heap: heap)))
                    }
                    slot = (slot + 1) & tableMask
                }
            }
            repeat {
                let unit = position >> UInt64(64 - bits)
                var home: UInt64 = 0
                for bit in 0..<bits where unit & (1 << UInt64(bit)) != 0 { home |= 1 << UInt64(bits - 1 - bit) }
                collect(current, from: Int(home), want: home)
                if let old, old.capacity > 0 { collect(old, from: Int(home) & (old.capacity - 1), want: home) }
                visited += 1
                position = (unit + 1) << UInt64(64 - bits)  // 0 once the last unit is done
            } while position != 0 && pairs.count < count && visited < Swift.max(count, 1) * 16
            return (pairs, position)
        }
    }

    /// The keys, in iteration order.
    public var keys: [Key] { map(\.key) }
    /// The values, in iteration order.
    public var values: [Value] { map(\.value) }

    // MARK: Growth

    /// How many old-table slots each mutation moves while a migration runs. With growth at 3/4
    /// load, four would finish every migration before the new table fills; 16 leaves a margin.
    @inlinable static var migrationStep: Int { 16 }

    /// Starts a migration to a table twice as large (or as large, when the table is mostly
    /// tombstones), finishing any migration still running first. The new table's segments are
    /// allocated as slots are first written, so growing costs no pause proportional to the map.
    @usableFromInline
    func grow() throws {
        while handle[UInt64.self, at: DictionaryLayout.oldTable] != 0 { try migrateStep() }
        let current = Table(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap)
        let count = handle[Int.self, at: DictionaryLayout.count]
        let capacity = count + 1 > current.capacity / 2 ? current.capacity * 2 : current.capacity
        let new = try Table.make(capacity: capacity, in: heap)
        handle[UInt64.self, at: DictionaryLayout.oldTable] = current.reference
        handle[UInt64.self, at: DictionaryLayout.table] = new.reference
        handle[Int.self, at: DictionaryLayout.used] = 0
        try migrateStep()
    }

    /// Moves the next few slots of the old table (if one is being migrated) into the current one,
    /// leaving tombstones behind.
    @inlinable
    func migrateStep() throws {
        let oldReference = handle[UInt64.self, at: DictionaryLayout.oldTable]
        guard oldReference != 0 else { return }
        try migrate(oldReference)
    }

    @usableFromInline
    func migrate(_ oldReference: UInt64) throws {
        let old = Table(reference: oldReference, heap: heap)
        let current = Table(reference: handle[UInt64.self, at: DictionaryLayout.table], heap: heap)
        var cursor = old.cursor
        let end = Swift.min(old.capacity, cursor + Self.migrationStep)
        var moved = 0
        while cursor < end {
            if old.isLive(cursor) {
                let source = old.slot(cursor)!
                let (slot, reused) = current.insertionSlot(hash: source.load(as: UInt64.self))
                let target = try current.writableSlot(slot)
                target.segment.storeBytes(UnsafeRawBufferPointer(start: source, count: Table.slotSize), at: target.offset)
                let origin = try old.writableSlot(cursor)
                origin.segment[UInt64.self, at: origin.offset] = Table.tombstone  // its storage is the current table's now
                if !reused { moved += 1 }
            }
            cursor += 1
        }
        if moved > 0 { handle[Int.self, at: DictionaryLayout.used] += moved }
        if cursor == old.capacity {
            try old.free()
            handle[UInt64.self, at: DictionaryLayout.oldTable] = 0
        } else {
            old.handle[Int.self, at: HashTableLayout.cursor] = cursor
        }
    }

    /// Frees what every key and value owns, and the tables.
    private func releaseAll() throws {
        for reference in [handle[UInt64.self, at: DictionaryLayout.table], handle[UInt64.self, at: DictionaryLayout.oldTable]] where reference != 0 {
            let table = Table(reference: reference, heap: heap)
            if Key.persistentOwnsStorage || Value.persistentOwnsStorage {
                for slot in 0..<table.capacity where table.isLive(slot) {
                    if Key.persistentOwnsStorage { try Key.releaseStored(at: table.key(slot), heap: heap) }
                    if Value.persistentOwnsStorage { try Value.releaseStored(at: table.value(slot), heap: heap) }
                }
            }
            try table.free()
        }
    }
}

/// Tuning of new dictionary tables (tests shrink segments to exercise many of them; each table
/// records its own segment size, so changing this never affects existing tables).
@_spi(Testing) public enum PersistentDictionaryTuning {
    /// log2 of the slots per segment of tables created from now on (1 to 20).
    public static let segmentSlotsShift = Atomic<Int>(HashTableLayout.segmentSlotsShift)
}

/// Field offsets of a ``PersistentDictionary``.
@usableFromInline enum DictionaryLayout {
    @usableFromInline static let lock = CollectionHeader.lock
    @usableFromInline static let count = 8
    @usableFromInline static let table = 16
    @usableFromInline static let oldTable = 24
    @usableFromInline static let used = 32
}

/// Field offsets of a hash table's directory block.
@usableFromInline enum HashTableLayout {
    /// The capacity (low 56 bits) and log2 of the slots per segment (high 8 bits).
    @usableFromInline static let capacity = 0
    @usableFromInline static let capacityMask: UInt64 = (1 << 56) - 1
    @usableFromInline static let shiftBit: UInt64 = 56
    /// How far a migration out of this table has gone (slots below it are tombstones).
    @usableFromInline static let cursor = 8
    /// Then one reference per segment (0 for a segment not allocated yet: all its slots empty).
    @usableFromInline static let segments = 16
    /// Slots per segment (fewer in a smaller table): 8,192 slots is 192 KiB for 8-byte keys and
    /// values, so allocating one costs well under a millisecond.
    @usableFromInline static let segmentSlotsShift = 13
    /// The largest segment accepted when reading a table: 2^20 slots.
    @usableFromInline static let maximumSegmentSlotsShift = 20
}

/// A hash table: a directory of segments of slots. A slot is a control word (0 empty, 1 tombstone,
/// else the key's hash with bit 63 set), the key's stored bytes, the value's stored bytes.
@usableFromInline
struct HashTable<Key: PersistentHashable, Value: PersistentStorable> {
    /// The directory block.
    @usableFromInline let handle: ObjectHandle
    @usableFromInline let capacity: Int
    @usableFromInline let shift: Int
    @usableFromInline let slotMask: Int
    @usableFromInline let segmentBytes: Int
    /// The heap's working view and the end of its mapped part, read once: a probe then costs no
    /// call into the heap.
    @usableFromInline let fieldsBase: UnsafeMutableRawPointer
    @usableFromInline let limit: UInt64
    /// Whether the caller holds the dictionary's lock (references need no checking).
    @usableFromInline let trusted: Bool

    @inlinable static var keyStride: Int { Stored.stride(Key.self) }
    @inlinable static var slotSize: Int { 8 + keyStride + Stored.stride(Value.self) }
    @inlinable static var tombstone: UInt64 { 1 }
    @inlinable static func tag(_ hash: UInt64) -> UInt64 { hash | 1 << 63 }
    /// log2 of the slots per segment of a new table of `capacity` slots.
    static func shift(capacity: Int) -> Int {
        let tuned = Swift.max(1, Swift.min(HashTableLayout.maximumSegmentSlotsShift, PersistentDictionaryTuning.segmentSlotsShift.load(ordering: .relaxed)))
        return Swift.min(tuned, capacity.trailingZeroBitCount)
    }

    /// A view of the table at `reference`. A reference read while a writer changes things may be
    /// anything: the table is then empty unless its directory lies inside the pool.
    @inlinable
    init(reference: UInt64, heap: Heap, trusted: Bool = true) {
        self.trusted = trusted
        handle = ObjectHandle(unchecked: reference, in: heap)
        let word = heap.contains(reference, count: HashTableLayout.segments) ? handle[UInt64.self, at: HashTableLayout.capacity] : 0
        let capacity = Int(truncatingIfNeeded: word & HashTableLayout.capacityMask)
        let shift = Swift.min(Int(truncatingIfNeeded: word >> HashTableLayout.shiftBit), HashTableLayout.maximumSegmentSlotsShift)
        let valid = capacity > 0 && capacity & (capacity - 1) == 0 && capacity <= 1 << 40 && shift <= capacity.trailingZeroBitCount
            && heap.contains(reference, count: HashTableLayout.segments + (capacity >> shift) * 8)
        self.capacity = valid ? capacity : 0
        self.shift = shift
        self.slotMask = (1 << shift) - 1
        self.segmentBytes = (1 << shift) * Self.slotSize
        self.fieldsBase = heap.fieldsAddress(of: 0)
        self.limit = UInt64(heap.mappedBytes)
    }

    @usableFromInline static func capacity(for count: Int) -> Int {
        var capacity = 8
        while capacity * 3 / 4 < count { capacity *= 2 }
        return capacity
    }

    /// The used slots (live and tombstones) past which the table must grow.
    @inlinable var maximumLoad: Int { capacity * 3 / 4 }

    /// A table with no segment allocated yet (its segment size is recorded in it).
    @usableFromInline static func make(capacity: Int, in heap: Heap) throws(HeapError) -> HashTable {
        let segments = capacity >> shift(capacity: capacity)
        let object = try heap.allocate(HashTableObject<Key, Value>.self, size: HashTableLayout.segments + segments * 8)
        // A new block: no logging needed.
        object.handle.fields.storeBytes(of: UInt64(capacity) | UInt64(shift(capacity: capacity)) << HashTableLayout.shiftBit, as: UInt64.self)
        return HashTable(reference: object.reference, heap: heap)
    }

    @inlinable var reference: UInt64 { handle.reference }
    @inlinable var cursor: Int { Swift.min(capacity, Swift.max(0, handle[Int.self, at: HashTableLayout.cursor])) }

    /// The reference of the segment holding `slot`: 0 if it is not allocated (or, read alongside
    /// a writer, not inside the pool).
    @inlinable
    func segmentReference(_ slot: Int) -> UInt64 {
        let reference = (handle.fields + HashTableLayout.segments).load(fromByteOffset: (slot &>> shift) &<< 3, as: UInt64.self)
        // A writer (holding the lock) reads consistent references, and may have grown the pool
        // since `limit` was read. A reader checks: a reference read while a writer changes the
        // table may be anything (and a segment newer than `limit` means a writer changed it: the
        // read is retried anyway).
        return trusted || reference &+ UInt64(segmentBytes) < limit ? reference : 0
    }

    /// The segment holding `slot`, if allocated.
    @inlinable
    func segment(_ slot: Int) -> ObjectHandle? {
        let reference = segmentReference(slot)
        return reference == 0 ? nil : handle.sibling(reference)
    }

    /// The address of `slot`, or nil when its segment is not allocated (the slot is empty).
    @inlinable
    func slot(_ slot: Int) -> UnsafeMutableRawPointer? {
        let reference = segmentReference(slot)
        guard reference != 0 else { return nil }
        return fieldsBase + (Int(truncatingIfNeeded: reference) &+ (slot & slotMask) &* Self.slotSize)
    }

    @inlinable func control(_ slot: Int) -> UInt64 { self.slot(slot)?.load(as: UInt64.self) ?? 0 }
    @inlinable func isLive(_ slot: Int) -> Bool { control(slot) & 1 << 63 != 0 }
    /// The key and value of a live slot.
    @inlinable func key(_ slot: Int) -> UnsafeMutableRawPointer { self.slot(slot)! + 8 }
    @inlinable func value(_ slot: Int) -> UnsafeMutableRawPointer { self.slot(slot)! + 8 + Self.keyStride }

    /// The segment and the offset in it of `slot`, allocating the segment (zeroed, in the current
    /// transaction) if needed.
    @inlinable
    func writableSlot(_ slot: Int) throws(HeapError) -> (segment: ObjectHandle, offset: Int) {
        let offset = (slot & slotMask) * Self.slotSize
        if let segment = segment(slot) { return (segment, offset) }
        return (try allocateSegment(for: slot), offset)
    }

    @usableFromInline
    func allocateSegment(for slot: Int) throws(HeapError) -> ObjectHandle {
        let segment = try handle.heap.allocate(HashSegmentObject<Key, Value>.self, size: segmentBytes)
        handle[UInt64.self, at: HashTableLayout.segments + (slot >> shift) * 8] = segment.reference
        return segment.handle
    }

    /// Frees the segments and the directory.
    func free() throws(HeapError) {
        let heap = handle.heap
        for index in 0 ..< capacity >> shift {
            let reference = handle[UInt64.self, at: HashTableLayout.segments + index * 8]
            if reference != 0 { try heap.free(handle.sibling(reference)) }
        }
        try heap.free(handle)
    }

    /// The slot holding `key`, probing from its home slot.
    @inlinable
    func find(_ key: Key, hash: UInt64, heap: Heap) -> Int? {
        guard capacity > 0 else { return nil }
        let tag = Self.tag(hash), mask = capacity - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        for _ in 0..<capacity {
            guard let address = self.slot(slot) else { return nil }
            let control = address.load(as: UInt64.self)
            if control == 0 { return nil }
            if control == tag && Key.storedValue(at: address + 8, heap: heap, equals: key) { return slot }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Where to insert a key with `hash` known to be absent: the first empty or tombstone slot of
    /// its probe sequence, and whether it was a tombstone.
    @inlinable
    func insertionSlot(hash: UInt64) -> (slot: Int, reused: Bool) {
        let mask = capacity - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let control = self.control(slot)
            if control == 0 { return (slot, false) }
            if control == Self.tombstone { return (slot, true) }
            slot = (slot + 1) & mask
        }
    }
}

/// The directory block of a dictionary's hash table (its references are the segments).
@usableFromInline final class HashTableObject<Key: PersistentHashable, Value: PersistentStorable>: PersistentObject, @unchecked Sendable {
    @usableFromInline static var persistentTypeName: String { "Ferrite.HashTable<\(Key.persistentTag),\(Value.persistentTag)>" }
    @usableFromInline static var persistentSize: Int { HashTableLayout.segments }
    @usableFromInline let handle: ObjectHandle
    @usableFromInline init(handle: ObjectHandle) { self.handle = handle }
    @usableFromInline static var persistentDependentTypes: [any PersistentObject.Type] { [HashSegmentObject<Key, Value>.self] }
    @usableFromInline static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] {
        let table = HashTable<Key, Value>(reference: handle.reference, heap: handle.heap)
        return (0 ..< table.capacity >> table.shift).map { HashTableLayout.segments + $0 * 8 }
    }
}

/// A segment of a hash table: slots only (so the verifier can follow their references).
@usableFromInline final class HashSegmentObject<Key: PersistentHashable, Value: PersistentStorable>: PersistentObject, @unchecked Sendable {
    @usableFromInline static var persistentTypeName: String { "Ferrite.HashSegment<\(Key.persistentTag),\(Value.persistentTag)>" }
    @usableFromInline static var persistentSize: Int { 0 }
    @usableFromInline let handle: ObjectHandle
    @usableFromInline init(handle: ObjectHandle) { self.handle = handle }
    @usableFromInline static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] {
        let keyOffsets = Key.persistentStoredReferenceOffsets, valueOffsets = Value.persistentStoredReferenceOffsets
        guard !keyOffsets.isEmpty || !valueOffsets.isEmpty else { return [] }
        let slotSize = HashTable<Key, Value>.slotSize
        var offsets: [Int] = []
        for slot in 0 ..< handle.size / slotSize where handle[UInt64.self, at: slot * slotSize] & 1 << 63 != 0 {
            offsets += keyOffsets.map { slot * slotSize + 8 + $0 }
            offsets += valueOffsets.map { slot * slotSize + 8 + HashTable<Key, Value>.keyStride + $0 }
        }
        return offsets
    }
}
