import Foundation
import Synchronization
import Testing
@testable import FerriteHeap
import FerriteMedium

/// Storage mode on real files (on the disk, not /dev/shm): the mode is recorded, commits survive
/// reopening, checkpoints bound the log, concurrent commits share syncs, and damaged or missing
/// logs are refused without a byte changed.
@Suite struct StorageModeTests {
    func storageOptions(logCapacity: Int = 256 << 10, sync: StorageSync = .full) -> HeapOptions {
        var options = smallPoolOptions(maximumSize: 16 << 20)
        options.logSlotSize = 64 << 10
        options.durability = .storage
        options.logCapacity = logCapacity
        options.storageSync = sync
        return options
    }

    /// A storage pool holding a root cell with `a == 42`.
    func makePool(_ dir: TemporaryDirectory) throws -> String {
        let path = dir.file("pool")
        let heap = try Heap(path: path, options: storageOptions())
        try heap.register(Cell.self)
        try heap.transaction {
            let cell = try heap.allocate(Cell.self)
            cell.a = 42
            try heap.setRoot("c", to: cell)
        }
        heap.close()
        return path
    }

    @Test func theDurabilityModeIsRecordedInThePoolAndKeptAcrossReopens() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = try makePool(dir)
        #expect(FileManager.default.fileExists(atPath: Heap.logPath(forPool: path)))
        // Options asking for memory mode do not change an existing storage pool.
        let heap = try Heap(path: path, options: smallPoolOptions())
        defer { heap.close() }
        #expect(heap.durability == .storage)
        try heap.register(Cell.self)
        #expect(try heap.root("c", as: Cell.self)?.a == 42)
        let memory = try Heap(path: dir.file("memory"), options: smallPoolOptions())
        #expect(memory.durability == .memory)
        memory.close()
        #expect(!FileManager.default.fileExists(atPath: Heap.logPath(forPool: dir.file("memory"))))
    }

    @Test func transactionsAndTheirRollbacksSurviveReopeningInBothSyncModes() throws {
        for sync in [StorageSync.full, .normal] {
            let dir = TemporaryDirectory(onDisk: true)
            let path = dir.file("pool")
            var model = TableModel()
            do {
                let heap = try Heap(path: path, options: storageOptions(sync: sync))
                model = try Workload.run(300, seed: 5, on: Workload.makeTable("t0", in: heap), heap: heap)
                heap.close()
            }
            let heap = try Heap(path: path)
            defer { heap.close() }
            try heap.register(Cell.self); try heap.register(Table.self)
            #expect(heap.recovery.replayedLogRecords == 0, "a clean close leaves nothing to replay")
            #expect(try TableModel(reading: try #require(try heap.root("t0", as: Table.self))) == model)
            #expect(heap.verify().isValid)
        }
    }

    @Test func checkpointsBoundTheLogWhileTransactionsRun() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = dir.file("pool")
        let heap = try Heap(path: path, options: storageOptions(logCapacity: 128 << 10))
        try heap.register(Cell.self)
        let cell = try heap.transaction { () -> Cell in
            let cell = try heap.allocate(Cell.self)
            try heap.setRoot("c", to: cell)
            return cell
        }
        let storage = try #require(heap.storage)
        var mostUsed = 0
        for i in 1...3_000 {
            try heap.transaction { cell.a = i; cell.b = -i }
            mostUsed = max(mostUsed, storage.log.used)
        }
        #expect(mostUsed <= storage.log.capacity)
        #expect(storage.checkpointCount > 3, "only \(storage.checkpointCount) checkpoints")
        let records = storage.log.statistics.records
        #expect(records >= 3_000)
        try heap.checkpoint()
        #expect(storage.log.used == 0)
        heap.close()
        let reopened = try Heap(path: path)
        defer { reopened.close() }
        try reopened.register(Cell.self)
        let found = try #require(try reopened.root("c", as: Cell.self))
        #expect(found.a == 3_000 && found.b == -3_000)
    }

    @Test func concurrentCommitsShareSyncsAndAllSurvive() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = dir.file("pool")
        var options = storageOptions(logCapacity: 4 << 20)
        options.logSlotCount = 64  // the default: threads never wait for a free redo log slot
        let heap = try Heap(path: path, options: options)
        try heap.register(Cell.self)
        let threads = 8, commits = 150
        let cells = try (0..<threads).map { index in
            try heap.transaction { () -> UInt64 in
                let cell = try heap.allocate(Cell.self)
                try heap.setRoot("c\(index)", to: cell)
                return cell.reference
            }
        }
        let storage = try #require(heap.storage)
        let before = storage.log.statistics
        // Threads of their own (concurrentPerform would run only as many as there are cores).
        let done = DispatchSemaphore(value: 0)
        for index in 0..<threads {
            Thread {
                let cell = try! heap.object(at: cells[index], as: Cell.self)
                for i in 1...commits { try! heap.transaction { cell.a = i; cell.b = index } }
                done.signal()
            }.start()
        }
        for _ in 0..<threads { done.wait() }
        let after = storage.log.statistics
        let syncs = after.syncs - before.syncs, records = after.records - before.records
        #expect(records >= threads * commits)
        // How much is shared depends on scheduling (other tests run alongside): some must be.
        #expect(syncs < threads * commits, "\(syncs) syncs for \(threads * commits) commits: no group commit")
        print("group commit: \(threads * commits) commits from \(threads) threads, \(records) log records, \(syncs) syncs")
        heap.close()
        let reopened = try Heap(path: path)
        defer { reopened.close() }
        try reopened.register(Cell.self)
        for index in 0..<threads {
            let cell = try #require(try reopened.root("c\(index)", as: Cell.self))
            #expect(cell.a == commits && cell.b == index)
        }
    }

    @Test func anObjectLargerThanALogRecordIsWrittenInSeveralRecordsAndSurvives() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = dir.file("pool")
        let heap = try Heap(path: path, options: storageOptions(logCapacity: 256 << 10))
        // 200 KB: larger than a record (a quarter of the log) and than the log's free half.
        let size = 200_000
        try heap.register(Table.self)
        try heap.transaction {
            let table = try heap.allocate(Table.self)
            let blob = try heap.allocateBytes(size)
            for i in stride(from: 0, to: size / 8 * 8, by: 8) { blob[Int.self, at: i] = i }
            table.blob = blob
            try heap.setRoot("t", to: table)
        }
        heap.close()
        let reopened = try Heap(path: path)
        defer { reopened.close() }
        try reopened.register(Table.self)
        let blob = try #require(try reopened.root("t", as: Table.self)?.blob)
        #expect(blob.size == size)
        #expect(stride(from: 0, to: size / 8 * 8, by: 8).allSatisfy { blob[Int.self, at: $0] == $0 })
        #expect(reopened.verify().isValid)
    }

    // MARK: Bad input

    /// Opens `path` expecting an error that `matches`, and checks that neither the pool nor its
    /// log changed.
    func expectRefusal(_ path: String, _ matches: (HeapError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let log = Heap.logPath(forPool: path)
        let before = (try Data(contentsOf: URL(fileURLWithPath: path)), try? Data(contentsOf: URL(fileURLWithPath: log)))
        do {
            let heap = try Heap(path: path)
            heap.close()
            Issue.record("opened a bad pool", sourceLocation: sourceLocation)
        } catch {
            #expect(matches(error), "unexpected error: \(error)", sourceLocation: sourceLocation)
        }
        let after = (try Data(contentsOf: URL(fileURLWithPath: path)), try? Data(contentsOf: URL(fileURLWithPath: log)))
        #expect(before.0 == after.0 && before.1 == after.1, "a failed open modified a file", sourceLocation: sourceLocation)
        // The refused pool is not left locked.
        #expect(flockable(path), sourceLocation: sourceLocation)
    }

    func flockable(_ path: String) -> Bool {
        let fd = open(path, O_RDWR)
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    @Test func aStoragePoolWithoutItsLogIsRefused() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = try makePool(dir)
        try FileManager.default.removeItem(atPath: Heap.logPath(forPool: path))
        try expectRefusal(path) { $0 == .missingLog(path: Heap.logPath(forPool: path)) }
    }

    @Test func anotherPoolsLogIsRefused() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = try makePool(dir)
        let other = TemporaryDirectory(onDisk: true)
        let otherPath = try makePool(other)
        try FileManager.default.removeItem(atPath: Heap.logPath(forPool: path))
        try FileManager.default.copyItem(atPath: Heap.logPath(forPool: otherPath), toPath: Heap.logPath(forPool: path))
        try expectRefusal(path) { if case .corruptLog(_, let reason) = $0 { reason.contains("belongs to pool") } else { false } }
    }

    @Test func aDamagedLogHeaderOrCheckpointRecordIsRefused() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = try makePool(dir)
        let log = Heap.logPath(forPool: path)
        let pristine = try Data(contentsOf: URL(fileURLWithPath: log))
        try patchFile(log, at: 40, [0xFF])  // inside the checksummed identity
        try expectRefusal(path) { if case .corruptLog = $0 { true } else { false } }
        try pristine.write(to: URL(fileURLWithPath: log))
        for offset in WriteAheadLog.checkpointOffsets { try patchFile(log, at: offset + 8, [0xFF]) }  // both checkpoint records
        try expectRefusal(path) { if case .corruptLog(_, let reason) = $0 { reason.contains("checkpoint") } else { false } }
        try Data().write(to: URL(fileURLWithPath: log))
        try expectRefusal(path) { if case .corruptLog = $0 { true } else { false } }
    }

    @Test func aPoolFileCutShorterThanItsLastCheckpointIsRefused() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = try makePool(dir)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        #expect(truncate(path, off_t(size - 16 << 10)) == 0)
        try expectRefusal(path) { if case .truncated = $0 { true } else { false } }
    }

    @Test func aStoragePoolOpenTwiceIsRefused() throws {
        let dir = TemporaryDirectory(onDisk: true)
        let path = try makePool(dir)
        let heap = try Heap(path: path)
        defer { heap.close() }
        #expect(throws: HeapError.poolLocked(path: path)) { _ = try Heap(path: path) }
    }

    @Test func invalidLogCapacitiesAreRefused() throws {
        let dir = TemporaryDirectory(onDisk: true)
        var options = storageOptions()
        options.logCapacity = 1000
        #expect(throws: HeapError.self) { _ = try Heap(path: dir.file("pool"), options: options) }
        #expect(!FileManager.default.fileExists(atPath: dir.file("pool")))
    }
}
