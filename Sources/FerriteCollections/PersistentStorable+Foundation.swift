import Foundation
import FerriteHeap

// MARK: - Foundation values: Date, UUID and Data

/// A date, stored as its 8-byte `timeIntervalSinceReferenceDate`.
extension Date: PersistentHashable, PersistentComparable {
    public static var persistentTag: String { "Date" }
    @inlinable public static var persistentStoredSize: Int { 8 }
    public static var persistentStoredReferenceOffsets: [Int] { [] }
    @inlinable public static var persistentOwnsStorage: Bool { false }
    @inlinable
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Date {
        Date(timeIntervalSinceReferenceDate: address.loadUnaligned(as: Double.self))
    }
    @inlinable
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[Double.self, at: offset] = timeIntervalSinceReferenceDate
    }
    @inlinable public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
    public var persistentHash: UInt64 { timeIntervalSinceReferenceDate.persistentHash }
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: Date) -> Bool {
        loadStored(from: address, heap: heap) == key
    }
    public static func compareStored(at address: UnsafeRawPointer, heap: Heap, with key: Date) -> Int {
        let stored = loadStored(from: address, heap: heap)
        return stored < key ? -1 : (stored == key ? 0 : 1)
    }
}

/// A UUID, stored as its 16 bytes.
extension UUID: PersistentHashable {
    public static var persistentTag: String { "UUID" }
    @inlinable public static var persistentStoredSize: Int { 16 }
    public static var persistentStoredReferenceOffsets: [Int] { [] }
    @inlinable public static var persistentOwnsStorage: Bool { false }
    @inlinable
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> UUID {
        UUID(uuid: address.loadUnaligned(as: uuid_t.self))
    }
    @inlinable
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        withUnsafeBytes(of: uuid) { handle.storeBytes($0, at: offset) }
    }
    @inlinable public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
    public var persistentHash: UInt64 { withUnsafeBytes(of: uuid) { StableHash.bytes($0) } }
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: UUID) -> Bool {
        loadStored(from: address, heap: heap) == key
    }
}

/// Data, stored as a persistent byte string (the same as `[UInt8]`) that its holder owns.
extension Data: PersistentHashable {
    public static var persistentTag: String { "Bytes" }
    public static var persistentStoredSize: Int { 8 }
    public static var persistentStoredReferenceOffsets: [Int] { [0] }
    public static var persistentOwnsStorage: Bool { true }
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Data {
        Data(ByteBlock.bytes(at: address.loadUnaligned(as: UInt64.self), heap: heap).bytes)
    }
    /// Stores a new persistent byte string owned by the holder.
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        try withUnsafeBytes { bytes in Result { () throws(HeapError) in try ByteBlock.store(bytes, into: handle, at: offset) } }.get()
    }
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {
        try [UInt8].releaseStored(at: address, heap: heap)
    }
    public var persistentHash: UInt64 { withUnsafeBytes { StableHash.bytes($0) } }
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: Data) -> Bool {
        key.withUnsafeBytes { [UInt8].compareStored(at: address, heap: heap, with: $0) == 0 }
    }
}
