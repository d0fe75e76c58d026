import FerriteHeap

/// The first word of every collection header: its transaction lock
/// (``ObjectHandle/lockUntilTransactionEnds(wordAt:)``), which mutations hold until their
/// transaction ends and readers check (``ObjectHandle/readConsistently(wordAt:_:)``).
@usableFromInline enum CollectionHeader {
    @usableFromInline static let lock = 0
}

/// A collection whose header starts with a transaction lock.
@usableFromInline
protocol TransactionLockedCollection: PersistentObject {}

extension TransactionLockedCollection {
    /// Runs a mutation in a transaction (the caller's, or one of its own), holding the collection's
    /// lock until that transaction ends.
    @inlinable
    func mutate<R>(_ body: () throws -> R) throws -> R {
        try handle.heap.transaction {
            try handle.lockUntilTransactionEnds(wordAt: CollectionHeader.lock)
            return try body()
        }
    }
}

/// The setter of the maps' subscripts: stores `newValue`, or removes the key when it is nil; traps
/// when the pool is full (the throwing methods report that error instead).
@inlinable
func storeOrRemove<Value>(_ newValue: Value?, in collection: String, update: (Value) throws -> Void, remove: () throws -> Void) {
    do {
        if let newValue { try update(newValue) } else { try remove() }
    } catch {
        preconditionFailure("\(collection) could not store a value: \(error)")
    }
}
