import Foundation
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
