import CFerriteShim
#if canImport(Glibc)
import Glibc
#endif

/// A plain mutex with an optional condition, for locks held across calls (Swift's `Mutex` only
/// offers scoped locking).
final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    /// The mutex and condition share one allocation of their own cache lines: locks of different
    /// threads must not share a line (false sharing makes uncontended locks slow).
    private let storage: UnsafeMutableRawPointer

    init() {
        storage = .allocate(byteCount: 256, alignment: 128)
        mutex = storage.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        condition = (storage + 128).bindMemory(to: pthread_cond_t.self, capacity: 1)
        condition.initialize(to: pthread_cond_t())
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        storage.deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for ``broadcast()``; the lock must be held.
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }

    @inline(__always)
    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A spinlock for very short critical sections that are almost never contended, on a cache line
/// of its own.
final class SpinLock: @unchecked Sendable {
    private let word: UnsafeMutableRawPointer

    init() {
        word = .allocate(byteCount: 128, alignment: 128)
        word.storeBytes(of: 0, as: UInt64.self)
    }

    deinit { word.deallocate() }

    @inline(__always) func lock() { ferrite_spin_lock(word) }
    @inline(__always) func unlock() { ferrite_spin_unlock(word) }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}
