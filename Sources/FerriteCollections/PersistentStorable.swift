import FerriteHeap

/// A value that persistent collections can hold: its bytes are stored in the collection's own
/// blocks, and it can be read back in any later process.
///
/// Conforming types: fixed-size trivial values (integers, floating point, `Bool`, and your own
/// ``PersistentTrivial`` structs and ``PersistentRawRepresentable`` enums); `String` and `[UInt8]`,
/// stored as persistent strings and byte strings that the collection owns; and references to
/// persistent objects (declare `extension Account: PersistentStorable {}`), which the collection
/// does not own.
public protocol PersistentStorable {
    /// A stable name for the type, part of the persistent type names of the collections that
    /// hold it. Changing it orphans those collections.
    static var persistentTag: String { get }
    /// The number of bytes one value occupies in a collection (collections round it up to 8).
    static var persistentStoredSize: Int { get }
    /// The offsets, within those bytes, of references to other blocks (for the verifier).
    static var persistentStoredReferenceOffsets: [Int] { get }
    /// Whether a stored value owns a block (a string's bytes) that is freed when it is removed.
    static var persistentOwnsStorage: Bool { get }
    /// Reads the value stored at `address`. It must not trap on meaningless bytes (collections may
    /// read while a writer changes them, and throw the result away).
    static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Self
    /// Stores the value at `offset` in the fields behind `handle`, in the current transaction,
    /// allocating the storage it owns.
    func store(into handle: ObjectHandle, at offset: Int) throws(HeapError)
    /// Frees the storage owned by the value stored at `address`, in the current transaction.
    static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError)
    /// The persistent object type a stored value refers to (for references to objects and
    /// optional references), which a collection holding such values registers along with itself.
    /// The default is nil.
    static var persistentReferencedType: (any PersistentObject.Type)? { get }
}

extension PersistentStorable {
    public static var persistentReferencedType: (any PersistentObject.Type)? { nil }
}

/// The object types referred to by values of `types` (for ``PersistentObject/persistentDependentTypes``).
func referencedTypes(_ types: any PersistentStorable.Type...) -> [any PersistentObject.Type] {
    types.compactMap { $0.persistentReferencedType }
}

/// A key of a ``PersistentDictionary``: hashable the same way in every process.
public protocol PersistentHashable: PersistentStorable, Hashable {
    /// A hash that depends only on the value (never on the process, unlike `Hasher`), consistent
    /// with `==`.
    var persistentHash: UInt64 { get }
    /// Whether the value stored at `address` equals `key`, without materializing it when possible.
    static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: Self) -> Bool
}

/// A key of a ``PersistentSortedMap``.
public protocol PersistentComparable: PersistentStorable, Comparable {
    /// Compares the value stored at `address` with `key`: negative, zero or positive as it is
    /// smaller, equal or greater. Consistent with `<` and `==`.
    static func compareStored(at address: UnsafeRawPointer, heap: Heap, with key: Self) -> Int
}

// MARK: - Trivial values

/// A fixed-size value stored as its bytes: integers, floating point, `Bool`, and small structs of
/// such fields (declare `extension Point: PersistentTrivial {}`). Its hash is computed over its
/// bytes, so a struct used as a dictionary key must have no padding.
public protocol PersistentTrivial: PersistentStorable, BitwiseCopyable {}

extension PersistentTrivial {
    public static var persistentTag: String { String(reflecting: Self.self) }
    @inlinable public static var persistentStoredSize: Int { MemoryLayout<Self>.size }
    public static var persistentStoredReferenceOffsets: [Int] { [] }
    @inlinable public static var persistentOwnsStorage: Bool { false }
    @inlinable
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Self {
        address.loadUnaligned(as: Self.self)
    }
    @inlinable
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[Self.self, at: offset] = self
    }
    @inlinable
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
}

extension PersistentHashable where Self: PersistentTrivial {
    /// A hash of the value's bytes.
    public var persistentHash: UInt64 {
        withUnsafeBytes(of: self) { StableHash.bytes($0) }
    }
    @inlinable
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: Self) -> Bool {
        loadStored(from: address, heap: heap) == key
    }
}

extension PersistentHashable where Self: PersistentTrivial & FixedWidthInteger {
    @inlinable public var persistentHash: UInt64 { StableHash.mix(UInt64(truncatingIfNeeded: self)) }
}

extension PersistentComparable where Self: PersistentTrivial {
    @inlinable
    public static func compareStored(at address: UnsafeRawPointer, heap: Heap, with key: Self) -> Int {
        let stored = loadStored(from: address, heap: heap)
        return stored < key ? -1 : (stored == key ? 0 : 1)
    }
}

extension Int: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension Int8: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension Int16: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension Int32: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension Int64: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension UInt: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension UInt8: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension UInt16: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension UInt32: PersistentTrivial, PersistentHashable, PersistentComparable {}
extension UInt64: PersistentTrivial, PersistentHashable, PersistentComparable {}

extension Bool: PersistentTrivial, PersistentHashable {
    public var persistentHash: UInt64 { StableHash.mix(self ? 1 : 0) }
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Bool {
        address.load(as: UInt8.self) != 0  // any byte is a valid Bool this way
    }
}

extension Double: PersistentTrivial, PersistentHashable, PersistentComparable {
    /// Equal values hash alike (0.0 and -0.0 included).
    public var persistentHash: UInt64 { StableHash.mix(self == 0 ? 0 : bitPattern) }
}

extension Float: PersistentTrivial, PersistentHashable, PersistentComparable {
    /// Equal values hash alike (0.0 and -0.0 included).
    public var persistentHash: UInt64 { StableHash.mix(self == 0 ? 0 : UInt64(bitPattern)) }
}

// MARK: - Enums

/// An enum stored as its raw value (declare `enum Color: UInt8, PersistentRawRepresentable`).
/// A stored raw value that matches no case (a pool written by a newer program) reads as the
/// enum's ``persistentDefault``.
public protocol PersistentRawRepresentable: PersistentStorable, RawRepresentable where RawValue: PersistentTrivial {
    /// The case read for a raw value that matches no case.
    static var persistentDefault: Self { get }
}

extension PersistentRawRepresentable {
    public static var persistentTag: String { String(reflecting: Self.self) }
    public static var persistentStoredSize: Int { MemoryLayout<RawValue>.size }
    public static var persistentStoredReferenceOffsets: [Int] { [] }
    public static var persistentOwnsStorage: Bool { false }
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Self {
        Self(rawValue: address.loadUnaligned(as: RawValue.self)) ?? persistentDefault
    }
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[RawValue.self, at: offset] = rawValue
    }
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
}

extension PersistentHashable where Self: PersistentRawRepresentable, RawValue: PersistentHashable {
    public var persistentHash: UInt64 { rawValue.persistentHash }
    public static func storedValue(at address: UnsafeRawPointer, heap: Heap, equals key: Self) -> Bool {
        loadStored(from: address, heap: heap) == key
    }
}

extension PersistentComparable where Self: PersistentRawRepresentable {
    public static func compareStored(at address: UnsafeRawPointer, heap: Heap, with key: Self) -> Int {
        let stored = loadStored(from: address, heap: heap)
        return stored < key ? -1 : (stored == key ? 0 : 1)
    }
}

extension PersistentRawRepresentable where Self: CaseIterable {
    /// The first case.
    public static var persistentDefault: Self { allCases.first! }
}

// MARK: - References to persistent objects

extension PersistentStorable where Self: PersistentObject {
    public static var persistentTag: String { "@" + persistentTypeName }
    public static var persistentStoredSize: Int { 8 }
    public static var persistentStoredReferenceOffsets: [Int] { [0] }
    public static var persistentOwnsStorage: Bool { false }
    public static var persistentReferencedType: (any PersistentObject.Type)? { Self.self }
    /// The object the stored reference points at (not checked: a collection stores only
    /// references to live objects it was given).
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Self {
        Self(handle: ObjectHandle(unchecked: address.loadUnaligned(as: UInt64.self), in: heap))
    }
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[UInt64.self, at: offset] = reference
    }
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
}

extension Optional: PersistentStorable where Wrapped: PersistentObject & PersistentStorable {
    public static var persistentTag: String { Wrapped.persistentTag + "?" }
    public static var persistentStoredSize: Int { 8 }
    public static var persistentStoredReferenceOffsets: [Int] { [0] }
    public static var persistentOwnsStorage: Bool { false }
    public static var persistentReferencedType: (any PersistentObject.Type)? { Wrapped.self }
    public static func loadStored(from address: UnsafeRawPointer, heap: Heap) -> Self {
        let reference = address.loadUnaligned(as: UInt64.self)
        return reference == 0 ? nil : Wrapped(handle: ObjectHandle(unchecked: reference, in: heap))
    }
    public func store(into handle: ObjectHandle, at offset: Int) throws(HeapError) {
        handle[UInt64.self, at: offset] = self?.reference ?? 0
    }
    public static func releaseStored(at address: UnsafeRawPointer, heap: Heap) throws(HeapError) {}
}

/// Helpers for collections: values stored in slots rounded up to 8 bytes.
@usableFromInline enum Stored {
    @inlinable static func stride<T: PersistentStorable>(_ type: T.Type) -> Int { (T.persistentStoredSize + 7) & ~7 }
}

// MARK: - Collections inside collections and objects

/// A collection stored in another collection or an object's field is a reference to it (the
/// holder does not own it).
extension PersistentArray: PersistentStorable {}
extension PersistentDictionary: PersistentStorable {}
extension PersistentSortedMap: PersistentStorable {}
