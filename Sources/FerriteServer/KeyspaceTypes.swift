import FerriteCollections
import FerriteHeap

/// What a key of the keyspace holds, stored in its dictionary slot: a kind and a reference.
///
/// The slot does not own its value automatically (``persistentOwnsStorage`` is false): the
/// ``Keyspace`` frees values itself, small ones at once and large ones little by little
/// (``Keyspace/reapStep()``), so that no command's transaction grows with the size of a value it
/// drops.
struct KeyEntry: PersistentStorable, Equatable {
    /// The kinds of values. Stored: never renumber.
    enum Kind: UInt64 {
        /// A byte string: `reference` is a ``PersistentBytes`` block.
        case string = 1
        /// A hash: `reference` is a `PersistentDictionary<[UInt8], [UInt8]>`.
        case hash = 2
        /// A sorted set: `reference` is a ``SortedSetObject``.
        case sortedSet = 3
        /// A whole keyspace dropped by FLUSHDB, in the trash only.
        case keyspace = 4
    }

    var rawKind: UInt64
    var reference: UInt64

    init(_ kind: Kind, _ reference: UInt64) {
        rawKind = kind.rawValue
        self.reference = reference
    }

    /// The kind, or nil for a stored word that names none (a pool written by a newer server).
    var kind: Kind? { Kind(rawValue: rawKind) }

    static var persistentTag: String { "Ferrite.Server.Entry" }
    static var persistentStoredSize: Int { 16 }
    static var persistentStoredReferenceOffsets: [Int] { [8] }
    static var persistentOwnsStorage: Bool { false }
    static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> KeyEntry {
        var entry = KeyEntry(.string, 0)
        entry.rawKind = address.loadUnaligned(as: UInt64.self)
        entry.reference = address.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        return entry
    }
    func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[UInt64.self, at: offset] = rawKind
        handle[UInt64.self, at: offset + 8] = reference
    }
    static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
}

typealias KeyDictionary = PersistentDictionary<[UInt8], KeyEntry>
typealias HashValue = PersistentDictionary<[UInt8], [UInt8]>
typealias Trash = PersistentArray<KeyEntry>

/// A sorted set's order key: score, then member bytes (Redis's order). The member is a byte
/// string the map owns.
struct ScoredMember: PersistentComparable {
    var score: Double
    var member: [UInt8]

    static func < (lhs: ScoredMember, rhs: ScoredMember) -> Bool {
        lhs.score != rhs.score ? lhs.score < rhs.score : lhs.member.lexicographicallyPrecedes(rhs.member)
    }

    static var persistentTag: String { "Ferrite.Server.ScoredMember" }
    static var persistentStoredSize: Int { 16 }
    static var persistentStoredReferenceOffsets: [Int] { [8] }
    static var persistentOwnsStorage: Bool { true }
    static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> ScoredMember {
        ScoredMember(score: address.loadUnaligned(as: Double.self), member: [UInt8].loadStored(from: address + 8, heap: heap))
    }
    func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[Double.self, at: offset] = score
        try member.store(into: handle, at: offset + 8)
    }
    static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {
        try [UInt8].releaseStored(at: address + 8, heap: heap)
    }
    static func compareStored(at address: UnsafeRawPointer, heap: Heap, with key: ScoredMember) -> Int {
        let score = address.loadUnaligned(as: Double.self)
        if score < key.score { return -1 }
        if score > key.score { return 1 }
        return key.member.withUnsafeBytes { [UInt8].compareStored(at: address + 8, heap: heap, with: $0) }
    }
}

typealias ScoreOrder = PersistentSortedMap<ScoredMember, Bool>
typealias MemberScores = PersistentDictionary<[UInt8], Double>

/// A sorted set: each member's score (for lookups by member) and the members in score order (for
/// ranges). Both change in the same transaction.
final class SortedSetObject: PersistentObject, @unchecked Sendable {
    static let persistentTypeName = "Ferrite.Server.SortedSet"
    static let persistentSize = 16
    static var persistentReferenceOffsets: [Int] { [0, 8] }
    static var persistentDependentTypes: [any PersistentObject.Type] { [MemberScores.self, ScoreOrder.self] }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }

    static func make(in heap: Heap) throws -> SortedSetObject {
        try heap.transaction {
            let set = try heap.allocate(SortedSetObject.self)
            set.handle[UInt64.self, at: 0] = try MemberScores.make(in: heap).reference
            set.handle[UInt64.self, at: 8] = try ScoreOrder.make(in: heap).reference
            return set
        }
    }

    var scores: MemberScores { MemberScores(handle: handle.sibling(handle[UInt64.self, at: 0])) }
    var order: ScoreOrder { ScoreOrder(handle: handle.sibling(handle[UInt64.self, at: 8])) }
    var count: Int { scores.count }

    /// Adds or updates a member; returns whether it was new.
    @discardableResult
    func set(_ member: [UInt8], score: Double) throws -> Bool {
        if let old = scores.value(forKey: member) {
            if old == score { return false }
            try order.removeValue(forKey: ScoredMember(score: old, member: member))
            try order.updateValue(true, forKey: ScoredMember(score: score, member: member))
            try scores.updateValue(score, forKey: member)
            return false
        }
        try scores.updateValue(score, forKey: member)
        try order.updateValue(true, forKey: ScoredMember(score: score, member: member))
        return true
    }

    /// Removes a member; returns whether it was there.
    func remove(_ member: [UInt8]) throws -> Bool {
        guard let score = try scores.removeValue(forKey: member) else { return false }
        try order.removeValue(forKey: ScoredMember(score: score, member: member))
        return true
    }

    func destroy() throws {
        try scores.destroy()
        try order.destroy()
        try handle.heap.free(handle)
    }
}
