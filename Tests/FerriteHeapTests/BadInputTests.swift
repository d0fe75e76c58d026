import Foundation
import Testing
@testable import FerriteHeap

/// Files that are not healthy pools are refused with a typed error, and a refused open never
/// changes a byte of the file.
@Suite struct BadInputTests {
    /// Opens `path` expecting `expected`, and checks the file is byte-for-byte unchanged.
    func expectRefusal(_ path: String, _ matches: (HeapError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            let heap = try Heap(path: path)
            heap.close()
            Issue.record("opened a bad pool", sourceLocation: sourceLocation)
        } catch {
            #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
            #expect(!error.description.isEmpty)
        }
        let after = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(before == after, "a failed open modified the file", sourceLocation: sourceLocation)
    }

    func makePool(_ dir: TemporaryDirectory) throws -> String {
        let path = dir.file("pool")
        let heap = try Heap(path: path, options: smallPoolOptions())
        try heap.transaction { try heap.setRoot("c", to: try heap.allocate(Cell.self)) }
        heap.close()
        return path
    }

    @Test func aFileThatIsNotAPoolIsRefused() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("notes.txt")
        try Data("these are not the bytes you are looking for\n".utf8).write(to: URL(fileURLWithPath: path))
        try expectRefusal(path) { if case .notAPool = $0 { true } else { false } }
        let empty = dir.file("empty")
        #expect(FileManager.default.createFile(atPath: empty, contents: Data()))
        try expectRefusal(empty) { if case .notAPool = $0 { true } else { false } }
    }

    @Test func aTruncatedPoolIsRefused() throws {
        let dir = TemporaryDirectory()
        let path = try makePool(dir)
        truncate(path, 100_000)
        try expectRefusal(path) { if case .truncated = $0 { true } else { false } }
        truncate(path, 2000)
        try expectRefusal(path) { if case .truncated = $0 { true } else { false } }
    }

    @Test func aPoolFromANewerFormatIsRefused() throws {
        let dir = TemporaryDirectory()
        let path = try makePool(dir)
        try patchFile(path, at: PoolLayout.offVersion, [2, 0, 0, 0])
        try expectRefusal(path) { $0 == .unsupportedFormatVersion(path: path, found: 2, supported: 1) }
    }

    @Test func aCorruptHeaderIsRefused() throws {
        let dir = TemporaryDirectory()
        let path = try makePool(dir)
        try patchFile(path, at: PoolLayout.offChunkSize, [0x77])
        try expectRefusal(path) { if case .corruptHeader = $0 { true } else { false } }
    }

    @Test func aPoolOpenElsewhereIsRefused() throws {
        let dir = TemporaryDirectory()
        let path = try makePool(dir)
        let first = try Heap(path: path)
        try expectRefusal(path) { $0 == .poolLocked(path: path) }
        first.close()
        let again = try Heap(path: path)  // the lock is released on close
        again.close()
    }

    @Test func aMissingPoolIsNotCreatedWhenCreationIsOff() throws {
        let dir = TemporaryDirectory()
        var options = HeapOptions()
        options.createIfMissing = false
        #expect(throws: HeapError.self) { _ = try Heap(path: dir.file("absent"), options: options) }
        #expect(!FileManager.default.fileExists(atPath: dir.file("absent")))
    }

    @Test func invalidOptionsAreRefusedBeforeAnythingIsWritten() throws {
        let dir = TemporaryDirectory()
        var options = HeapOptions()
        options.chunkSize = 1000
        #expect(throws: HeapError.self) { _ = try Heap(path: dir.file("p"), options: options) }
        #expect(!FileManager.default.fileExists(atPath: dir.file("p")))
    }

    @Test func rootNamesAreChecked() throws {
        let dir = TemporaryDirectory()
        let heap = try Heap(path: dir.file("p"), options: smallPoolOptions())
        #expect(throws: HeapError.invalidRootName("")) { try heap.setRoot("", to: nil) }
        let long = String(repeating: "x", count: 56)
        #expect(throws: HeapError.invalidRootName(long)) { _ = try heap.rootReference(long) }
    }
}
