import FerriteCollections
import FerriteHeap

/// One stored property of a `@Persistent` class: where its value lives in the object's fields,
/// and what it is. The macro writes a table of them (``PersistentModel/persistentFields``); the
/// heap uses it to find references, free owned storage and fingerprint the layout.
public struct PersistentField: @unchecked Sendable {  // metatypes and a pure function: immutable
    /// The property's name.
    public let name: String
    /// The stable name of the stored type (``PersistentStorable/persistentTag``), with `?` for an
    /// optional.
    public let type: String
    /// Byte offset of the value in the object's fields.
    public let offset: Int
    /// Bytes the layout gives the value (its slot).
    public let size: Int
    /// Bytes the value needs: its stored size, plus a presence byte for an optional that is not a
    /// reference.
    public let neededSize: Int
    /// Whether the declaration has a default value (so that the field can be added to existing
    /// objects).
    public let hasDefault: Bool
    /// Offsets of references within the slot.
    public let referenceOffsets: [Int]
    /// The persistent object type the value refers to, if any.
    public let referencedType: (any PersistentObject.Type)?
    /// Frees the storage owned by the value stored at an address (strings and byte strings), or
    /// nil for values that own none.
    let release: ((UnsafeRawPointer, Heap) throws(HeapError) -> Void)?

    /// Describes a property of type `T` (or `T?` when `optional`) stored in `size` bytes at
    /// `offset`.
    public init<T: PersistentStorable>(_ name: String, _ type: T.Type, offset: Int, size: Int,
                                       optional: Bool = false, hasDefault: Bool) {
        self.name = name
        self.type = T.persistentTag + (optional ? "?" : "")
        self.offset = offset
        self.size = size
        self.neededSize = T.persistentStoredSize + (optional && !PersistentFieldStorage.isReference(T.self) ? 1 : 0)
        self.hasDefault = hasDefault
        self.referenceOffsets = T.persistentStoredReferenceOffsets.map { offset + $0 }
        self.referencedType = T.persistentReferencedType
        self.release = T.persistentOwnsStorage ? { address, heap throws(HeapError) in try T.releaseStored(at: address, heap: heap) } : nil
    }

    /// The field as the schema records it: `name:type@offset+size`.
    var signature: String { "\(name):\(type)@\(offset)+\(size)" }
}
