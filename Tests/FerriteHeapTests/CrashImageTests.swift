import Foundation
import Synchronization
import Testing
@testable import FerriteHeap
import FerriteMedium

/// Simulated power failures (failure-models.md): at every fence of randomized transactions, crash
/// images are computed (the persisted image plus none, all, or a random subset of the words that
/// may or may not have reached the medium), recovered, and checked against the model.
@Suite struct CrashImageTests {
    /// What each worker thread has committed, shared with the fence hook.
    final class Progress: @unchecked Sendable {
        struct Thread { var committed: [TableModel] = [TableModel()]; var pending: TableModel? }
        let lock = Mutex<[Thread]>([])
        init(threads: Int) { lock.withLock { $0 = Array(repeating: Thread(), count: threads) } }
    }

    struct Outcome: Sendable {
        var images = 0
        var failures: [String] = []
        /// Transaction contexts the heap made (threads that exited hand theirs on).
        var contextsMade = 0
    }

    /// Opens a crash image, recovers it and checks it against what each thread committed.
    static func check(image: [UInt8], threads: [Progress.Thread]) -> String? {
        check(threads: threads) { try openImage(image) }
    }

    /// Recovers the heap `open` returns and checks it against what each thread committed: the
    /// last committed state or the pending one, or with `anyPrefix`, any committed state.
    static func check(threads: [Progress.Thread], anyPrefix: Bool = false, open: () throws -> Heap) -> String? {
        do {
            let heap = try open()
            defer { heap.close() }
            try heap.register(Cell.self)
            try heap.register(Table.self)
            var counters = 0
            for (index, thread) in threads.enumerated() {
                guard let table = try heap.root("t\(index)", as: Table.self) else { return "thread \(index): root lost" }
                let found = try TableModel(reading: table)
                counters += found.counter
                let committed = thread.committed.last!
                if found == committed { continue }
                if let pending = thread.pending, found == pending { continue }
                if anyPrefix && thread.committed.contains(found) { continue }
                return "thread \(index): recovered \(found), committed \(committed), pending \(String(describing: thread.pending))"
            }
            if threads.count > 1, let shared = try heap.root("shared", as: Cell.self), shared.a != counters {
                return "shared counter \(shared.a) but the threads committed \(counters) transactions"
            }
            let report = heap.verify()
            if !report.isValid { return "verifier: \(report)" }
            return nil
        } catch {
            return "recovery failed: \(error)"
        }
    }

    /// Runs `transactions` randomized transactions on each of `threads` threads against an
    /// in-memory pool on a simulated medium, checking crash images at every fence.
    static func run(seed: UInt64, threads: Int, transactions: Int, randomImagesPerFence: Int, processCrashes: Bool = false,
                    threadPerTransaction: Bool = false) throws -> Outcome {
        let (heap, medium) = try makeSimulatedHeap()
        defer { heap.close() }
        let workers = try Workers(heap: heap, threads: threads)
        let progress = workers.progress
        let outcome = Mutex(Outcome())
        let fenceIndex = Mutex(0)
        medium.onFence = { medium in
            let threadsNow = progress.lock.withLock { $0 }
            let n = fenceIndex.withLock { $0 += 1; return $0 }
            var modes: [SimulatedMedium.Survivors] = [.none, .all]
            for r in 0..<randomImagesPerFence { modes.append(.random(seed: seed &* 1_000_003 &+ UInt64(n) &* 31 &+ UInt64(r))) }
            for mode in modes {
                let failure = check(image: medium.crashImage(mode), threads: threadsNow)
                outcome.withLock {
                    $0.images += 1
                    if let failure, $0.failures.count < 5 { $0.failures.append("fence \(n) \(mode): \(failure)") }
                }
            }
        }
        if processCrashes {
            // Process crashes: every store so far survives, cut at every flush.
            medium.onFlush = { medium in
                let threadsNow = progress.lock.withLock { $0 }
                let failure = check(image: medium.crashImage(.all), threads: threadsNow)
                outcome.withLock {
                    $0.images += 1
                    if let failure, $0.failures.count < 5 { $0.failures.append("flush (process crash): \(failure)") }
                }
            }
        }
        let diverged = workers.run(seed: seed, transactions: transactions, threadPerTransaction: threadPerTransaction) { rng in
            // Sometimes pause after a commit without fencing again, so that the other thread
            // changes what this one committed while this one's slot is not yet durably idle.
            if threads > 1 && Int.random(in: 0..<3, using: &rng) == 0 { usleep(500) }
        }
        medium.onFence = nil
        medium.onFlush = nil
        let contextsMade = heap.contextPool.valuesMade
        return outcome.withLock { $0.failures += diverged; $0.contextsMade = contextsMade; return $0 }
    }

    /// Threads running randomized transactions, each on a table of its own (root `t<index>`), all
    /// incrementing a shared cell (root `shared`) under its lock, and recording in ``Progress``
    /// what they committed.
    struct Workers {
        let heap: Heap
        let tables: [UInt64]
        let shared: UInt64
        let progress: Progress

        init(heap: Heap, threads: Int) throws {
            self.heap = heap
            tables = try (0..<threads).map { try Workload.makeTable("t\($0)", in: heap).reference }
            shared = try heap.transaction { () -> Cell in
                let cell = try heap.allocate(Cell.self)
                try heap.setRoot("shared", to: cell)
                return cell
            }.reference
            progress = Progress(threads: threads)
        }

        /// Runs `transactions` on each thread, calling `afterEach` after each one; returns the
        /// threads whose live state ended up different from what they committed. With
        /// `deferred`, transactions commit without waiting for the disk
        /// (``Heap/deferringDurability(_:)``) and count as acknowledged once
        /// ``Heap/waitUntilDurable(_:)`` returns for the commit point taken after them: a server's
        /// early lock release. With `threadPerTransaction`, each transaction runs on a thread of
        /// its own that exits after it: the next one takes over the exited thread's context (its
        /// lane, with its applied commits not yet written back, and its allocator cache).
        func run(seed: UInt64, transactions: Int, deferred: Bool = false, threadPerTransaction: Bool = false,
                 afterEach: @escaping @Sendable (inout SeededGenerator) -> Void) -> [String] {
            let threads = tables.count
            DispatchQueue.concurrentPerform(iterations: threads) { index in
                let table = try! heap.object(at: tables[index], as: Table.self)
                let sharedCell = threads > 1 ? try! heap.object(at: shared, as: Cell.self) : nil
                var rng = SeededGenerator(seed: seed &+ UInt64(index) &* 7919)
                var model = TableModel()
                for _ in 0..<transactions {
                    let planned = Workload.plan(from: model, rng: &rng)
                    progress.lock.withLock { $0[index].pending = planned.aborts ? nil : planned.result }
                    var committed = false
                    let transact = {
                        if deferred {
                            committed = try! heap.deferringDurability { try Workload.run(planned, on: table, heap: heap, shared: sharedCell) }
                            heap.waitUntilDurable(heap.commitPoint)
                        } else {
                            committed = try! Workload.run(planned, on: table, heap: heap, shared: sharedCell)
                        }
                    }
                    if threadPerTransaction { onNewThread(transact) } else { transact() }
                    precondition(committed == !planned.aborts)
                    model = planned.result
                    progress.lock.withLock {
                        if committed { $0[index].committed.append(model) }
                        $0[index].pending = nil
                    }
                    afterEach(&rng)
                }
            }
            return tables.indices.compactMap { index in
                let final = try? TableModel(reading: heap.object(at: tables[index], as: Table.self))
                return final == progress.lock.withLock({ $0[index].committed.last! }) ? nil : "thread \(index): live state diverged from the model"
            }
        }
    }

    @Test("crash images at every fence (power loss) and flush (process crash) recover to exactly the committed transactions",
          arguments: [11, 22, 33, 44] as [UInt64])
    func singleThreadCrashImages(seed: UInt64) throws {
        let outcome = try Self.run(seed: seed, threads: 1, transactions: 450, randomImagesPerFence: 3, processCrashes: true)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 2_500, "only \(outcome.images) crash images")
        print("crash images checked (seed \(seed), one thread): \(outcome.images)")
    }

    /// Recovers `image` on a simulated medium, and checks that a crash at any fence of that
    /// recovery recovers again to the same state. Returns the number of images checked.
    static func checkRecoveryCrashes(image: [UInt8]) -> (Int, String?) {
        do {
            let medium = SimulatedMedium()
            let images = Mutex<[[UInt8]]>([])
            medium.onFence = { medium in
                images.withLock { $0.append(medium.crashImage(.random(seed: UInt64($0.count)))); $0.append(medium.crashImage(.none)) }
            }
            let recovered = try openImage(image, medium: medium, beforeRecovery: { medium.watch($0, size: $1) })
            recovered.close()
            return try recoverEach(images.withLock { $0 }, like: openImage(image), open: { try openImage($0) })
        } catch {
            return (0, "\(error)")
        }
    }

    /// Recovers each of `images` and checks that table `t0` reads as in `reference` (which it
    /// closes) and the verifier passes. Returns the images checked and the first failure.
    static func recoverEach<Image>(_ images: [Image], like reference: Heap, open: (Image) throws -> Heap) throws -> (Int, String?) {
        func state(_ heap: Heap) throws -> TableModel? {
            try heap.register(Table.self); try heap.register(Cell.self)
            return try heap.root("t0", as: Table.self).map { try TableModel(reading: $0) }
        }
        let expected = try state(reference)
        reference.close()
        for image in images {
            let heap = try open(image)
            defer { heap.close() }
            let found = try state(heap)
            if found != expected { return (images.count, "recovery crash: found \(String(describing: found)), expected \(String(describing: expected))") }
            let report = heap.verify()
            if !report.isValid { return (images.count, "recovery crash: \(report)") }
        }
        return (images.count, nil)
    }

    @Test func aCrashDuringRecoveryRecoversAgainToTheSameState() throws {
        let (heap, medium) = try makeSimulatedHeap()
        defer { heap.close() }
        let table = try Workload.makeTable("t0", in: heap)
        let fence = Mutex(0)
        let outcome = Mutex((images: 0, failures: [String]()))
        medium.onFence = { medium in
            // Every other fence: an image, whose recovery is crashed in turn.
            guard fence.withLock({ $0 += 1; return $0 }) % 2 == 0 else { return }
            let (count, failure) = Self.checkRecoveryCrashes(image: medium.crashImage(.all))
            outcome.withLock { $0.images += count; if let failure, $0.failures.count < 3 { $0.failures.append(failure) } }
        }
        try Workload.run(200, seed: 99, on: table, heap: heap)
        medium.onFence = nil
        let result = outcome.withLock { $0 }
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.images >= 200)
        print("crash images taken during recovery: \(result.images)")
    }

    @Test("crash images taken while every transaction runs on a thread that then exits (its context passes to the next thread) recover every committed transaction",
          arguments: [5, 6] as [UInt64])
    func threadPerTransactionCrashImages(seed: UInt64) throws {
        let outcome = try Self.run(seed: seed, threads: 2, transactions: 120, randomImagesPerFence: 2, threadPerTransaction: true)
        print("crash images checked (seed \(seed), a thread per transaction): \(outcome.images)")
        #expect(outcome.images > 500)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        // 240 transactions on 240 threads, at most two at once; plus the thread that set up and
        // the two worker threads (they look the tables up): at most 5 contexts, not 240.
        #expect(outcome.contextsMade <= 5)
    }

    @Test("crash images taken while two threads transact recover every thread's committed state",
          arguments: [5, 6] as [UInt64])
    func twoThreadCrashImages(seed: UInt64) throws {
        let outcome = try Self.run(seed: seed, threads: 2, transactions: 200, randomImagesPerFence: 2)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 1_000, "only \(outcome.images) crash images")
        print("crash images checked (seed \(seed), two threads): \(outcome.images)")
    }
}
