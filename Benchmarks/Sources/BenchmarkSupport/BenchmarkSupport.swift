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
