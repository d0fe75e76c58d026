import CFerriteShim
#if canImport(Glibc)
import Glibc
#endif

/// A plain mutex for locks held across calls (Swift's `Mutex` only offers scoped locking).
final class Lock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    /// The mutex gets cache lines of its own: locks of different threads must not share a line
    /// (false sharing makes uncontended locks slow).
    init() {
        mutex = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        UnsafeMutableRawPointer(mutex).deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }

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
