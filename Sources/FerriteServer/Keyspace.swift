import FerriteCollections
import FerriteHeap

/// An error a command replies with (the text starts with its code: `ERR`, `WRONGTYPE`...).
struct CommandError: Error {
    let message: String
    init(_ message: String) { self.message = message }

    static let wrongType = CommandError("WRONGTYPE Operation against a key holding the wrong kind of value")
    static let notInteger = CommandError("ERR value is not an integer or out of range")
    static let notFloat = CommandError("ERR value is not a valid float")
    static let syntax = CommandError("ERR syntax error")
    static let overflow = CommandError("ERR increment or decrement would overflow")
}

/// The server's data: a persistent dictionary from keys to ``KeyEntry`` values, in a pool.
///
/// Two roots: `ferrite.keys`, the dictionary, and `ferrite.trash`, values being freed in the
/// background (a FLUSHDB's whole old keyspace, a deleted hash of a million fields), so that no
/// transaction's size depends on the size of what it drops, and a crash never leaks them: the
/// trash is persistent, and emptying resumes at the next open.
///
/// Not thread-safe: the caller serializes writers (and readers against writers). Mutations must
/// run inside a heap transaction.
final class Keyspace: @unchecked Sendable {
    let heap: Heap
    private(set) var keys: KeyDictionary
    let trash: Trash
    static let keysRoot = "ferrite.keys"
    static let trashRoot = "ferrite.trash"
    /// Values with at most this many elements are freed in the transaction that drops them.
    static let inlineReleaseLimit = 256
    /// Elements the reaper frees per transaction.
    static let reapBatch = 256
    /// Where the reaper's scan of the trash's last value stands (in memory: a restart rescans).
    private var reapCursor: (reference: UInt64, cursor: UInt64) = (0, 0)
    /// Set when a value goes to the trash (the engine then wakes its reaper).
    var trashGrew = false

    init(heap: Heap) throws {
        self.heap = heap
        for type in [KeyDictionary.self, HashValue.self, Trash.self, SortedSetObject.self, PersistentBytes.self] as [any PersistentObject.Type] {
            try heap.register(type)
        }
        (keys, trash) = try heap.transaction {
            let keys = try heap.root(Self.keysRoot, as: KeyDictionary.self) ?? {
                let made = try KeyDictionary.make(in: heap)
                try heap.setRoot(Self.keysRoot, to: made)
                return made
            }()
            let trash = try heap.root(Self.trashRoot, as: Trash.self) ?? {
                let made = try Trash.make(in: heap)
                try heap.setRoot(Self.trashRoot, to: made)
                return made
            }()
            return (keys, trash)
        }
    }

    var count: Int { keys.count }

    /// Reads the keyspace's root again: after a rolled-back transaction that replaced it.
    func reloadRoots() {
        if let current = try? heap.root(Self.keysRoot, as: KeyDictionary.self) { keys = current }
    }

    func entry(_ key: [UInt8]) -> KeyEntry? { keys.value(forKey: key) }

    // MARK: Strings

    /// Calls `body` with the bytes of a string value in place; nil if the key is absent.
    func withString<R>(_ key: [UInt8], _ body: (UnsafeRawBufferPointer) -> R) throws(CommandError) -> R? {
        guard let entry = entry(key) else { return nil }
        guard entry.kind == .string else { throw .wrongType }
        return PersistentBytes(handle: ObjectHandle(unchecked: entry.reference, in: heap)).withUnsafeBytes(body)
    }

    func string(_ key: [UInt8]) throws(CommandError) -> [UInt8]? { try withString(key) { Array($0) } }

    /// Sets a string value, dropping whatever the key held.
    func setString(_ key: [UInt8], _ value: [UInt8]) throws {
        let block = try PersistentBytes.make(value, in: heap)
        if let old = try keys.updateValue(KeyEntry(.string, block.reference), forKey: key) { try release(old) }
    }

    // MARK: Hashes and sorted sets

    /// The hash at `key`; nil if absent (created when `create`).
    func hash(_ key: [UInt8], create: Bool = false) throws -> HashValue? {
        if let entry = entry(key) {
            guard entry.kind == .hash else { throw CommandError.wrongType }
            return HashValue(handle: ObjectHandle(unchecked: entry.reference, in: heap))
        }
        guard create else { return nil }
        let hash = try HashValue.make(in: heap)
        try keys.updateValue(KeyEntry(.hash, hash.reference), forKey: key)
        return hash
    }

    /// The sorted set at `key`; nil if absent (created when `create`).
    func sortedSet(_ key: [UInt8], create: Bool = false) throws -> SortedSetObject? {
        if let entry = entry(key) {
            guard entry.kind == .sortedSet else { throw CommandError.wrongType }
            return SortedSetObject(handle: ObjectHandle(unchecked: entry.reference, in: heap))
        }
        guard create else { return nil }
        let set = try SortedSetObject.make(in: heap)
        try keys.updateValue(KeyEntry(.sortedSet, set.reference), forKey: key)
        return set
    }

    // MARK: Keys

    /// Deletes a key and its value; returns whether it existed.
    @discardableResult
    func delete(_ key: [UInt8]) throws -> Bool {
        guard let old = try keys.removeValue(forKey: key) else { return false }
        try release(old)
        return true
    }

    /// Drops every key: a new empty dictionary takes the old one's place, which goes to the trash.
    func flush() throws {
        let old = keys
        let fresh = try KeyDictionary.make(in: heap)
        try heap.setRoot(Self.keysRoot, to: fresh)
        try discard(KeyEntry(.keyspace, old.reference))
        keys = fresh
    }

    /// A page of SCAN: keys (with their kinds) from `cursor`, and the next cursor (0 at the end).
    func scan(from cursor: UInt64, count: Int) -> (keys: [(key: [UInt8], entry: KeyEntry)], cursor: UInt64) {
        let page = keys.scan(from: cursor, count: count)
        return (page.pairs.map { ($0.key, $0.value) }, page.cursor)
    }

    // MARK: Freeing values

    /// Frees a dropped value now if it is small, else puts it in the trash.
    func release(_ entry: KeyEntry) throws {
        switch entry.kind {
        case .string:
            try heap.free(ObjectHandle(unchecked: entry.reference, in: heap))
        case .hash:
            let hash = HashValue(handle: ObjectHandle(unchecked: entry.reference, in: heap))
            if hash.count <= Self.inlineReleaseLimit { try hash.destroy() } else { try discard(entry) }
        case .sortedSet:
            let set = SortedSetObject(handle: ObjectHandle(unchecked: entry.reference, in: heap))
            if set.count <= Self.inlineReleaseLimit { try set.destroy() } else { try discard(entry) }
        case .keyspace, nil:
            try discard(entry)
        }
    }

    private func discard(_ entry: KeyEntry) throws {
        try trash.append(entry)
        trashGrew = true
    }

    /// Whether the trash holds values still to be freed.
    var hasTrash: Bool { !trash.isEmpty }

    /// Frees a batch of the trash's last value (all of it, once small enough). Call inside a
    /// transaction; returns false when the trash is empty.
    func reapStep() throws -> Bool {
        guard let entry = trash.last else { return false }
        if reapCursor.reference != entry.reference { reapCursor = (entry.reference, 0) }
        let handle = ObjectHandle(unchecked: entry.reference, in: heap)
        var done = false
        switch entry.kind {
        case .hash:
            let hash = HashValue(handle: handle)
            if hash.count <= Self.reapBatch {
                try hash.destroy()
                done = true
            } else {
                let page = hash.scan(from: reapCursor.cursor, count: Self.reapBatch)
                for pair in page.pairs { try hash.removeValue(forKey: pair.key) }
                reapCursor.cursor = page.cursor
            }
        case .sortedSet:
            let set = SortedSetObject(handle: handle)
            if set.count <= Self.reapBatch / 2 {
                try set.destroy()
                done = true
            } else {
                let page = set.scores.scan(from: reapCursor.cursor, count: Self.reapBatch / 2)
                for pair in page.pairs { _ = try set.remove(pair.key) }
                reapCursor.cursor = page.cursor
            }
        case .keyspace:
            let dropped = KeyDictionary(handle: handle)
            if dropped.isEmpty {
                try dropped.destroy()
                done = true
            } else {
                let page = dropped.scan(from: reapCursor.cursor, count: Self.reapBatch / 4)
                for pair in page.pairs {
                    try dropped.removeValue(forKey: pair.key)
                    try release(pair.value)  // large values join the trash, after this one
                }
                reapCursor.cursor = page.cursor
            }
        case .string:
            try heap.free(handle)
            done = true
        case nil:
            done = true  // a kind this server does not know: leave its storage alone
        }
        if done {
            // The value may not be last any more (release() may have added some): find it.
            if let index = trash.lastIndex(of: entry) { try trash.remove(at: index) }
            reapCursor = (0, 0)
        }
        return true
    }
}
