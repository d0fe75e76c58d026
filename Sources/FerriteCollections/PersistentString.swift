import Foundation
import FerriteHeap

/// The block layout shared by persistent strings and byte strings: a length word (bit 63 set when
/// every byte is ASCII), then the bytes.
enum ByteBlock {
    static let asciiFlag: UInt64 = 1 << 63
    static let header = 8

    /// Allocates a block of `typeID` holding `bytes`, in the current transaction.
    static func make<T: PersistentObject>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer, ascii: Bool, heap: Heap) throws(HeapError) -> T {
        let object = try heap.allocate(T.self, size: header + bytes.count)
        let fields = object.handle.fields  // a new block: written directly, copied whole at commit
        fields.storeBytes(of: UInt64(bytes.count) | (ascii ? asciiFlag : 0), as: UInt64.self)
        if let source = bytes.baseAddress { (fields + header).copyMemory(from: source, byteCount: bytes.count) }
        return object
    }

    /// Stores a reference to a new byte-string block holding `bytes` at `offset` in `handle`'s
    /// fields, in the current transaction (`[UInt8]` and `Data` values).
    static func store(_ bytes: UnsafeRawBufferPointer, into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[UInt64.self, at: offset] = try make(PersistentBytes.self, bytes, ascii: false, heap: handle.heap).reference
    }

    /// The bytes of the block at `reference`; empty if the reference or its length is not inside
    /// the pool (a read racing a writer, whose result is thrown away).
    @inline(__always)
    static func bytes(at reference: UInt64, heap: Heap) -> (bytes: UnsafeRawBufferPointer, ascii: Bool) {
        guard heap.contains(reference, count: header) else { return (UnsafeRawBufferPointer(start: nil, count: 0), true) }
        let fields = ObjectHandle(unchecked: reference, in: heap).fields
        let word = fields.load(as: UInt64.self)
        let count = Int(truncatingIfNeeded: word & ~asciiFlag)
        guard heap.contains(reference, count: header + count) else { return (UnsafeRawBufferPointer(start: nil, count: 0), true) }
        return (UnsafeRawBufferPointer(start: fields + header, count: count), word & asciiFlag != 0)
    }

    static func compare(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
        let common = min(a.count, b.count)
        if common > 0 {
            let order = memcmp(a.baseAddress!, b.baseAddress!, common)
            if order != 0 { return Int(order) }
        }
        return a.count < b.count ? -1 : (a.count == b.count ? 0 : 1)
    }

    static func equal(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        a.count == b.count && (a.count == 0 || memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }
}

/// Operations on the UTF-8 of Swift strings, consistent with `String`'s `==`, `<` and hashing
/// (canonical equivalence: "é" precomposed equals "e" + combining acute).
enum UTF8Text {
    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index + 8 <= bytes.count {
            if bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            index += 8
        }
        while index < bytes.count { if bytes[index] >= 0x80 { return false }; index += 1 }
        return true
    }

    static func withUTF8<R>(_ string: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let result = string.utf8.withContiguousStorageIfAvailable({ body(UnsafeRawBufferPointer($0)) }) { return result }
        var copy = string
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    static func string(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }

    /// A hash equal for canonically equivalent strings: ASCII is hashed as is, anything else in
    /// its NFC form.
    static func hash(_ bytes: UnsafeRawBufferPointer, ascii: Bool) -> UInt64 {
        if ascii { return StableHash.bytes(bytes) }
        let normalized = string(bytes).precomposedStringWithCanonicalMapping
        return withUTF8(normalized) { StableHash.bytes($0) }
    }

    static func equal(_ a: UnsafeRawBufferPointer, asciiA: Bool, _ b: UnsafeRawBufferPointer, asciiB: Bool) -> Bool {
        if ByteBlock.equal(a, b) { return true }
        if asciiA && asciiB { return false }
        return string(a) == string(b)
    }

    static func compare(_ a: UnsafeRawBufferPointer, asciiA: Bool, _ b: UnsafeRawBufferPointer, asciiB: Bool) -> Int {
        if asciiA && asciiB { return ByteBlock.compare(a, b) }  // String orders ASCII bytewise
        let x = string(a), y = string(b)
        return x < y ? -1 : (x == y ? 0 : 1)
    }
}

/// An immutable UTF-8 string in a pool.
///
/// Equality, ordering and hashing agree with `String`'s (compare with a `String` directly:
/// `name == "Ada"`). Reading `string` copies the bytes into a Swift `String`; `withUTF8` reads
/// them in place.
///
/// Collections declared with `String` elements store their strings as `PersistentString`s
/// themselves; create one directly to share a string among objects.
public final class PersistentString: PersistentObject, PersistentStorable, Hashable, Comparable, CustomStringConvertible, @unchecked Sendable {
    public static let persistentTypeName = "Ferrite.String"
    public static let persistentSize = 8
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    /// Stores `string` in `heap` (in the current transaction, or in one of its own).
    public static func make(_ string: String, in heap: Heap) throws -> PersistentString {
        try heap.transaction { try make(unchecked: string, in: heap) }
    }

    static func make(unchecked string: String, in heap: Heap) throws(HeapError) -> PersistentString {
        try UTF8Text.withUTF8(string) { bytes in
            Result { () throws(HeapError) in try ByteBlock.make(PersistentString.self, bytes, ascii: UTF8Text.isASCII(bytes), heap: heap) }
        }.get()
    }

    private var block: (bytes: UnsafeRawBufferPointer, ascii: Bool) { ByteBlock.bytes(at: reference, heap: handle.heap) }

    /// The number of UTF-8 bytes.
    public var utf8Count: Int { block.bytes.count }
    /// Whether every byte is ASCII.
    public var isASCII: Bool { block.ascii }
    /// A Swift copy.
    public var string: String { UTF8Text.string(block.bytes) }
    public var description: String { string }
    /// Reads the UTF-8 bytes in place.
    public func withUTF8<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(block.bytes) }

    public static func == (lhs: PersistentString, rhs: PersistentString) -> Bool {
        let a = lhs.block, b = rhs.block
        return UTF8Text.equal(a.bytes, asciiA: a.ascii, b.bytes, asciiB: b.ascii)
    }
    public static func < (lhs: PersistentString, rhs: PersistentString) -> Bool {
        let a = lhs.block, b = rhs.block
        return UTF8Text.compare(a.bytes, asciiA: a.ascii, b.bytes, asciiB: b.ascii) < 0
    }
    public static func == (lhs: PersistentString, rhs: String) -> Bool {
        let a = lhs.block
        return UTF8Text.withUTF8(rhs) { UTF8Text.equal(a.bytes, asciiA: a.ascii, $0, asciiB: UTF8Text.isASCII($0)) }
    }
    public static func == (lhs: String, rhs: PersistentString) -> Bool { rhs == lhs }
    /// Hashes as the equal `String` does.
    public func hash(into hasher: inout Hasher) { hasher.combine(string) }
}

/// An immutable byte string in a pool (binary values).
public final class PersistentBytes: PersistentObject, PersistentStorable, Hashable, Comparable, @unchecked Sendable {
    public static let persistentTypeName = "Ferrite.Bytes"
    public static let persistentSize = 8
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    /// Stores `bytes` in `heap` (in the current transaction, or in one of its own).
    public static func make(_ bytes: some Collection<UInt8>, in heap: Heap) throws -> PersistentBytes {
        let array = Array(bytes)
        return try heap.transaction { try array.withUnsafeBytes { try ByteBlock.make(PersistentBytes.self, $0, ascii: false, heap: heap) } }
    }

    private var bytes: UnsafeRawBufferPointer { ByteBlock.bytes(at: reference, heap: handle.heap).bytes }
    /// The number of bytes.
    public var count: Int { bytes.count }
    /// A Swift copy.
    public var array: [UInt8] { Array(bytes) }
    /// Reads the bytes in place.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(bytes) }

    public static func == (lhs: PersistentBytes, rhs: PersistentBytes) -> Bool { ByteBlock.equal(lhs.bytes, rhs.bytes) }
    public static func < (lhs: PersistentBytes, rhs: PersistentBytes) -> Bool { ByteBlock.compare(lhs.bytes, rhs.bytes) < 0 }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes: bytes) }
}

// MARK: - String and [UInt8] as collection values

extension String: PersistentHashable, PersistentComparable {
    public static var persistentTag: String { "String" }
    public static var persistentStoredSize: Int { 8 }
    public static var persistentStoredReferenceOffsets: [Int] { [0] }
    public static var persistentOwnsStorage: Bool { true }
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> String {
        UTF8Text.string(ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap).bytes)
    }
    /// Stores a new persistent string owned by the collection.
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[UInt64.self, at: offset] = try PersistentString.make(unchecked: self, in: handle.heap).reference
    }
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {
        let reference = address.loadUnaligned(as: UInt64.self)
        if reference != 0 { try heap.free(ObjectHandle(unchecked: reference, in: heap)) }
    }
    public var persistentHash: UInt64 {
        UTF8Text.withUTF8(self) { UTF8Text.hash($0, ascii: UTF8Text.isASCII($0)) }
    }
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: String) -> Bool {
        let stored = ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap)
        return UTF8Text.withUTF8(key) { UTF8Text.equal(stored.bytes, asciiA: stored.ascii, $0, asciiB: UTF8Text.isASCII($0)) }
    }
    public static func compareStored(at address: UnsafeRawPointer, heap: Heap, with key: String) -> Int {
        let stored = ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap)
        return UTF8Text.withUTF8(key) { UTF8Text.compare(stored.bytes, asciiA: stored.ascii, $0, asciiB: UTF8Text.isASCII($0)) }
    }
}

extension Array: PersistentStorable, PersistentHashable where Element == UInt8 {
    public static var persistentTag: String { "Bytes" }
    public static var persistentStoredSize: Int { 8 }
    public static var persistentStoredReferenceOffsets: [Int] { [0] }
    public static var persistentOwnsStorage: Bool { true }
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> [UInt8] {
        Array(ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap).bytes)
    }
    /// Stores a new persistent byte string owned by the collection.
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        try withUnsafeBytes { bytes in Result { () throws(HeapError) in try ByteBlock.store(bytes, into: handle, at: offset) } }.get()
    }
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {
        let reference = address.loadUnaligned(as: UInt64.self)
        if reference != 0 { try heap.free(ObjectHandle(unchecked: reference, in: heap)) }
    }
    public var persistentHash: UInt64 { withUnsafeBytes { StableHash.bytes($0) } }
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: [UInt8]) -> Bool {
        let stored = ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap).bytes
        return key.withUnsafeBytes { ByteBlock.equal(stored, $0) }
    }
    /// Compares the byte string stored (as `[UInt8]`, a reference) at `address` with `bytes`,
    /// in place: negative, zero or positive as it orders before, equal to or after them
    /// (`memcmp` order, a prefix first). For keys of your own that embed a byte string.
    public static func compareStored(at address: UnsafeRawPointer, heap: Heap, with bytes: UnsafeRawBufferPointer) -> Int {
        ByteBlock.compare(ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap).bytes, bytes)
    }

    /// Calls `body` with the bytes of the byte string stored (as `[UInt8]`) at `address`, in
    /// place: no copy.
    public static func withStoredBytes<R>(at address: UnsafeRawPointer, heap: Heap, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap).bytes)
    }
}
