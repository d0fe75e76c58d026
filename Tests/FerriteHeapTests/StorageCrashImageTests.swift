import Foundation
import Synchronization
import Testing
@testable import FerriteHeap
import FerriteMedium

/// Simulated power failures in storage mode (failure-models.md): at every sync of the log or the
/// pool file, crash images keep what was synced and, for every sector written since, the old or
/// the new content; growth never synced may vanish. Each image is recovered and checked against
/// the model of the committed transactions.
@Suite struct StorageCrashImageTests {
    typealias Progress = CrashImageTests.Progress
    typealias Outcome = CrashImageTests.Outcome

    /// Runs randomized transactions on `threads` threads against a storage-mode pool on a
    /// simulated disk, checking crash images at every sync.
    static func run(seed: UInt64, threads: Int, transactions: Int, randomImagesPerSync: Int,
                    sync: StorageSync = .full, logCapacity: Int = 64 << 10, deferred: Bool = false) throws -> Outcome {
        let options = smallStorageOptions(logCapacity: logCapacity, sync: sync)
        let disk = SimulatedDisk()
        let heap = try openStorage(on: disk, options: options)
        defer { heap.close() }
        let workers = try CrashImageTests.Workers(heap: heap, threads: threads)
        try heap.checkpoint()  // the setup is durable (with the weaker sync option too)
        let progress = workers.progress
        let outcome = Mutex(Outcome())
        let syncIndex = Mutex(0)
        disk.onSync = { disk, file in
            let n = syncIndex.withLock { $0 += 1; return $0 }
            // Images first, then what the threads had committed: a commit acknowledged meanwhile
            // must be in the image (its sync is this one, or an earlier one).
            var images = [disk.crashImage(.none)]
            for r in 0..<randomImagesPerSync { images.append(disk.crashImage(.random(seed: seed &* 1_000_003 &+ UInt64(n) &* 31 &+ UInt64(r)))) }
            let threadsNow = progress.lock.withLock { $0 }
            for (index, image) in images.enumerated() {
                let failure = CrashImageTests.check(threads: threadsNow, anyPrefix: sync == .normal) {
                    try openStorageImage(image, options: options)
                }
                outcome.withLock {
                    $0.images += 1
                    if let failure, $0.failures.count < 5 { $0.failures.append("sync \(n) of \(file), image \(index): \(failure)") }
                }
            }
        }
        let diverged = workers.run(seed: seed, transactions: transactions, deferred: deferred) { rng in
            // Explicit checkpoints now and then, besides those the full log triggers.
            if Int.random(in: 0..<40, using: &rng) == 0 { try! heap.checkpoint() }
        }
        disk.onSync = nil
        return outcome.withLock { $0.failures += diverged; return $0 }
    }

    @Test("storage crash images at every sync recover every acknowledged commit and nothing uncommitted",
          arguments: [101, 202] as [UInt64])
    func singleThreadStorageCrashImages(seed: UInt64) throws {
        let outcome = try Self.run(seed: seed, threads: 1, transactions: 400, randomImagesPerSync: 3)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 1_500, "only \(outcome.images) crash images")
        print("storage crash images checked (seed \(seed), one thread): \(outcome.images)")
    }

    @Test("storage crash images taken while two threads commit (group commit) recover each thread's commits")
    func twoThreadStorageCrashImages() throws {
        let outcome = try Self.run(seed: 303, threads: 2, transactions: 250, randomImagesPerSync: 3)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 1_000, "only \(outcome.images) crash images")
        print("storage crash images checked (two threads): \(outcome.images)")
    }

    /// Early lock release: commits that return before their sync, acknowledged only once
    /// `waitUntilDurable` returns. A crash image at any sync holds every acknowledged commit and
    /// nothing that was not committed.
    @Test("storage crash images with deferred durability recover every acknowledged commit")
    func deferredDurabilityStorageCrashImages() throws {
        let outcome = try Self.run(seed: 404, threads: 2, transactions: 250, randomImagesPerSync: 3, deferred: true)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 1_000, "only \(outcome.images) crash images")
        print("storage crash images checked (two threads, deferred durability): \(outcome.images)")
    }

    /// A longer soak, run by hand: `FERRITE_SOAK=20 swift test --filter storageCrashImageSoak`
    /// runs 20 more seeds of each kind (one thread, two threads, weaker sync, deferred durability).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["FERRITE_SOAK"] != nil))
    func storageCrashImageSoak() throws {
        let seeds = Int(ProcessInfo.processInfo.environment["FERRITE_SOAK"] ?? "") ?? 10
        var images = 0
        for seed in 1...UInt64(seeds) {
            for (threads, sync, deferred) in [(1, StorageSync.full, false), (2, .full, false), (2, .normal, false), (2, .full, true)] {
                let outcome = try Self.run(seed: 10_000 + seed, threads: threads, transactions: 250, randomImagesPerSync: 2, sync: sync, deferred: deferred)
                #expect(outcome.failures.isEmpty, "seed \(seed), \(threads) threads, \(sync), deferred \(deferred): \(outcome.failures)")
                images += outcome.images
            }
        }
        print("storage crash images checked (soak, \(seeds) seeds x 4 kinds): \(images)")
    }

    @Test("with the weaker sync option, a power failure keeps a prefix of each thread's commits, never part of one")
    func weakerSyncModeCrashImagesKeepAPrefixOfTheCommits() throws {
        let outcome = try Self.run(seed: 404, threads: 2, transactions: 150, randomImagesPerSync: 2, sync: .normal)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 100, "only \(outcome.images) crash images")
        print("storage crash images checked (sync normal): \(outcome.images)")
    }

    /// Recovers `image`, taking crash images at every sync of that recovery, and checks that each
    /// recovers to the same state as the undisturbed recovery. Returns the images checked.
    static func checkRecoveryCrashes(image: [String: [UInt8]]) -> (Int, String?) {
        do {
            let disk = SimulatedDisk(image: image)
            let images = Mutex<[[String: [UInt8]]]>([])
            disk.onSync = { disk, _ in
                images.withLock { $0.append(disk.crashImage(.random(seed: UInt64($0.count)))); $0.append(disk.crashImage(.none)) }
            }
            let recovered = try openStorage(on: disk)
            disk.onSync = nil
            recovered.close()
            return try CrashImageTests.recoverEach(images.withLock { $0 }, like: openStorageImage(image), open: { try openStorageImage($0) })
        } catch {
            return (0, "\(error)")
        }
    }

    @Test func aCrashDuringStorageRecoveryRecoversAgainToTheSameState() throws {
        let disk = SimulatedDisk()
        let heap = try openStorage(on: disk)
        defer { heap.close() }
        let table = try Workload.makeTable("t0", in: heap)
        let syncs = Mutex(0)
        let outcome = Mutex((images: 0, failures: [String]()))
        disk.onSync = { disk, _ in
            // Every fifth sync: a crash image (everything written so far), whose recovery is crashed in turn.
            guard syncs.withLock({ $0 += 1; return $0 }) % 5 == 0 else { return }
            let (count, failure) = Self.checkRecoveryCrashes(image: disk.crashImage(.all))
            outcome.withLock { $0.images += count; if let failure, $0.failures.count < 3 { $0.failures.append(failure) } }
        }
        try Workload.run(120, seed: 77, on: table, heap: heap)
        disk.onSync = nil
        let result = outcome.withLock { $0 }
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.images >= 100)
        print("storage crash images taken during recovery: \(result.images)")
    }
}

/// Storage mode when the disk fails: a failed checkpoint loses nothing (its pages are written by
/// the next one), and an unreadable log stops the open before anything is written.
@Suite struct StorageFailureTests {
    @Test(arguments: ["write", "sync"])
    func aFailedCheckpointLosesNothingAndTheNextOneWritesItsPages(operation: String) throws {
        let disk = SimulatedDisk()
        let heap = try openStorage(on: disk)
        try heap.register(Cell.self)
        let cell = try heap.transaction { () -> Cell in
            let cell = try heap.allocate(Cell.self)
            try heap.setRoot("c", to: cell)
            return cell
        }
        for i in 1...50 { try heap.transaction { cell.a = i } }
        let failing = Mutex(true)
        disk.failure = { op, file in op == operation && file == "pool" && failing.withLock { $0 } ? EIO : nil }
        #expect(throws: HeapError.self) { try heap.checkpoint() }
        disk.failure = nil
        for i in 51...60 { try heap.transaction { cell.b = i } }
        try heap.checkpoint()
        for i in 61...70 { try heap.transaction { cell.c = i } }
        // A power failure now: only what was synced counts.
        let image = disk.crashImage(.none)
        heap.close()
        let recovered = try openStorageImage(image)
        defer { recovered.close() }
        try recovered.register(Cell.self)
        let found = try #require(try recovered.root("c", as: Cell.self))
        #expect(found.a == 50 && found.b == 60 && found.c == 70)
        #expect(recovered.verify().isValid)
    }

    @Test func anUnreadableLogStopsTheOpenBeforeAnythingIsWritten() throws {
        let disk = SimulatedDisk()
        do {
            let heap = try openStorage(on: disk)
            try heap.register(Cell.self)
            try heap.transaction { try heap.setRoot("c", to: try heap.allocate(Cell.self)) }
            // Left unclosed: its records are only in the log.
            let image = disk.crashImage(.all)
            heap.close()
            let failing = SimulatedDisk(image: image)
            let reads = Mutex(0)  // the header reads fine; the records do not
            failing.failure = { op, file in op == "read" && file == "pool-wal" && reads.withLock { $0 += 1; return $0 } > 1 ? EIO : nil }
            #expect(throws: HeapError.self) { _ = try openStorage(on: failing) }
            #expect(failing.contents == image, "a failed open wrote to the disk")
        }
    }
}
