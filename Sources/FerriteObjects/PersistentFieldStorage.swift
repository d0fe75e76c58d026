import FerriteCollections
import FerriteHeap

/// How `@Persistent` accessors read and write a property's value in place. The macro calls these
/// for every property type but fixed-size numbers and `Bool`, which it reads and writes through
/// ``ObjectHandle`` directly.
///
/// An optional of a reference-like type (a persistent object, a collection, a string or a byte
/// string: one 8-byte reference) stores nil as 0. Any other optional stores its value followed by
/// a presence byte (1 when there is a value).
public enum PersistentFieldStorage {
    /// Whether values of `T` are one reference (0 can mean nil).
    @inlinable
    public static func isReference<T: PersistentStorable>(_ type: T.Type) -> Bool {
        T.persistentStoredSize == 8 && T.persistentStoredReferenceOffsets == [0]
    }

    /// The value stored at `offset`.
    @inlinable
    public static func load<T: PersistentStorable>(_ handle: ObjectHandle, _ offset: Int, as type: T.Type) -> T {
        T.loadStored(from: handle.fields + offset, heap: handle.heap)
    }

    /// The optional value stored at `offset`.
    @inlinable
    public static func loadOptional<T: PersistentStorable>(_ handle: ObjectHandle, _ offset: Int, as type: T.Type) -> T? {
        let address = handle.fields + offset
        if isReference(T.self) {
            return address.load(as: UInt64.self) == 0 ? nil : T.loadStored(from: address, heap: handle.heap)
        }
        return address.load(fromByteOffset: T.persistentStoredSize, as: UInt8.self) == 0 ? nil : T.loadStored(from: address, heap: handle.heap)
    }

    /// Stores `value` into the field of a new object (nothing stored there yet to free).
    /// A failure (a full pool) dooms the transaction, which then throws it.
    @inlinable
    public static func initialize<T: PersistentStorable>(_ value: T, _ handle: ObjectHandle, _ offset: Int) {
        do { try value.store(into: handle, at: offset) } catch { handle.heap.failTransaction(error) }
    }

    /// Stores an optional value into the field of a new object.
    @inlinable
    public static func initializeOptional<T: PersistentStorable>(_ value: T?, _ handle: ObjectHandle, _ offset: Int) {
        guard let value else { return }  // a new object's fields are zero: nil already
        do { try storePresent(value, handle, offset) } catch { handle.heap.failTransaction(error) }
    }

    /// Replaces the value at `offset`, freeing the storage the old one owned. Inside a transaction
    /// a failure dooms it (the transaction then throws the error); outside one the write is a
    /// transaction of its own, and a failure stops the program with its description.
    @inlinable
    public static func store<T: PersistentStorable>(_ value: T, _ handle: ObjectHandle, _ offset: Int) {
        write(handle) { () throws(HeapError) in
            try T.releaseStored(at: handle.fields + offset, heap: handle.heap)
            try value.store(into: handle, at: offset)
        }
    }

    /// Replaces the optional value at `offset`, freeing the storage the old one owned.
    @inlinable
    public static func storeOptional<T: PersistentStorable>(_ value: T?, _ handle: ObjectHandle, _ offset: Int) {
        write(handle) { () throws(HeapError) in
            let address = handle.fields + offset
            let present = isReference(T.self) ? address.load(as: UInt64.self) != 0
                : address.load(fromByteOffset: T.persistentStoredSize, as: UInt8.self) != 0
            if present { try T.releaseStored(at: address, heap: handle.heap) }
            if let value {
                try storePresent(value, handle, offset)
            } else if isReference(T.self) {
                handle[UInt64.self, at: offset] = 0
            } else {
                handle[UInt8.self, at: offset + T.persistentStoredSize] = 0
            }
        }
    }

    @inlinable
    static func storePresent<T: PersistentStorable>(_ value: T, _ handle: ObjectHandle, _ offset: Int) throws(HeapError) {
        try value.store(into: handle, at: offset)
        if !isReference(T.self) { handle[UInt8.self, at: offset + T.persistentStoredSize] = 1 }
    }

    @usableFromInline
    static func write(_ handle: ObjectHandle, _ body: () throws(HeapError) -> Void) {
        let heap = handle.heap
        if heap.inTransaction {
            do { try body() } catch { heap.failTransaction(error) }
            return
        }
        do {
            try heap.transaction { try body() }
        } catch {
            preconditionFailure("a write to a persistent property outside a transaction failed: \(error)")
        }
    }
}
