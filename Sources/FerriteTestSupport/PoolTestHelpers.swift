import Foundation
import Synchronization
@_spi(Testing) import FerriteHeap
import FerriteMedium

/// A temporary directory (on /dev/shm when there is one, unless `onDisk`: storage mode is tested on
/// a real disk), removed when released.
public final class TemporaryDirectory {
    public let path: String
    public init(onDisk: Bool = false) {
        let base = !onDisk && FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        path = base + "/ferrite-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Options for small pools that tests can copy and scan quickly.
public func smallPoolOptions(maximumSize: Int = 1 << 20, chunkSize: Int = 16 << 10) -> HeapOptions {
    var options = HeapOptions()
    options.chunkSize = chunkSize
    options.initialSize = 4 * chunkSize
    options.maximumSize = maximumSize
    options.logSlotCount = 4
    options.logSlotSize = 16 << 10
    return options
}

/// Opens a pool image held in memory (throws the heap's typed error as `any Error`).
public func openImage(_ image: [UInt8], medium: (any PersistenceMedium)? = nil,
                      beforeRecovery: (UnsafeMutableRawPointer, Int) -> Void = { _, _ in }) throws -> Heap {
    try image.withUnsafeBytes { raw in
        Result { () throws(HeapError) in try Heap(image: raw, medium: medium, beforeRecovery: beforeRecovery) }
    }.get()
}

/// A fresh small pool in memory on a simulated medium that watches its durable view.
public func makeSimulatedHeap(maximumSize: Int = 1 << 20, logSlotSize: Int = 64 << 10) throws -> (Heap, SimulatedMedium) {
    var options = smallPoolOptions(maximumSize: maximumSize)
    options.logSlotSize = logSlotSize
    let medium = SimulatedMedium()
    let heap = try openImage(Heap.makeImage(options: options), medium: medium)
    let view = heap.durableView
    medium.watch(view.base, size: view.size)
    return (heap, medium)
}

/// Options for small storage-mode pools: a small log, so that checkpoints come often.
public func smallStorageOptions(maximumSize: Int = 1 << 20, logCapacity: Int = 64 << 10, sync: StorageSync = .full) -> HeapOptions {
    var options = smallPoolOptions(maximumSize: maximumSize)
    options.logSlotSize = 64 << 10
    options.durability = .storage
    options.logCapacity = logCapacity
    options.storageSync = sync
    return options
}

/// Opens (creating it when the disk holds none) the storage-mode pool of a simulated disk.
public func openStorage(on disk: SimulatedDisk, options: HeapOptions = smallStorageOptions()) throws -> Heap {
    try Result { () throws(HeapError) in try Heap(storagePool: disk.file("pool"), log: disk.file("pool-wal"), options: options) }.get()
}

/// Opens a crash image of a simulated disk (file name -> content).
public func openStorageImage(_ image: [String: [UInt8]], options: HeapOptions = smallStorageOptions()) throws -> Heap {
    try openStorage(on: SimulatedDisk(image: image), options: options)
}

/// Overwrites bytes of a file in place (tests damage pools and logs with it).
public func patchFile(_ path: String, at offset: Int, _ bytes: [UInt8]) throws {
    let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    try handle.seek(toOffset: UInt64(offset))
    try handle.write(contentsOf: Data(bytes))
    try handle.close()
}

/// Runs `body` while checking crash images at every fence of `medium`: power-loss images keeping
/// none, all, and two random subsets (seeded by `seed` and the fence's number) of the words not
/// yet persisted. `check` returns nil for a good image or a description of what is wrong.
/// Returns how many images were checked and the first failures.
public func checkCrashImagesAtEveryFence(of medium: SimulatedMedium, seed: UInt64, check: @escaping @Sendable ([UInt8]) -> String?,
                                         _ body: () throws -> Void) rethrows -> (images: Int, failures: [String]) {
    let outcome = Mutex((images: 0, failures: [String]()))
    let fences = Mutex(0)
    medium.onFence = { medium in
        let n = fences.withLock { $0 += 1; return $0 }
        var modes: [SimulatedMedium.Survivors] = [.none, .all]
        for r in 0..<2 { modes.append(.random(seed: seed &* 7_919 &+ UInt64(n) &* 31 &+ UInt64(r))) }
        for mode in modes {
            let failure = check(medium.crashImage(mode))
            outcome.withLock {
                $0.images += 1
                if let failure, $0.failures.count < 3 { $0.failures.append("fence \(n) \(mode): \(failure)") }
            }
        }
    }
    defer { medium.onFence = nil }
    try body()
    return outcome.withLock { $0 }
}
