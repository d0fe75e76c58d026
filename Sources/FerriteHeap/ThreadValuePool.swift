import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Per-thread state of one owner (a heap's transaction contexts, a storage medium's record
/// buffers), and how the state of a thread that exits goes to the next thread that needs one.
///
/// A transaction context carries a commit lane, which the heap's persist domain tracks for the
/// heap's whole life (at most ``PersistDomain/maximumLanes``), and an allocator cache that owns a
/// chunk per size class; a storage medium's thread state holds a buffer as large as a log record.
/// Without reuse, a process whose threads come and go (a dispatch pool that retires idle workers,
/// a thread per connection) would pile up lanes, chunks and buffers until the heap stops it. With
/// reuse an owner holds about as many as threads have used it *at once*.
///
/// A thread's slot holds its value retained, under a pthread key whose destructor runs when the
/// thread exits and hands the value back to its owner's ``ThreadValuePool``. Keys are never
/// deleted (a deleted key's destructor could race with a thread exiting): an owner gives its key
/// back to ``ThreadValueKeys`` when it closes, for the next owner, and a slot still holding a
/// value of an owner closed before is recognised by its pool and released.
class PooledThreadValue {
    /// Where this value goes when its thread exits (outlives the owner).
    let pool: ThreadValuePool

    init(pool: ThreadValuePool) {
        self.pool = pool
        pool.noteMade()
    }

    /// Whether another thread may take over this value after its thread exited.
    var isReusable: Bool { true }
}

/// The values of exited threads, kept for the next threads (see ``PooledThreadValue``).
final class ThreadValuePool: @unchecked Sendable {
    private let lock = Lock()
    private var idle: [PooledThreadValue] = []
    private var closed = false
    private var made = 0

    /// Whether the owner has closed.
    var isClosed: Bool { lock.withLock { closed } }

    /// How many values were made for this pool (not reused ones).
    var valuesMade: Int { lock.withLock { made } }
    func noteMade() { lock.withLock { made += 1 } }

    /// A value whose thread has exited, if there is one.
    func takeIdle() -> PooledThreadValue? {
        lock.withLock { idle.popLast() }
    }

    /// Called when the thread using `value` exits: keeps it for the next thread, unless the owner
    /// is closed or the value is not reusable (a context whose thread exited inside a
    /// transaction): then it is dropped.
    func threadDidExit(_ value: PooledThreadValue) {
        let keep = value.isReusable
        lock.withLock {
            if keep && !closed { idle.append(value) }
        }
    }

    /// The owner is closing: values of exiting threads are dropped from now on.
    func close() {
        let dropped = lock.withLock { () -> [PooledThreadValue] in
            closed = true
            defer { idle.removeAll() }
            return idle
        }
        _ = dropped  // released here, outside the lock
    }
}

/// The pthread keys of per-thread values, shared over the process's life: an owner takes one
/// when it opens and gives it back when it closes (see ``PooledThreadValue``).
enum ThreadValueKeys {
    private static let free = Mutex<[pthread_key_t]>([])

    static func take() -> pthread_key_t {
        if let key = free.withLock({ $0.popLast() }) { return key }
        var key = pthread_key_t()
        let status = pthread_key_create(&key) { slot in
            guard let slot else { return }
            let value = Unmanaged<PooledThreadValue>.fromOpaque(slot).takeRetainedValue()
            value.pool.threadDidExit(value)
        }
        precondition(status == 0, "pthread_key_create failed (\(status)): too many heaps open at once")
        return key
    }

    static func giveBack(_ key: pthread_key_t) {
        free.withLock { $0.append(key) }
    }

    /// The calling thread's value under `key` if it belongs to `pool` (without retaining it).
    @inline(__always)
    static func value<Value: PooledThreadValue>(_ key: pthread_key_t, of pool: ThreadValuePool, as type: Value.Type) -> Value? {
        guard let slot = pthread_getspecific(key) else { return nil }
        let value = Unmanaged<PooledThreadValue>.fromOpaque(slot).takeUnretainedValue()
        return value.pool === pool ? unsafeDowncast(value, to: Value.self) : nil
    }

    /// Gives the calling thread a value of `pool` under `key`: one an exited thread left, or
    /// `make()`. A value of an owner closed before that used the same key is released first.
    static func attach<Value: PooledThreadValue>(_ key: pthread_key_t, from pool: ThreadValuePool, make: () -> Value) -> Value {
        if let slot = pthread_getspecific(key) {
            // Only a closed owner's value can be here: a closed owner gives its key back, and the
            // live owner of a key never attaches twice on one thread.
            let stale = Unmanaged<PooledThreadValue>.fromOpaque(slot)
            precondition(stale.takeUnretainedValue().pool.isClosed, "a per-thread value was attached twice: is an object of a closed heap still in use?")
            pthread_setspecific(key, nil)
            stale.release()
        }
        let value = pool.takeIdle().map { unsafeDowncast($0, to: Value.self) } ?? make()
        pthread_setspecific(key, Unmanaged.passRetained(value as PooledThreadValue).toOpaque())
        return value
    }
}
