import CFerriteShim
import Synchronization

/// A readers-writer lock for critical sections of a few microseconds, as the keyspace's are
/// (the disk is never waited for under it): waiters spin briefly, then yield the core, and never
/// sleep in the kernel. A sleeping lock costs a futex wait and a wake-up per contended command,
/// far more than the command on a virtual machine. Writers are preferred: once one waits, new
/// readers hold back, so a stream of readers cannot starve it.
final class ReadWriteLock: Sendable {
    /// -1 while a writer holds the lock, else the number of readers holding it.
    private let state = Atomic<Int>(0)
    /// Writers waiting for the lock.
    private let writersWaiting = Atomic<Int>(0)

    init() {}

    @inline(__always)
    private static func backOff(_ attempt: inout Int) {
        attempt += 1
        if attempt < 64 {
            for _ in 0..<(attempt < 16 ? 4 : 32) { ferrite_pause() }
        } else {
            ferrite_yield()
        }
    }

    func lockRead() {
        var attempt = 0
        while true {
            let current = state.load(ordering: .relaxed)
            if current >= 0 && writersWaiting.load(ordering: .relaxed) == 0,
               state.compareExchange(expected: current, desired: current + 1, ordering: .acquiring).exchanged {
                return
            }
            Self.backOff(&attempt)
        }
    }

    func unlockRead() { state.subtract(1, ordering: .releasing) }

    func lockWrite() {
        writersWaiting.add(1, ordering: .relaxed)
        var attempt = 0
        while !state.compareExchange(expected: 0, desired: -1, ordering: .acquiring).exchanged {
            Self.backOff(&attempt)
        }
        writersWaiting.subtract(1, ordering: .relaxed)
    }

    func unlockWrite() { state.store(0, ordering: .releasing) }

    func withReadLock<R>(_ body: () throws -> R) rethrows -> R {
        lockRead()
        defer { unlockRead() }
        return try body()
    }

    func withWriteLock<R>(_ body: () throws -> R) rethrows -> R {
        lockWrite()
        defer { unlockWrite() }
        return try body()
    }
}
