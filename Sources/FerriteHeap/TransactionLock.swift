import CFerriteShim

/// Writer locks held until the end of a transaction, with optimistic readers (a seqlock).
///
/// The lock is an 8-byte word inside a persistent object that transactions never log: its value
/// only means something in the process that wrote it. Its high 32 bits are the generation of the
/// heap that wrote it (random at every open), its low 32 bits a version that is odd while a writer
/// holds the lock. A word of another generation (left in the pool by an earlier process, even a
/// crashed one holding it) counts as unlocked.
///
/// A writer takes the lock for the rest of its transaction: readers never see a half-done
/// change, nor a change that is rolled back (the lock is released after the rollback). Readers
/// take no lock: they read, then check that the version did not move, and retry if it did.
enum TransactionLock {
    static let versionMask: UInt64 = 0xFFFF_FFFF

    /// Takes the lock at `word` for `context`'s transaction (re-entrant within it).
    static func acquire(_ word: UnsafeMutableRawPointer, generation: UInt64, context: TransactionContext) {
        if context.heldLocks.contains(word) { return }
        var spins = 0
        while true {
            let value = ferrite_atomic_load_u64(word)
            let current = value & ~versionMask == generation ? value : generation
            if current & 1 == 0, ferrite_atomic_cas_u64(word, value, generation | ((current + 1) & versionMask)) != 0 {
                // The odd version must be visible before any change the holder makes (a reader
                // that saw the old version twice must not have seen new data in between).
                ferrite_release_fence()
                break
            }
            spins += 1
            if spins < 128 { ferrite_pause() } else { ferrite_yield() }
        }
        context.heldLocks.append(word)
    }

    static func release(_ word: UnsafeMutableRawPointer) {
        let value = ferrite_atomic_load_u64(word)
        ferrite_atomic_store_u64(word, value & ~versionMask | ((value + 1) & versionMask))
    }
}

extension ObjectHandle {
    /// Takes the writer lock kept in the 8-byte word at `offset` of this object's fields, until
    /// the current transaction ends (after its commit, or after its rollback). Re-entrant: a
    /// transaction may take the same lock again. Other writers wait; readers that use
    /// ``readConsistently(wordAt:_:)`` never see the object half-changed.
    ///
    /// The word is reserved for the lock: never write it otherwise. A transaction that takes
    /// several locks should take them in a consistent order, or two such transactions can wait for
    /// each other forever. The same holds for reads: a transaction that holds a lock and reads an
    /// object another transaction holds locked waits for it (``readConsistently(wordAt:_:)``), so
    /// if that transaction in turn waits for the first one's lock, neither ends.
    ///
    /// - Throws: ``HeapError/notInTransaction(operation:)`` outside a transaction.
    public func lockUntilTransactionEnds(wordAt offset: Int) throws(HeapError) {
        let heap = self.heap
        let context = try heap.activeContext("lock")
        TransactionLock.acquire(fields + offset, generation: heap.lockGeneration, context: context)
    }

    /// Runs `body`, a read of this object (and of what it references), so that its result reflects
    /// no writer's unfinished transaction: `body` runs again whenever a writer held or changed the
    /// lock at `offset` meanwhile. In the transaction that holds the lock, `body` simply runs (and
    /// sees the transaction's own writes).
    ///
    /// `body` may run against data a writer is changing; its result is then thrown away. It must
    /// therefore cope with any bytes (check offsets against ``Heap/contains(_:count:)`` before
    /// following them, bound its loops) and have no side effects.
    @inlinable
    public func readConsistently<R>(wordAt offset: Int, _ body: () -> R) -> R {
        let word = fields + offset
        var spins = 0
        while true {
            let before = ferrite_atomic_load_u64(word)
            if before & 1 != 0 && !isStaleLock(before) {
                if holdsLock(word) { return body() }
                spins += 1
                if spins < 128 { ferrite_pause() } else { ferrite_yield() }
                continue
            }
            let result = body()
            ferrite_load_fence()
            if ferrite_atomic_load_u64(word) == before { return result }
        }
    }

    @usableFromInline
    func isStaleLock(_ value: UInt64) -> Bool {
        heapReference._withUnsafeGuaranteedRef { value & ~TransactionLock.versionMask != $0.lockGeneration }
    }

    @usableFromInline
    func holdsLock(_ word: UnsafeMutableRawPointer) -> Bool {
        heapReference._withUnsafeGuaranteedRef { heap in
            guard let context = heap.existingContext() else { return false }
            return context.isActive && context.heldLocks.contains(word)
        }
    }
}
