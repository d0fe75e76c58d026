/// Unchecked access to blocks, for collections that follow references they wrote themselves,
/// possibly while a writer changes them (see ``ObjectHandle/readConsistently(wordAt:_:)``).
extension ObjectHandle {
    /// A handle for the block at `reference` without checking that one is there: for collections
    /// following references they wrote themselves. Reading through a handle to something that is
    /// not a live block reads meaningless bytes (of the pool, never outside it if
    /// ``Heap/contains(_:count:)`` holds).
    @inlinable
    public init(unchecked reference: UInt64, in heap: Heap) {
        self.init(heap: heap, reference: reference)
    }
}

extension Heap {
    /// Whether the `count` bytes of fields of a block at `reference` lie inside the pool as mapped
    /// now: safe to read, whatever they hold.
    @inlinable
    public func contains(_ reference: UInt64, count: Int) -> Bool {
        reference >= 4096 && count >= 0 && reference &+ UInt64(ObjectHeader.size) &+ UInt64(count) <= UInt64(mappedBytes)
    }

    /// The number of bytes of the pool mapped now: a block whose fields end below it may be read
    /// (whatever it holds). It only grows while the heap is open.
    public var mappedBytes: Int { mapping.mappedSize }

    /// The address of the fields of the block at `reference`, unchecked (as
    /// ``ObjectHandle/init(unchecked:in:)``): `fieldsAddress(of: 0) + reference` for a loop that
    /// follows many references.
    @inlinable
    public func fieldsAddress(of reference: UInt64) -> UnsafeMutableRawPointer { base + Int(reference) + ObjectHeader.size }
}
