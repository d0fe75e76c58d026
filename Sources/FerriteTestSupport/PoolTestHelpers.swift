import Foundation
@_spi(Testing) import FerriteHeap
import FerriteMedium

/// A temporary directory (on /dev/shm when there is one), removed when released.
public final class TemporaryDirectory {
    public let path: String
    public init() {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
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
