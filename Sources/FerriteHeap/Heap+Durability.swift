/// A position in a heap's commit order: every transaction committed before it was taken lies at or
/// below it. Points of a memory-mode heap are all ``zero``: its commits are durable on return.
public struct CommitPoint: Comparable, Hashable, Sendable {
    /// The end of the write-ahead log (storage mode), in bytes since the log was created.
    public let logPosition: UInt64
    /// The point before any commit.
    public static let zero = CommitPoint(logPosition: 0)
    public static func < (lhs: CommitPoint, rhs: CommitPoint) -> Bool { lhs.logPosition < rhs.logPosition }
}

/// Early lock release: commit now, wait for the disk later, acknowledge after.
///
/// A server holds its locks while it runs a command's transaction, and must not answer before the
/// commit is durable. If the commit waited for the disk under the locks, commands on shared data
/// would pay one `fdatasync` each, one after the other. Instead the server runs its transactions in
/// ``Heap/deferringDurability(_:)`` (their commits return once logged), releases its locks, then
/// waits for ``Heap/commitPoint`` with ``Heap/waitUntilDurable(_:)`` before it replies: the waits
/// of all connections share syncs (group commit).
///
/// Waiting for the commit point taken after a command also covers everything the command *read*:
/// a reply never reveals a write that a crash could still undo.
extension Heap {
    /// Runs `body` with the calling thread's commits returning once their log records are
    /// appended, before they reach the disk. Storage mode with ``StorageSync/full`` only; in every
    /// other mode commits do not wait for a sync anyway, and this just runs `body`.
    ///
    /// A crash may undo a transaction committed in `body` until ``waitUntilDurable(_:)`` returns for
    /// a ``commitPoint`` taken after it; it never undoes one without undoing every transaction
    /// committed after it too (the log is replayed as a prefix).
    public func deferringDurability<R>(_ body: () throws -> R) rethrows -> R {
        guard let storage else { return try body() }
        return try storage.deferringDurability(body)
    }

    /// The point that follows every transaction committed so far, by any thread.
    public var commitPoint: CommitPoint {
        guard let storage else { return .zero }
        return CommitPoint(logPosition: storage.appendedEnd)
    }

    /// Storage mode: runs (or waits for) a checkpoint if the write-ahead log is more than three
    /// quarters full. Commits that do not wait for the disk can fill the log faster than the
    /// background checkpointer empties it; a full log makes a commit run the checkpoint itself,
    /// under whatever locks its caller holds. Call this before taking them. Cheap otherwise.
    public func makeLogRoomIfNeeded() {
        storage?.makeRoomIfNeeded()
    }

    /// Whether every transaction committed before `point` is durable (cheap: no lock, no wait).
    public func isDurable(_ point: CommitPoint) -> Bool {
        guard let storage else { return true }
        return storage.isDurable(through: point.logPosition)
    }

    /// Returns once every transaction committed before `point` is durable: synced to the disk as
    /// the pool's durability mode promises, sharing the sync with other threads' waits.
    public func waitUntilDurable(_ point: CommitPoint) {
        guard let storage, !storage.isDurable(through: point.logPosition) else { return }
        storage.waitDurable(through: point.logPosition)
    }

    /// Like ``waitUntilDurable(_:)``, for threads that must not wait behind a sync already under
    /// way (an event loop, which would rather serve other clients meanwhile): if one is, returns
    /// false at once and calls `notify` once `point` is durable, on the thread that completed the
    /// sync (keep it short: hand work back to your own thread). Otherwise returns true once
    /// `point` is durable, having synced the log itself if needed (no other thread involved: the
    /// lowest latency when the disk is idle).
    public func waitUntilDurable(_ point: CommitPoint, unlessBusy notify: @escaping @Sendable () -> Void) -> Bool {
        guard let storage, !storage.isDurable(through: point.logPosition) else { return true }
        return storage.waitDurable(through: point.logPosition, unlessBusy: notify)
    }
}
