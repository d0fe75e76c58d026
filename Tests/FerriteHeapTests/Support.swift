import Foundation
@testable import FerriteHeap
import FerriteMedium

/// A small test object: four integers and a reference.
final class Cell: PersistentObject {
    static let persistentTypeName = "FerriteTests.Cell"
    static let persistentSize = 40
    static let persistentReferenceOffsets = [32]
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }

    var a: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    var b: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
    var c: Int { get { handle[Int.self, at: 16] } set { handle[Int.self, at: 16] = newValue } }
    var d: Int { get { handle[Int.self, at: 24] } set { handle[Int.self, at: 24] = newValue } }
    var next: Cell? {
        get { try! handle.object(at: 32, as: Cell.self) }
        set { handle.setObject(newValue, at: 32) }
    }
}

/// A table of references: a counter, `slots` cell references, then a reference to a byte blob.
final class Table: PersistentObject {
    static let persistentTypeName = "FerriteTests.Table"
    static let slots = 16
    static let blobOffset = 8 + 8 * slots
    static let persistentSize = blobOffset + 8
    static let persistentReferenceOffsets = (0...slots).map { 8 + 8 * $0 }
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }

    var counter: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    var blob: ObjectHandle? {
        get {
            let reference = handle[UInt64.self, at: Self.blobOffset]
            return reference == 0 ? nil : try! handle.heap.handle(at: reference)
        }
        set { handle[UInt64.self, at: Self.blobOffset] = newValue?.reference ?? 0 }
    }
    subscript(slot: Int) -> Cell? {
        get { try! handle.object(at: 8 + 8 * slot, as: Cell.self) }
        set { handle.setObject(newValue, at: 8 + 8 * slot) }
    }
}

/// An unregistered type, to check the errors for unknown types.
final class Stranger: PersistentObject {
    static let persistentTypeName = "FerriteTests.Stranger"
    static let persistentSize = 8
    let handle: ObjectHandle
    init(handle: ObjectHandle) { self.handle = handle }
}

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

/// A deterministic random generator (SplitMix64).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
