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

