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

/// A mutex with condition variables: for threads that sleep until another changes shared state.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let conditions: UnsafeMutablePointer<pthread_cond_t>
    private let count: Int

    /// A mutex with `conditions` condition variables (numbered from 0).
    init(conditions: Int = 1) {
        count = conditions
        mutex = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        self.conditions = UnsafeMutableRawPointer.allocate(byteCount: max(128, conditions * MemoryLayout<pthread_cond_t>.stride), alignment: 128)
            .bindMemory(to: pthread_cond_t.self, capacity: conditions)
        // Timed waits use the monotonic clock: a step of the wall clock must not stall them.
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        for i in 0..<conditions {
            (self.conditions + i).initialize(to: pthread_cond_t())
            pthread_cond_init(self.conditions + i, &attributes)
        }
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        for i in 0..<count { pthread_cond_destroy(conditions + i) }
        pthread_mutex_destroy(mutex)
        UnsafeMutableRawPointer(conditions).deallocate()
        UnsafeMutableRawPointer(mutex).deallocate()
    }

    @inline(__always) func lock() { pthread_mutex_lock(mutex) }
    @inline(__always) func unlock() { pthread_mutex_unlock(mutex) }
    /// Sleeps until condition `condition` is signalled (the lock must be held; it is held again
    /// on return). Wake-ups may be spurious: wait in a loop that rechecks what it waits for.
    func wait(_ condition: Int = 0) { pthread_cond_wait(conditions + condition, mutex) }
    /// Sleeps until woken or `nanoseconds` have passed.
    func wait(_ condition: Int = 0, nanoseconds: Int) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = Int(now.tv_nsec) + nanoseconds
        var deadline = timespec(tv_sec: now.tv_sec + total / 1_000_000_000, tv_nsec: total % 1_000_000_000)
        pthread_cond_timedwait(conditions + condition, mutex, &deadline)
    }
    /// Wakes every thread sleeping on `condition`.
    func broadcast(_ condition: Int = 0) { pthread_cond_broadcast(conditions + condition) }
    /// Wakes one thread sleeping on `condition`.
    func signal(_ condition: Int = 0) { pthread_cond_signal(conditions + condition) }

    @inline(__always)
    func withLock<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
        lock()
        defer { unlock() }
        return try body()
    }
}
