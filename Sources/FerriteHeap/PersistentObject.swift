/// A Swift class whose instances are proxies for objects stored in a pool.
///
/// A proxy holds an ``ObjectHandle``: the object's reference (its offset in the pool) and the
/// address of its fields. Accessors read and write the fields in place, with no copy. Write
/// accessors must run inside ``Heap/transaction(_:)`` (outside one, each write is its own small
/// transaction).
///
/// ```swift
/// final class Account: PersistentObject {
///     static let persistentTypeName = "Bank.Account"
///     static let persistentSize = 16
///     let handle: ObjectHandle
///     init(handle: ObjectHandle) { self.handle = handle }
///     var id: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
///     var balance: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
/// }
/// ```
public protocol PersistentObject: AnyObject {
    /// A name that identifies the type in every pool, forever: its stable type id is derived from
    /// it. Renaming the Swift class is fine; changing this string orphans existing objects.
    static var persistentTypeName: String { get }
    /// The number of bytes of fields.
    static var persistentSize: Int { get }
    /// Byte offsets of the fields that hold references to other persistent objects (UInt64 pool
    /// offsets, 0 for nil). The verifier follows them.
    static var persistentReferenceOffsets: [Int] { get }
    /// The byte offsets of the reference fields of one object. The default returns
    /// ``persistentReferenceOffsets``; variable-size objects (tables of references) override it.
    static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int]
    /// The handle this proxy reads and writes through.
    var handle: ObjectHandle { get }
    /// Re-creates a proxy for an existing object.
    init(handle: ObjectHandle)
    /// Types whose objects this type's objects own (the nodes of a collection, say):
    /// ``Heap/register(_:)`` registers them along with this one. The default is none.
    static var persistentDependentTypes: [any PersistentObject.Type] { get }
    /// Called once per heap when ``Heap/register(_:)`` first makes the type known (once its
    /// dependent types are known too, before they are published), so that a type can check its
    /// objects' stored layout or upgrade them. If it throws, the type stays unregistered. The
    /// default does nothing.
    static func persistentTypeDidRegister(in heap: Heap) throws(HeapError)
    /// Called by ``Heap/free(_:)-(PersistentObject)`` in the freeing transaction, before the
    /// object's block is freed, so that it can free blocks it owns (the bytes of its strings, say).
    /// The default does nothing.
    static func persistentWillFree(_ handle: ObjectHandle) throws(HeapError)
}

extension PersistentObject {
    public static var persistentReferenceOffsets: [Int] { [] }
    public static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] { persistentReferenceOffsets }
    public static var persistentDependentTypes: [any PersistentObject.Type] { [] }
    public static func persistentTypeDidRegister(in heap: Heap) throws(HeapError) {}
    public static func persistentWillFree(_ handle: ObjectHandle) throws(HeapError) {}
    /// The stable, 64-bit type id stored in every object of this type.
    public static var persistentTypeID: UInt64 { TypeID.make(persistentTypeName) }
    /// This object's reference: its offset in the pool, stable across processes.
    @inlinable public var reference: UInt64 { handle.reference }
}

/// Stable type ids. 0 is never a type; ids below 256 are Ferrite's own.
public enum TypeID {
    /// Untyped bytes (buffers of persistent collections).
    public static let bytes: UInt64 = 1
    /// The id for a type name: FNV-1a 64 of its UTF-8, moved above the reserved range.
    public static func make(_ name: String) -> UInt64 {
        let hash = Checksum.fnv1a(name)
        return hash < 256 ? hash &+ 256 : hash
    }
}

/// The 16-byte header in front of every block's fields: type id, then payload size.
@usableFromInline enum ObjectHeader {
    @usableFromInline static let size = 16
}

/// Where a persistent object lives: the pool offset of its block (its reference) and the address
/// of its fields in this process.
///
/// Reads are plain loads from the pool's working view. Writes store there in place and record
/// which words the transaction changed, for its redo log.
///
/// A handle does not keep its heap alive (copying a handle then costs no reference counting on the
/// heap, which every thread shares): keep the ``Heap`` alive, and open, while you use its objects.
public struct ObjectHandle: @unchecked Sendable {
    /// The heap the object lives in (not retained).
    public var heap: Heap { heapReference.takeUnretainedValue() }
    @usableFromInline let heapReference: Unmanaged<Heap>
    /// The object's reference (pool offset of its block).
    public let reference: UInt64
    /// The address of the object's first field.
    public let fields: UnsafeMutableRawPointer

    @usableFromInline
    init(heap: Heap, reference: UInt64) {
        self.heapReference = Unmanaged.passUnretained(heap)
        self.reference = reference
        self.fields = heap.base + Int(reference) + ObjectHeader.size
    }

    @usableFromInline
    init(heapReference: Unmanaged<Heap>, reference: UInt64, base: UnsafeMutableRawPointer) {
        self.heapReference = heapReference
        self.reference = reference
        self.fields = base + Int(reference) + ObjectHeader.size
    }

    /// A handle for another block of the same heap, without checking that one is there (as
    /// ``init(unchecked:in:)``, and with no reference counting of the heap).
    @inlinable
    public func sibling(_ reference: UInt64) -> ObjectHandle {
        ObjectHandle(heapReference: heapReference, reference: reference, base: heapReference._withUnsafeGuaranteedRef { $0.base })
    }

    /// The object's stored type id.
    public var typeID: UInt64 { (fields - ObjectHeader.size).load(as: UInt64.self) }
    /// The number of bytes of fields.
    public var size: Int { Int((fields - ObjectHeader.size).load(fromByteOffset: 8, as: UInt64.self)) }

    /// Reads or writes a fixed-size value stored at `offset` bytes into the fields.
    /// `offset` must be aligned for `T`.
    @inlinable
    public subscript<T: BitwiseCopyable>(_ type: T.Type, at offset: Int) -> T {
        get { fields.load(fromByteOffset: offset, as: T.self) }
        nonmutating set {
            // A guaranteed reference: no reference counting on the heap every thread shares.
            withUnsafeBytes(of: newValue) { bytes in heapReference._withUnsafeGuaranteedRef { $0.store(bytes, into: self, at: offset) } }
        }
    }

    /// Copies bytes into the fields at `offset`, logged like any other write.
    public func storeBytes(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        heapReference._withUnsafeGuaranteedRef { $0.store(bytes, into: self, at: offset) }
    }

    /// The object referenced by the field at `offset`, or nil when the field holds 0.
    public func object<T: PersistentObject>(at offset: Int, as type: T.Type) throws(HeapError) -> T? {
        let target = fields.load(fromByteOffset: offset, as: UInt64.self)
        return target == 0 ? nil : try heap.object(at: target, as: T.self)
    }

    /// Stores a reference to `object` (or nil) in the field at `offset`.
    public func setObject(_ object: (any PersistentObject)?, at offset: Int) {
        self[UInt64.self, at: offset] = object?.reference ?? 0
    }
}
