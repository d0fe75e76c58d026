import FerriteCollections
import FerriteHeap
import Foundation

/// The layouts of `@Persistent` types recorded in a pool, and what happens when a program's
/// layout differs from the recorded one.
///
/// Each pool keeps, under the root `ferrite.schemas`, a dictionary from persistent type name to
/// layout: the size of the fields, then `name:type@offset+size` for every property. When a type
/// is registered (explicitly, or by its first allocation or typed read), its compiled layout is
/// compared with the recorded one:
/// - none recorded: the compiled layout is recorded;
/// - the same: nothing to do;
/// - the recorded properties unchanged and new ones appended, each with a default value: the pool's
///   objects are upgraded in place or moved (``Heap/upgradeObjects(of:initialize:)``), the new
///   properties get their defaults, and the new layout is recorded;
/// - anything else (a property removed, retyped or moved, or a new one without a default):
///   ``HeapError/schemaMismatch(type:difference:)`` naming the type and the difference, and
///   nothing is changed.
public enum PersistentSchema {
    /// The root holding the recorded layouts.
    public static let rootName = "ferrite.schemas"
    /// Serializes schema records and upgrades (recursive: checking a type of one heap can open
    /// another, as crash tests do at every fence).
    private static let lock = NSRecursiveLock()

    /// The layout of `type` as the schema records it.
    public static func signature(of type: any PersistentModel.Type) -> String {
        (["size=\(type.persistentSize)"] + type.persistentFields.map(\.signature)).joined(separator: ";")
    }

    /// The layout recorded in `heap` for the type named `typeName`, if any.
    public static func recordedSignature(of typeName: String, in heap: Heap) throws -> String? {
        try heap.root(rootName, as: PersistentDictionary<String, String>.self)?[typeName]
    }

    static func check(_ type: any PersistentModel.Type, in heap: Heap) throws(HeapError) {
        for field in type.persistentFields where field.neededSize > field.size {
            throw .schemaMismatch(type: type.persistentTypeName, difference:
                "property '\(field.name)' of type \(field.type) needs \(field.neededSize) bytes but @Persistent gave it \(field.size) (enums must have integer, floating-point or Bool raw values)")
        }
        do {
            try lock.withLock { try record(type, in: heap) }
        } catch let error as HeapError {
            throw error
        } catch {
            throw .schemaMismatch(type: type.persistentTypeName, difference: "\(error)")
        }
    }

    private static func record(_ type: any PersistentModel.Type, in heap: Heap) throws {
        let compiled = signature(of: type)
        let existing = try heap.root(rootName, as: PersistentDictionary<String, String>.self)
        let stored = existing?[type.persistentTypeName]
        if stored == compiled { return }
        if stored == nil { try checkUnrecordedObjects(type, in: heap) }
        if let stored { try checkCompatible(type, stored: stored) }
        // Inside a transaction, write nothing: a recorded layout or an upgrade must not depend on a
        // transaction that may roll back (nor hold the schemas' lock until it ends). A first
        // layout is recorded once the transaction has committed; an upgrade cannot wait.
        if heap.inTransaction {
            guard stored == nil else { throw HeapError.upgradeInTransaction(type: type.persistentTypeName) }
            heap.afterCommit { try? lock.withLock { try record(type, in: heap) } }  // retried at the next open if this fails
            return
        }
        let schemas = try existing ?? heap.transaction {
            let map = try PersistentDictionary<String, String>.make(in: heap)
            try heap.setRoot(rootName, to: map)
            return map
        }
        if stored != nil {
            _ = try heap.upgradeObjects(of: type, layouts: knownLayouts(schemas)) { handle, oldSize in
                try type.persistentInitializeDefaults(handle, from: oldSize)
            }
        }
        try schemas.updateValue(compiled, forKey: type.persistentTypeName)
    }

    /// With no layout recorded, the pool's objects of `type` (made before it was recorded: by a
    /// transaction that committed just before a crash, or by a hand-written proxy) must have the
    /// compiled size: objects of another size were made with a layout nobody knows.
    private static func checkUnrecordedObjects(_ type: any PersistentModel.Type, in heap: Heap) throws(HeapError) {
        guard heap.storedTypes[type.persistentTypeID] != nil else { return }  // never allocated in this pool
        let others = heap.objectsWithOtherSizes(of: type)
        if others > 0 {
            throw .schemaMismatch(type: type.persistentTypeName, difference:
                "\(others) objects in the pool have another size than the program's \(type.persistentSize) bytes, and no layout is recorded for them")
        }
    }

    /// The reference offsets of every type with a recorded layout, and of the blocks behind
    /// strings and byte strings (none), by type id: an upgrade looks inside their objects even
    /// when this process has not registered their types.
    private static func knownLayouts(_ schemas: PersistentDictionary<String, String>) -> [UInt64: [Int]] {
        var layouts: [UInt64: [Int]] = [
            PersistentString.persistentTypeID: [],
            PersistentBytes.persistentTypeID: [],
        ]
        for (name, signature) in schemas {
            layouts[TypeID.make(name)] = fields(of: signature)?.compactMap { field in
                let type = field.type.hasSuffix("?") ? String(field.type.dropLast()) : field.type
                return type.hasPrefix("@") || type == String.persistentTag || type == [UInt8].persistentTag ? field.offset : nil
            }
        }
        return layouts
    }

    /// The fields of a recorded layout (name, type tag, offset, size), or nil if it is malformed.
    private static func fields(of signature: String) -> [(name: String, type: String, offset: Int, size: Int)]? {
        var result: [(name: String, type: String, offset: Int, size: Int)] = []
        for part in signature.split(separator: ";").dropFirst() {
            guard let colon = part.firstIndex(of: ":"), let at = part.lastIndex(of: "@"), let plus = part.lastIndex(of: "+"), at < plus,
                  let offset = Int(part[part.index(after: at)..<plus]), let size = Int(part[part.index(after: plus)...]) else { return nil }
            result.append((String(part[..<colon]), String(part[part.index(after: colon)..<at]), offset, size))
        }
        return result
    }

    /// Throws unless `type`'s layout is `stored` with properties appended, each with a default.
    private static func checkCompatible(_ type: any PersistentModel.Type, stored: String) throws(HeapError) {
        func mismatch(_ difference: String) -> HeapError { .schemaMismatch(type: type.persistentTypeName, difference: difference) }
        guard let sizePart = stored.split(separator: ";").first, sizePart.hasPrefix("size="), let storedSize = Int(sizePart.dropFirst(5)),
              let storedFields = fields(of: stored) else {
            throw mismatch("the recorded layout '\(stored)' is not one this version understands")
        }
        var recorded: [String: (type: String, place: String)] = [:]
        for field in storedFields { recorded[field.name] = (field.type, "\(field.offset)+\(field.size)") }
        let order = storedFields.map(\.name)
        let compiled = type.persistentFields
        for name in order {
            let old = recorded[name]!
            guard let field = compiled.first(where: { $0.name == name }) else {
                throw mismatch("the pool's objects have a property '\(name)' (\(old.type)) that the program's type no longer declares")
            }
            if field.type != old.type {
                throw mismatch("property '\(name)' is \(old.type) in the pool but \(field.type) in the program")
            }
            if "\(field.offset)+\(field.size)" != old.place {
                throw mismatch("property '\(name)' moved from +\(old.place) to +\(field.offset)+\(field.size) (declare new properties after the existing ones)")
            }
        }
        for field in compiled where recorded[field.name] == nil {
            if field.offset < storedSize {
                throw mismatch("new property '\(field.name)' sits inside the old layout (declare new properties after the existing ones)")
            }
            if !field.hasDefault {
                throw mismatch("new property '\(field.name)' has no default value for the objects already in the pool (give it one)")
            }
        }
    }
}
