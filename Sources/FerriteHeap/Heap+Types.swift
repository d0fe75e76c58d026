import CFerriteShim

/// The type registry: Swift types known to this process, and the pool's table of the types its
/// objects have (so that an object of a type this process does not know can still be named).
extension Heap {
    /// Makes `type` known to this heap, so that ``object(at:)`` can re-create its proxies, with
    /// its dependent types (``PersistentObject/persistentDependentTypes``, transitively).
    /// Allocating an object, or reading one with ``object(at:as:)`` or ``root(_:as:)``, registers
    /// its type automatically.
    ///
    /// Once the type and all its dependents are known, each newly known type's
    /// ``PersistentObject/persistentTypeDidRegister(in:)`` runs, the type's own first (a
    /// `@Persistent` type checks, and perhaps upgrades, its objects' layout there). Only then are
    /// the types published: other threads registering them wait until then, and never use a type
    /// whose hook has not finished. If a hook throws, that type and those whose turn had not come
    /// stay unregistered and the error is rethrown; registering again retries them. Registration
    /// inside a transaction joins it: if that transaction rolls back, so do the types it registered.
    ///
    /// - Throws: ``HeapError/typeIDCollision(id:existing:new:)`` if another type name has the same id.
    public func register(_ type: any PersistentObject.Type) throws(HeapError) {
        guard !isClosed else { throw .closed }
        registrationLock.lock()
        defer { registrationLock.unlock() }
        var added: [any PersistentObject.Type] = []
        var visited: Set<UInt64> = []
        do {
            try add(type, into: &added, visited: &visited)
            while let next = added.first {
                try next.persistentTypeDidRegister(in: self)
                added.removeFirst()
                let id = next.persistentTypeID
                typesLock.withLock {
                    pendingTypes.removeValue(forKey: id)
                    swiftTypes[id] = next
                }
                // Inside a transaction the hook's writes belong to it: so does the registration.
                if let context = existingContext(), context.isActive { context.provisionalTypes.append(id) }
            }
        } catch {
            typesLock.withLock { for type in added { pendingTypes.removeValue(forKey: type.persistentTypeID) } }
            throw error
        }
    }

    /// Adds `type` and its dependents (visiting known types too, so that a dependent whose hook
    /// failed earlier is retried) to the pending types, appending the new ones to `added`.
    private func add(_ type: any PersistentObject.Type, into added: inout [any PersistentObject.Type], visited: inout Set<UInt64>) throws(HeapError) {
        let id = type.persistentTypeID
        guard visited.insert(id).inserted else { return }
        let isNew = try typesLock.withLock { () throws(HeapError) -> Bool in
            if let existing = swiftTypes[id] ?? pendingTypes[id] {
                if existing.persistentTypeName != type.persistentTypeName {
                    throw .typeIDCollision(id: id, existing: existing.persistentTypeName, new: type.persistentTypeName)
                }
                return false
            }
            if let stored = poolTypes[id], !type.persistentTypeName.utf8.starts(with: stored.utf8) {
                throw .typeIDCollision(id: id, existing: stored, new: type.persistentTypeName)
            }
            pendingTypes[id] = type
            return true
        }
        if isNew { added.append(type) }
        for dependent in type.persistentDependentTypes { try add(dependent, into: &added, visited: &visited) }
    }

    /// Withdraws types registered by a transaction that rolled back (their hooks' writes are
    /// gone), and makes every thread forget what it had cached about registrations.
    func unpublish(_ ids: [UInt64]) {
        typesLock.withLock { for id in ids { swiftTypes.removeValue(forKey: id) } }
        registrationGeneration.add(1, ordering: .releasing)
    }

    /// Registers `type` unless this thread has since the last withdrawal (a per-thread list
    /// answers without taking the registration lock).
    func ensureRegistered(_ type: any PersistentObject.Type, context: TransactionContext) throws(HeapError) -> UInt64 {
        let id = type.persistentTypeID
        context.refreshTypeCaches(generation: registrationGeneration.load(ordering: .acquiring))
        if context.registeredTypes.contains(id) { return id }
        try register(type)
        context.registeredTypes.append(id)
        return id
    }

    /// The types whose objects the heap can look into: registered ones and those being registered.
    var knownTypes: [UInt64: any PersistentObject.Type] {
        typesLock.withLock { swiftTypes.merging(pendingTypes) { registered, _ in registered } }
    }

    /// The names of the types recorded in the pool, by type id.
    public var storedTypes: [UInt64: String] { typesLock.withLock { poolTypes } }

    var typeCount: Int { Int(ferrite_atomic_load_u64(base + PoolLayout.offTypeCount)) }

    func loadPoolTypes() {
        let table = base + layout.typeTableOffset
        for i in 0..<min(typeCount, PoolLayout.typeCapacity) {
            let entry = table + i * PoolLayout.typeEntrySize
            let id = entry.load(as: UInt64.self)
            let length = min(Int(entry.load(fromByteOffset: 12, as: UInt16.self)), PoolLayout.typeNameCapacity)
            let name = String(decoding: UnsafeRawBufferPointer(start: entry + 16, count: length), as: UTF8.self)
            poolTypes[id] = name
        }
    }

    /// Records a type in the pool's type table, durably, the first time an object of it is made.
    /// The table only grows; the entry is written before the count that makes it visible.
    func recordPoolType(_ type: any PersistentObject.Type) throws(HeapError) {
        let id = type.persistentTypeID
        try typesLock.withLock { () throws(HeapError) in
            if poolTypes[id] != nil { return }
            let index = typeCount
            guard index < PoolLayout.typeCapacity else { throw .tableFull("type table (\(PoolLayout.typeCapacity) types)") }
            let name = Array(type.persistentTypeName.utf8.prefix(PoolLayout.typeNameCapacity))
            for view in [base, mapping.durable] {
                let entry = view + layout.typeTableOffset + index * PoolLayout.typeEntrySize
                entry.initializeMemory(as: UInt8.self, repeating: 0, count: PoolLayout.typeEntrySize)
                entry.storeBytes(of: id, as: UInt64.self)
                entry.storeBytes(of: UInt32(type.persistentSize), toByteOffset: 8, as: UInt32.self)
                entry.storeBytes(of: UInt16(name.count), toByteOffset: 12, as: UInt16.self)
                name.withUnsafeBytes { (entry + 16).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            domain.persist(mapping.durable + layout.typeTableOffset + index * PoolLayout.typeEntrySize, count: PoolLayout.typeEntrySize)
            ferrite_atomic_store_u64(base + PoolLayout.offTypeCount, UInt64(index + 1))
            ferrite_atomic_store_u64(mapping.durable + PoolLayout.offTypeCount, UInt64(index + 1))
            domain.persist(mapping.durable + PoolLayout.offTypeCount, count: 8)
            poolTypes[id] = String(decoding: name, as: UTF8.self)
        }
    }
}

/// Named roots: the entry points from which a program finds its objects after a restart.
extension Heap {
    private func rootEntry(_ index: Int) -> UnsafeMutableRawPointer {
        base + layout.rootTableOffset + index * PoolLayout.rootEntrySize
    }

    private func rootName(_ index: Int) -> [UInt8] {
        let entry = rootEntry(index)
        let length = min(Int(entry.load(fromByteOffset: 8, as: UInt8.self)), PoolLayout.rootNameCapacity)
        return Array(UnsafeRawBufferPointer(start: entry + 9, count: length))
    }

    private func findRoot(_ name: [UInt8]) -> Int? {
        (0..<PoolLayout.rootCapacity).first { rootName($0) == name }
    }

    private func checkedRootName(_ name: String) throws(HeapError) -> [UInt8] {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= PoolLayout.rootNameCapacity else { throw .invalidRootName(name) }
        return bytes
    }

    /// The reference stored under root `name`, or nil.
    public func rootReference(_ name: String) throws(HeapError) -> UInt64? {
        guard !isClosed else { throw .closed }
        guard let index = findRoot(try checkedRootName(name)) else { return nil }
        let reference = rootEntry(index).load(as: UInt64.self)
        return reference == 0 ? nil : reference
    }

    /// The object stored under root `name`, or nil if there is none.
    /// Registers `T` first if this thread has not yet (see ``register(_:)``).
    public func root<T: PersistentObject>(_ name: String, as type: T.Type) throws(HeapError) -> T? {
        guard !isClosed else { throw .closed }
        _ = try ensureRegistered(T.self, context: context())  // first: registering may move the object
        guard let reference = try rootReference(name) else { return nil }
        return try object(at: reference, as: T.self)
    }

    /// The names of all roots.
    public var rootNames: [String] {
        guard !isClosed else { return [] }
        return (0..<PoolLayout.rootCapacity).compactMap { index in
            let name = rootName(index)
            return name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
        }
    }

    /// Stores `object` under root `name` (nil removes the root), in the current transaction or,
    /// outside one, in a transaction of its own.
    public func setRoot(_ name: String, to object: (any PersistentObject)?) throws {
        let bytes = try checkedRootName(name)
        try transaction {
            let context = self.context()
            if let index = findRoot(bytes) {
                let entry = rootEntry(index)
                try context.prepareRawWrite(offset: entry - base, count: PoolLayout.rootEntrySize)
                if let object {
                    entry.storeBytes(of: object.reference, as: UInt64.self)
                } else {
                    entry.initializeMemory(as: UInt8.self, repeating: 0, count: PoolLayout.rootEntrySize)
                }
                return
            }
            guard let object else { return }
            let index: Int = try rootLock.withLock { () throws(HeapError) -> Int in
                guard let free = (0..<PoolLayout.rootCapacity).first(where: { rootName($0).isEmpty && !reservedRoots.contains($0) }) else {
                    throw .tableFull("root table (\(PoolLayout.rootCapacity) roots)")
                }
                reservedRoots.insert(free)
                return free
            }
            defer { _ = rootLock.withLock { reservedRoots.remove(index) } }
            let entry = rootEntry(index)
            try context.prepareRawWrite(offset: entry - base, count: PoolLayout.rootEntrySize)
            entry.storeBytes(of: object.reference, as: UInt64.self)
            entry.storeBytes(of: UInt8(bytes.count), toByteOffset: 8, as: UInt8.self)
            bytes.withUnsafeBytes { (entry + 9).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
    }
}
