import FerriteCollections
import FerriteHeap

/// A class made persistent by `@Persistent`: its stored properties live in a persistent object's
/// fields, read and written in place. The macro writes the conformance; you do not adopt it by
/// hand.
public protocol PersistentModel: PersistentObject, PersistentStorable, Sendable {
    /// The stored properties, in layout order.
    static var persistentFields: [PersistentField] { get }
    /// Writes the default value of every property whose field starts at or after `oldSize`
    /// (all of them for a new object, the new ones for an object made by an earlier layout).
    static func persistentInitializeDefaults(_ handle: ObjectHandle, from oldSize: Int) throws(HeapError)
}

extension PersistentModel {
    public static var persistentReferenceOffsets: [Int] { persistentFields.flatMap(\.referenceOffsets) }

    /// The types of the objects and collections the properties refer to: registering a model
    /// registers (and checks the layout of) everything reachable from it.
    public static var persistentDependentTypes: [any PersistentObject.Type] {
        persistentFields.compactMap(\.referencedType)
    }

    /// Checks the layout recorded in the pool against the compiled one, and upgrades the pool's
    /// objects when properties were added (see ``PersistentSchema``).
    public static func persistentTypeDidRegister(in heap: Heap) throws(HeapError) {
        try PersistentSchema.check(Self.self, in: heap)
    }

    /// Frees the strings and byte strings the object's properties own.
    public static func persistentWillFree(_ handle: ObjectHandle) throws(HeapError) {
        for field in persistentFields {
            guard let release = field.release else { continue }
            if handle.fields.load(fromByteOffset: field.offset, as: UInt64.self) != 0 {
                try release(handle.fields + field.offset, handle.heap)
            }
        }
    }
}

/// What `@Persistent` initializers call to make their object.
public enum PersistentObjects {
    /// Allocates a new object of `type` in the calling thread's current transaction.
    ///
    /// - Throws: ``HeapError/notInTransaction(operation:)`` outside a transaction, and any
    ///   allocation error (``HeapError/poolFull(requestedBytes:maximumBytes:)``).
    public static func allocate<T: PersistentModel>(_ type: T.Type) throws(HeapError) -> ObjectHandle {
        guard let heap = Heap.current else {
            throw .notInTransaction(operation: "creating a \(T.persistentTypeName) (an @Persistent object)")
        }
        let handle = try heap.allocateObject(of: T.self)
        try T.persistentInitializeDefaults(handle, from: 0)
        return handle
    }

    /// Frees an object whose initializer threw, with the storage its properties already own.
    public static func abandon<T: PersistentModel>(_ type: T.Type, _ handle: ObjectHandle) {
        do {
            try T.persistentWillFree(handle)
            try handle.heap.free(handle)
        } catch {
            handle.heap.failTransaction(error)
        }
    }
}

/// Marks a computed property of a `@Persistent` class as initialized (it takes no memory).
public struct PersistentPropertyInitialized: Sendable {
    @inlinable public init() {}
}
