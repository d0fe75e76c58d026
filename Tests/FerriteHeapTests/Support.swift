import Foundation
@testable import FerriteHeap
import FerriteMedium
@_exported import FerriteTestSupport

struct TestError: Error {}


/// A temporary directory removed at the end of a test.
final class TemporaryDirectory {
    let path: String
    init() {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        path = base + "/ferrite-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Options for small pools that tests can copy and scan quickly.
func smallPoolOptions(maximumSize: Int = 1 << 20, chunkSize: Int = 16 << 10) -> HeapOptions {
    var options = HeapOptions()
    options.chunkSize = chunkSize
    options.initialSize = 4 * chunkSize
    options.maximumSize = maximumSize
    options.logSlotCount = 4
    options.logSlotSize = 16 << 10
    return options
}


/// Opens a pool image held in memory (throws the heap's typed error as `any Error`).
func openImage(_ image: [UInt8], medium: (any PersistenceMedium)? = nil,
               beforeRecovery: (UnsafeMutableRawPointer, Int) -> Void = { _, _ in }) throws -> Heap {
    try image.withUnsafeBytes { raw in
        Result { () throws(HeapError) in try Heap(image: raw, medium: medium, beforeRecovery: beforeRecovery) }
    }.get()
}

/// A fresh small pool in memory on a simulated medium that watches its durable view.
func makeSimulatedHeap() throws -> (Heap, SimulatedMedium) {
    var options = smallPoolOptions(maximumSize: 1 << 20)
    options.logSlotSize = 64 << 10
    let medium = SimulatedMedium()
    let heap = try openImage(Heap.makeImage(options: options), medium: medium)
    medium.watch(heap.mapping.durable, size: heap.layout.maximumSize.roundedUp(to: 64))
    return (heap, medium)
}
