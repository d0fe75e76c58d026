import FerriteHeap

/// A growable array in a pool, with random access, append, insert and remove.
///
/// Elements are stored in place in one buffer block (strings are owned by the array: removing or
/// overwriting one frees it). Every mutation is failure-atomic: inside the caller's transaction,
/// or in one of its own, which costs one persist fence. Growth doubles the buffer in the same
/// transaction, so appends cost amortized O(1).
///
/// It is an ordinary `RandomAccessCollection`: `for x in array`, `array.map`, `array.sorted()`,
/// slicing. Mutations take the array's transaction lock, so two threads may mutate it without
/// corrupting it; reads take none, so read while no other thread mutates (or inside a
/// transaction that called ``lock()``).
public final class PersistentArray<Element: PersistentStorable>: PersistentObject, TransactionLockedCollection, RandomAccessCollection, @unchecked Sendable {
    public static var persistentTypeName: String { "Ferrite.Array<\(Element.persistentTag)>" }
    public static var persistentSize: Int { 32 }
    public static var persistentReferenceOffsets: [Int] { [ArrayLayout.buffer] }
    public static var persistentDependentTypes: [any PersistentObject.Type] { [ArrayBuffer<Element>.self] + referencedTypes(Element.self) }
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    private static var stride: Int { Stored.stride(Element.self) }

    /// Creates an empty array in `heap` (in the current transaction, or in one of its own).
    public static func make(in heap: Heap, minimumCapacity: Int = 0) throws -> PersistentArray {
        try heap.transaction {
            let array = try heap.allocate(PersistentArray.self)
            if minimumCapacity > 0 { try array.reallocate(capacity: minimumCapacity) }
            return array
        }
    }

    private var heap: Heap { handle.heap }
    public var count: Int { handle[Int.self, at: ArrayLayout.count] }
    /// The number of elements the buffer holds before it must grow.
    public var capacity: Int { handle[Int.self, at: ArrayLayout.capacity] }
    private var bufferFields: UnsafeMutableRawPointer {
        ObjectHandle(unchecked: handle[UInt64.self, at: ArrayLayout.buffer], in: heap).fields
    }
    private var buffer: ObjectHandle { ObjectHandle(unchecked: handle[UInt64.self, at: ArrayLayout.buffer], in: heap) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> Element {
        precondition(position >= 0 && position < count, "PersistentArray index out of range")
        return Element.loadStored(from: bufferFields + position * Self.stride, heap: heap)
    }

    /// Takes the array's lock until the current transaction ends, so that other threads' mutations
    /// wait (and so that reads in this transaction see no other writer).
    public func lock() throws { try handle.lockUntilTransactionEnds(wordAt: ArrayLayout.lock) }

    /// Replaces the element at `index` (freeing what the old one owned).
    public func set(_ element: Element, at index: Int) throws {
        try mutate {
            precondition(index >= 0 && index < count, "PersistentArray index out of range")
            let offset = index * Self.stride
            if Element.persistentOwnsStorage { try Element.releaseStored(at: bufferFields + offset, heap: heap) }
            try element.store(into: buffer, at: offset)
        }
    }

    /// Adds `element` at the end.
    public func append(_ element: Element) throws {
        try mutate {
            let count = self.count
            if count == capacity { try reallocate(capacity: Swift.max(4, count * 2)) }
            try element.store(into: buffer, at: count * Self.stride)
            handle[Int.self, at: ArrayLayout.count] = count + 1
        }
    }

    /// Adds the elements of `elements` at the end, in one transaction.
    public func append(contentsOf elements: some Sequence<Element>) throws {
        try mutate { for element in elements { try append(element) } }
    }

    /// Inserts `element` at `index`, moving the later elements up.
    public func insert(_ element: Element, at index: Int) throws {
        try mutate {
            let count = self.count
            precondition(index >= 0 && index <= count, "PersistentArray index out of range")
            if count == capacity { try reallocate(capacity: Swift.max(4, count * 2)) }
            try moveElements(from: index, to: index + 1, count: count - index)
            try element.store(into: buffer, at: index * Self.stride)
            handle[Int.self, at: ArrayLayout.count] = count + 1
        }
    }

    /// Removes and returns the element at `index`, moving the later elements down.
    @discardableResult
    public func remove(at index: Int) throws -> Element {
        try mutate {
            let count = self.count
            precondition(index >= 0 && index < count, "PersistentArray index out of range")
            let element = self[index]
            if Element.persistentOwnsStorage { try Element.releaseStored(at: bufferFields + index * Self.stride, heap: heap) }
            try moveElements(from: index + 1, to: index, count: count - index - 1)
            clear(from: count - 1, count: 1)
            handle[Int.self, at: ArrayLayout.count] = count - 1
            return element
        }
    }

    /// Removes and returns the last element.
    @discardableResult
    public func removeLast() throws -> Element {
        precondition(!isEmpty, "removeLast on an empty PersistentArray")
        return try remove(at: count - 1)
    }

    /// Removes every element and frees the buffer.
    public func removeAll() throws {
        try mutate {
            try releaseElements()
            if handle[UInt64.self, at: ArrayLayout.buffer] != 0 { try heap.free(buffer) }
            handle[UInt64.self, at: ArrayLayout.buffer] = 0
            handle[Int.self, at: ArrayLayout.capacity] = 0
            handle[Int.self, at: ArrayLayout.count] = 0
        }
    }

    /// Frees the array, its buffer and the storage its elements own. The array must not be used
    /// afterwards, and nothing may still reference it.
    public func destroy() throws {
        try mutate {
            try releaseElements()
            if handle[UInt64.self, at: ArrayLayout.buffer] != 0 { try heap.free(buffer) }
            try heap.free(handle)
        }
    }

    // MARK: Internals

    private func releaseElements() throws {
        guard Element.persistentOwnsStorage else { return }
        let fields = bufferFields
        for index in 0..<count { try Element.releaseStored(at: fields + index * Self.stride, heap: heap) }
    }

    /// Moves to a new buffer of `capacity` elements (the old one is freed).
    private func reallocate(capacity: Int) throws {
        let stride = Self.stride
        let new = try heap.allocate(ArrayBuffer<Element>.self, size: capacity * stride)
        let count = self.count
        if count > 0 {  // a new block: filled directly, copied whole at commit
            new.handle.fields.copyMemory(from: bufferFields, byteCount: count * stride)
            try heap.free(buffer)
        } else if handle[UInt64.self, at: ArrayLayout.buffer] != 0 {
            try heap.free(buffer)
        }
        handle[UInt64.self, at: ArrayLayout.buffer] = new.reference
        handle[Int.self, at: ArrayLayout.capacity] = capacity
    }

    /// Moves `count` elements (logged, as one copy of their bytes).
    private func moveElements(from source: Int, to target: Int, count: Int) throws {
        guard count > 0 else { return }
        let stride = Self.stride
        let bytes = [UInt8](UnsafeRawBufferPointer(start: bufferFields + source * stride, count: count * stride))
        bytes.withUnsafeBytes { buffer.storeBytes($0, at: target * stride) }
    }

    /// Zeroes slots (so that the verifier never follows a stale reference).
    private func clear(from index: Int, count: Int) {
        let zeros = [UInt8](repeating: 0, count: count * Self.stride)
        zeros.withUnsafeBytes { buffer.storeBytes($0, at: index * Self.stride) }
    }
}

/// Field offsets of a ``PersistentArray``.
enum ArrayLayout {
    static let lock = CollectionHeader.lock, count = 8, capacity = 16, buffer = 24
}

/// The element buffer of a ``PersistentArray``.
final class ArrayBuffer<Element: PersistentStorable>: PersistentObject, @unchecked Sendable {
    static var persistentTypeName: String { "Ferrite.ArrayBuffer<\(Element.persistentTag)>" }
    static var persistentSize: Int { 0 }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
    static func persistentReferenceOffsets(of handle: ObjectHandle) -> [Int] {
        let inElement = Element.persistentStoredReferenceOffsets
        guard !inElement.isEmpty else { return [] }
        let stride = Stored.stride(Element.self)
        return (0 ..< handle.size / stride).flatMap { slot in inElement.map { slot * stride + $0 } }
    }
}
