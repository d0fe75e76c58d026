// What every benchmark command shares: arguments, medians, a scratch directory on tmpfs.
import Foundation

/// The command's arguments, without the program name.
public let arguments = Array(CommandLine.arguments.dropFirst())

/// The value after `--name`, if given.
public func option(_ name: String) -> String? {
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return nil }
    return arguments[index + 1]
}

/// The integer after `--name`, or `fallback`.
public func option(_ name: String, _ fallback: Int) -> Int { option(name).flatMap { Int($0) } ?? fallback }

/// The median of repeated measurements.
public func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// The directory for memory-mode pools: /dev/shm (tmpfs) when there is one.
public let memoryDirectory = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()

/// A fresh directory of this process's own under ``memoryDirectory``.
public func scratchDirectory() -> String {
    let path = memoryDirectory + "/ferrite-bench-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// Keeps a value alive and opaque to the optimizer, so that the work producing it is not removed
/// or hoisted out of a timed loop.
@inline(never) @_optimize(none)
public func blackHole<T>(_ value: T) {}

/// Runs `body(0)`, ..., `body(count - 1)` on `count` threads of their own, all at the same time,
/// and returns once every one has returned.
///
/// Not `DispatchQueue.concurrentPerform`: that runs at most as many iterations at once as there
/// are processors, so "32 threads" on a 2-core machine would be two threads doing the work of 32,
/// one after the other, and nothing that waits (a group commit, a lock) would see 32 waiters.
public func runOnThreads(_ count: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        final class Start {
            let body: (Int) -> Void
            let index: Int
            init(_ body: @escaping (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
        }
        // Each thread releases its `Start` before it ends, and every thread is joined: nothing
        // holds `body` once this returns.
        let threads = (0..<count).map { index in
            var thread = pthread_t()
            let result = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
                start.body(start.index)
                return nil
            }, Unmanaged.passRetained(Start(body, index)).toOpaque())
            precondition(result == 0, "pthread_create failed: \(result)")
            return thread
        }
        for thread in threads { pthread_join(thread, nil) }
    }
}
