import Foundation
import Testing
@testable import FerriteHeap

@Suite struct HeapBehaviourTests {
    @Test func objectsAndRootsSurviveCloseAndReopen() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("pool")
        do {
            let heap = try Heap(path: path, options: smallPoolOptions())
            try heap.transaction {
                let first = try heap.allocate(Cell.self)
                first.a = 1; first.b = 2; first.c = 3; first.d = 4
                let second = try heap.allocate(Cell.self)
                second.a = 10
                first.next = second
                try heap.setRoot("first", to: first)
            }
            heap.close()
        }
        let heap = try Heap(path: path)
        try heap.register(Cell.self)
        let first = try #require(try heap.root("first", as: Cell.self))
        #expect([first.a, first.b, first.c, first.d] as [Int] == [1, 2, 3, 4])
        #expect(first.next?.a == 10)
        #expect(heap.recovery.discardedTransactions == 0)
        let report = heap.verify()
        #expect(report.isValid, "\(report)")
        #expect(report.liveBlocks == 2 && report.reachableBlocks == 2)
    }

    @Test func thrownErrorRollsBackWritesAllocationsAndFrees() throws {
        let dir = TemporaryDirectory()
        let heap = try Heap(path: dir.file("pool"), options: smallPoolOptions())
        let table = try heap.transaction {
            let table = try heap.allocate(Table.self)
            try heap.setRoot("table", to: table)
            for slot in 0..<4 { let cell = try heap.allocate(Cell.self); cell.a = slot; table[slot] = cell }
            return table
        }
        let before = heap.verify()
        #expect(throws: TestError.self) {
            try heap.transaction {
                table.counter = 99
                table[0]!.a = 1000
                let victim = table[1]!
                table[1] = nil
                try heap.free(victim)
                let extra = try heap.allocate(Cell.self)
                table[5] = extra
                throw TestError()
            }
        }
        #expect(table.counter == 0)
        #expect(table[0]!.a == 0)
        #expect(table[1]!.a == 1)
        #expect(table[5] == nil)
        let after = heap.verify()
        #expect(after.isValid, "\(after)")
        #expect(after.liveBlocks == before.liveBlocks)
    }

    @Test func nestedTransactionsFlattenAndInnerErrorAbortsTheOutermost() throws {
        let dir = TemporaryDirectory()
        let heap = try Heap(path: dir.file("pool"), options: smallPoolOptions())
        let cell = try heap.transaction { let c = try heap.allocate(Cell.self); try heap.setRoot("c", to: c); return c }
        try heap.transaction {
            cell.a = 1
            try heap.transaction { cell.b = 2 }
            #expect(heap.inTransaction)
        }
        #expect(cell.a == 1 && cell.b == 2)
        #expect(throws: HeapError.transactionAborted) {
            try heap.transaction {
                cell.a = 5
                do { try heap.transaction { cell.b = 6; throw TestError() } } catch {}
                cell.c = 7
            }
        }
        #expect(cell.a == 1 && cell.b == 2 && cell.c == 0)
        #expect(heap.verify().isValid)
    }

    @Test func aClosedHeapRefusesTransactionsAndReleasesThePool() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("pool")
        let heap = try Heap(path: path, options: smallPoolOptions())
        try heap.transaction { try heap.setRoot("c", to: try heap.allocate(Cell.self)) }
        heap.close()
        #expect(throws: HeapError.closed) { try heap.transaction {} }
        // Also from a thread that never used the heap (it has no context, and gets none).
        var errors: [HeapError?] = [], inTransaction = true, ran = false, names = ["?"]
        onNewThread {
            do { try heap.transaction {}; errors.append(nil) } catch { errors.append(error as? HeapError) }
            do { _ = try heap.root("c", as: Cell.self); errors.append(nil) } catch { errors.append(error as? HeapError) }
            do { _ = try heap.rootReference("c"); errors.append(nil) } catch { errors.append(error as? HeapError) }
            do { _ = try heap.handle(at: 4096); errors.append(nil) } catch { errors.append(error as? HeapError) }
            do { try heap.register(Cell.self); errors.append(nil) } catch { errors.append(error as? HeapError) }
            names = heap.rootNames
            inTransaction = heap.inTransaction
            heap.afterCommit { ran = true }
        }
        #expect(errors == Array(repeating: .closed, count: 5))
        #expect(!inTransaction && ran && names.isEmpty)
        let again = try Heap(path: path)
        #expect(try again.rootReference("c") != nil)
    }

    @Test func writesOutsideTransactionsCommitOnTheirOwnAndAllocationNeedsOne() throws {
        let dir = TemporaryDirectory()
        let heap = try Heap(path: dir.file("pool"), options: smallPoolOptions())
        let cell = try heap.transaction { let c = try heap.allocate(Cell.self); try heap.setRoot("c", to: c); return c }
        cell.a = 42
        #expect(cell.a == 42)
        #expect(throws: HeapError.notInTransaction(operation: "allocate")) { _ = try heap.allocate(Cell.self) }
    }

    @Test func allocationAndFreeReuseBlocksAcrossSizeClassesAndHugeRuns() throws {
        let dir = TemporaryDirectory()
        var options = smallPoolOptions(maximumSize: 8 << 20)
        options.logSlotSize = 64 << 10
        let heap = try Heap(path: dir.file("pool"), options: options)
        let sizes = [1, 16, 17, 100, 300, 1000, 2000, 40_000, 100_000]
        var handles: [ObjectHandle] = []
        try heap.transaction {
            for size in sizes { handles.append(try heap.allocateBytes(size)) }
        }
        for (handle, size) in zip(handles, sizes) { #expect(handle.size == size) }
        #expect(Set(handles.map(\.reference)).count == sizes.count)
        let leaked = heap.verify()
        #expect(leaked.unreachableBlocks.count == sizes.count)
        try heap.transaction { for handle in handles { try heap.free(handle) } }
        let report = heap.verify()
        #expect(report.isValid && report.liveBlocks == 0, "\(report)")
        #expect(throws: HeapError.invalidFree(handles[0].reference)) { try heap.transaction { try heap.free(handles[0]) } }
        // Freed space is reused.
        let sizeBefore = heap.size.current
        let again = try heap.transaction { try heap.allocateBytes(100_000) }
        #expect(heap.size.current == sizeBefore)
        try heap.transaction { try heap.free(again) }
    }

    @Test func prefaultQueueExtendsItsRunSkipsMappedChunksAndFollowsLowerRequests() {
        var queue = PrefaultQueue()
        func add(_ chunks: Range<Int>) -> Bool { queue.add(chunks) }
        func take(_ count: Int) -> [Int?] { (0..<count).map { _ in queue.take() } }
        #expect(add(5..<9))
        #expect(take(2) == [5, 6])
        // Inside what is mapped or pending: nothing new.
        #expect(!add(5..<7))
        #expect(!add(6..<9))
        // Continuing the run extends it without mapping the chunks already done again.
        #expect(add(7..<11))
        #expect(take(5) == [7, 8, 9, 10, nil])
        #expect(add(11..<12))
        #expect(take(1) == [11])
        // Lower chunks (after a large free): the run starts again there.
        #expect(add(2..<4))
        #expect(take(3) == [2, 3, nil])
        #expect(add(5..<6))
        #expect(take(2) == [5, nil])
        #expect(!add(3..<3))
    }

    @Test func chunkPrefaultChangesNoByteAndStopsOnceOrTwice() throws {
        let chunk = 16 << 10, chunks = 8
        let region = mmap(nil, chunk * chunks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
        #expect(region != MAP_FAILED)
        defer { munmap(region, chunk * chunks) }
        for i in stride(from: 0, to: chunk * chunks, by: 4096) where i % (3 * 4096) == 0 {
            region.storeBytes(of: UInt64(i), toByteOffset: i, as: UInt64.self)
        }
        let prefault = ChunkPrefault(views: [region], heapOffset: 0, chunkSize: chunk)
        prefault.request(1..<5)
        prefault.request(0..<2)
        prefault.request(5..<8)
        for _ in 0..<1000 { sched_yield() }
        prefault.stop()
        prefault.stop()
        prefault.request(0..<8)
        for i in stride(from: 0, to: chunk * chunks, by: 8) {
            let expected: UInt64 = i % 4096 == 0 && i % (3 * 4096) == 0 ? UInt64(i) : 0
            if region.load(fromByteOffset: i, as: UInt64.self) != expected {
                Issue.record("byte \(i) changed")
                break
            }
        }
        // Never started: stop returns at once.
        ChunkPrefault(views: [region], heapOffset: 0, chunkSize: chunk).stop()
    }

    @Test func objectsInChunksMappedAheadKeepTheirValuesAfterLargeFreesAndReopen() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("pool")
        var options = smallPoolOptions(maximumSize: 8 << 20)
        options.logSlotSize = 64 << 10
        var values: [UInt64: Int] = [:]
        do {
            let heap = try Heap(path: path, options: options)
            let large = try heap.transaction { try (0..<4).map { _ in try heap.allocateBytes(60_000) } }
            try heap.transaction { for block in large { try heap.free(block) } }
            // Lower chunks are free again: the allocator goes back to them, then past them.
            var cells: [Cell] = []
            for batch in 0..<40 {
                try heap.transaction {
                    for i in 0..<50 {
                        let cell = try heap.allocate(Cell.self)
                        cell.a = batch * 1000 + i
                        cell.next = cells.last
                        cells.append(cell)
                    }
                }
            }
            try heap.transaction { try heap.setRoot("last", to: cells.last!) }
            for cell in cells { values[cell.reference] = cell.a }
            #expect(heap.size.current > 4 * (16 << 10))
            heap.close()
        }
        let heap = try Heap(path: path)
        try heap.register(Cell.self)
        var cell = try heap.root("last", as: Cell.self)
        var seen = 0
        while let current = cell {
            #expect(values[current.reference] == current.a)
            seen += 1
            cell = current.next
        }
        #expect(seen == 2000)
        let report = heap.verify()
        #expect(report.isValid, "\(report)")
    }

    @Test func warmUpMapsTheMetadataAndTheChunksInUseButNoFreeChunk() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("pool")
        let chunk = 16 << 10
        // Three huge blocks of three chunks each, then the middle one freed; the pool reopened
        // (the warm-up's ranges are taken at open).
        var heap = try Heap(path: path, options: smallPoolOptions(maximumSize: 8 << 20, chunkSize: chunk))
        let blocks = try heap.transaction { try (0..<3).map { _ in try heap.allocateBytes(2 * chunk + chunk / 2) } }
        try heap.transaction { try heap.free(blocks[1]) }
        heap.close()
        heap = try Heap(path: path)
        defer { heap.close() }
        let heapStart = heap.layout.heapOffset
        func chunkRange(_ chunks: Range<Int>) -> Range<Int> {
            heapStart + chunks.lowerBound * chunk..<heapStart + chunks.upperBound * chunk
        }
        for block in blocks { #expect((Int(block.reference) - heapStart) % chunk == 0) }
        func chunks(of block: ObjectHandle) -> Range<Int> {
            let first = (Int(block.reference) - heapStart) / chunk
            return chunkRange(first..<first + 3)
        }
        func covered(_ range: Range<Int>, by ranges: [Range<Int>]) -> Bool {
            ranges.contains { $0.lowerBound <= range.lowerBound && range.upperBound <= $0.upperBound }
        }
        let ranges = heap.dataRanges()
        #expect(covered(0..<heapStart, by: ranges))
        #expect(covered(chunks(of: blocks[0]), by: ranges))
        #expect(covered(chunks(of: blocks[2]), by: ranges))
        #expect(!ranges.contains { $0.overlaps(chunks(of: blocks[1])) })
        #expect(ranges.allSatisfy { $0.upperBound <= heap.size.current })
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound < $1.lowerBound })
    }

    @Test(arguments: [Durability.memory, .storage])
    func contextsOfExitedThreadsAreReusedAndOutliveTheirHeap(durability: Durability) throws {
        let dir = TemporaryDirectory()
        var options = smallPoolOptions(maximumSize: 4 << 20)
        options.durability = durability
        let heap = try Heap(path: dir.file("pool"), options: options)
        let cell = try heap.transaction { () -> Cell in
            let cell = try heap.allocate(Cell.self)
            try heap.setRoot("cell", to: cell)
            return cell
        }
        let lanesBefore = heap.domain.laneTotal
        let storage = heap.domain.medium as? StorageMedium
        #expect((storage != nil) == (durability == .storage))
        let contextsMade = heap.contextPool.valuesMade, statesMade = storage?.threadStates.valuesMade ?? 0
        // One thread after another, each one transaction and one allocation, then gone: the
        // next thread takes the exited one's context (and lane, and allocator cache).
        // Without reuse each thread's allocator cache would keep a chunk: the pool fills up.
        let threads = 300
        var failure: String?
        for i in 0..<threads where failure == nil {
            onNewThread {
                do {
                    try heap.transaction {
                        cell.a += 1
                        let other = try heap.allocate(Cell.self)
                        other.a = i
                        try heap.free(other)
                    }
                } catch {
                    failure = "thread \(i): \(error)"
                }
            }
        }
        #expect(failure == nil)
        #expect(cell.a == threads)
        #expect(heap.domain.laneTotal <= lanesBefore + 1)
        // Contexts, and in storage mode the medium's thread states: a few, not one per thread.
        #expect(heap.contextPool.valuesMade - contextsMade <= 2)
        #expect((storage?.threadStates.valuesMade ?? 0) - statesMade <= 2)
        #expect(heap.verify().isValid)

        // A thread that outlives the heap keeps its context until it exits; a heap opened next
        // may take the same key: the thread's stale context is recognised and replaced.
        let start = DispatchSemaphore(value: 0), closed = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let path = dir.file("pool")
        nonisolated(unsafe) var reopened: Int?
        nonisolated(unsafe) let shared = cell
        let lingering = Thread {
            try! heap.transaction { shared.a += 1 }
            start.signal()
            closed.wait()
            let again = try! Heap(path: path)
            try! again.register(Cell.self)
            reopened = try! again.transaction { () -> Int in
                let cell = try again.root("cell", as: Cell.self)!
                cell.a += 1
                return cell.a
            }
            again.close()
            done.signal()
        }
        lingering.start()
        start.wait()
        heap.close()
        closed.signal()
        done.wait()
        #expect(reopened == threads + 2)
    }

    @Test func aThreadsValueGoesToTheNextThreadAndAClosedOwnersValueIsReleased() throws {
        final class Value: PooledThreadValue {}
        let first = ThreadValuePool(), second = ThreadValuePool()
        let key = ThreadValueKeys.take()
        weak var exited: Value?, stale: Value?
        // A thread's value goes back to its pool when the thread exits, and to the next thread.
        var found: [Bool] = []
        onNewThread {
            let value = ThreadValueKeys.attach(key, from: first) { Value(pool: first) }
            exited = value
            found.append(ThreadValueKeys.value(key, of: first, as: Value.self) === value)
            found.append(ThreadValueKeys.value(key, of: second, as: Value.self) == nil)
        }
        #expect(exited != nil)
        onNewThread {
            found.append(ThreadValueKeys.value(key, of: first, as: Value.self) == nil)
            let value = ThreadValueKeys.attach(key, from: first) { Value(pool: first) }
            found.append(value === exited)
            // The owner closes while the thread lives; the key goes to another owner, whose
            // value replaces the closed owner's in this thread's slot (and frees it).
            first.close()
            stale = value
        }
        // Closed: the exiting thread's value was dropped, not kept.
        #expect(first.takeIdle() == nil)
        #expect(stale == nil)
        onNewThread {
            let old = ThreadValueKeys.attach(key, from: first) { Value(pool: first) }
            stale = old
            first.close()
            let new = ThreadValueKeys.attach(key, from: second) { Value(pool: second) }
            found.append(new !== old)
            found.append(ThreadValueKeys.value(key, of: second, as: Value.self) === new)
        }
        #expect(found == Array(repeating: true, count: 6))
        #expect(stale == nil)
        #expect(first.valuesMade == 2 && second.valuesMade == 1)
        ThreadValueKeys.giveBack(key)
    }

    @Test func aTransactionTooLargeForItsLogChangesNothingAndTheHeapGoesOn() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("pool")
        let words = 8192  // 64 KiB of fields: its redo log cannot fit a 16 KiB slot
        do {
            let heap = try Heap(path: path, options: smallPoolOptions(maximumSize: 4 << 20))
            let cell = try heap.transaction { () -> Cell in
                let cell = try heap.allocate(Cell.self)
                cell.a = 1
                try heap.setRoot("cell", to: cell)
                return cell
            }
            let blob = try heap.transaction { () -> ObjectHandle in
                let blob = try heap.allocateBytes(words * 8)  // new: copied at commit, not logged
                for i in 0..<words { blob[Int.self, at: i * 8] = i }
                cell.b = Int(blob.reference)
                return blob
            }
            #expect(throws: HeapError.transactionTooLarge(logBytes: 16 << 10)) {
                try heap.transaction {
                    cell.a = 2
                    for i in 0..<words { blob[Int.self, at: i * 8] = -i }
                }
            }
            #expect(cell.a == 1)
            #expect((0..<words).allSatisfy { blob[Int.self, at: $0 * 8] == $0 })
            try heap.transaction { cell.c = 3 }  // the slot the failed commit used is usable again
            #expect(heap.verify(checkReachability: false).isValid)
            heap.close()
        }
        // After reopening (recovery sees the abandoned slot header), nothing of it is there.
        let heap = try Heap(path: path)
        let cell = try #require(try heap.root("cell", as: Cell.self))
        #expect(cell.a == 1 && cell.c == 3)
        let blob = try heap.handle(at: UInt64(cell.b))
        #expect((0..<words).allSatisfy { blob[Int.self, at: $0 * 8] == $0 })
        #expect(heap.verify(checkReachability: false).isValid)
    }

    @Test func poolGrowsInPlaceUntilItsMaximumThenReportsFull() throws {
        let dir = TemporaryDirectory()
        let heap = try Heap(path: dir.file("pool"), options: smallPoolOptions(maximumSize: 2 << 20))
        let initial = heap.size.current
        let table = try heap.transaction { let t = try heap.allocate(Table.self); try heap.setRoot("t", to: t); return t }
        let firstAddress = table.handle.fields
        var count = 0
        let error = #expect(throws: HeapError.self) {
            while true {
                try heap.transaction { _ = try heap.allocateBytes(4000) }
                count += 1
            }
        }
        guard case .poolFull = error else { Issue.record("expected poolFull, got \(String(describing: error))"); return }
        #expect(heap.size.current > initial)
        #expect(table.handle.fields == firstAddress)
        #expect(count > 100)
        table.counter = 7  // the pool still works when full
        #expect(table.counter == 7)
        #expect(heap.verify(checkReachability: false).isValid)
    }

    @Test func unknownTypesAndWrongTypesAreClearErrors() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("pool")
        do {
            let heap = try Heap(path: path, options: smallPoolOptions())
            try heap.transaction { try heap.setRoot("s", to: try heap.allocate(Stranger.self)) }
        }
        let heap = try Heap(path: path)
        let reference = try #require(try heap.rootReference("s"))
        #expect(throws: HeapError.unregisteredType(id: Stranger.persistentTypeID, name: "FerriteTests.Stranger")) {
            _ = try heap.object(at: reference)
        }
        #expect(throws: HeapError.typeMismatch(reference: reference, expected: "FerriteTests.Cell", found: "FerriteTests.Stranger")) {
            _ = try heap.object(at: reference, as: Cell.self)
        }
        #expect(throws: HeapError.invalidReference(12345)) { _ = try heap.object(at: 12345) }
        try heap.register(Stranger.self)
        #expect(try heap.object(at: reference) is Stranger)
    }

    @Test func twoThreadsTransactOnDisjointDataAndLockingSerializesSharedData() throws {
        let dir = TemporaryDirectory()
        let heap = try Heap(path: dir.file("pool"), options: smallPoolOptions(maximumSize: 16 << 20))
        let shared = try heap.transaction { let c = try heap.allocate(Cell.self); try heap.setRoot("shared", to: c); return c.reference }
        let rounds = 2000
        DispatchQueue.concurrentPerform(iterations: 2) { thread in
            let table = try! heap.transaction { () -> Table in
                let t = try heap.allocate(Table.self)
                try heap.setRoot("t\(thread)", to: t)
                return t
            }
            let counter = try! heap.object(at: shared, as: Cell.self)
            for i in 0..<rounds {
                try! heap.transaction {
                    let slot = i % Table.slots
                    if let old = table[slot] { try heap.free(old) }
                    let cell = try heap.allocate(Cell.self)
                    cell.a = i
                    table[slot] = cell
                    table.counter += 1
                }
                try! heap.transaction(locking: [counter]) { counter.a += 1 }
            }
        }
        let counter = try heap.object(at: shared, as: Cell.self)
        #expect(counter.a == 2 * rounds)
        for thread in 0..<2 { #expect(try heap.root("t\(thread)", as: Table.self)?.counter == rounds) }
        let report = heap.verify()
        #expect(report.isValid, "\(report)")
        #expect(report.liveBlocks == 1 + 2 * (1 + Table.slots))
    }
}

/// Runs `body` on a new POSIX thread and returns once the thread has exited (its thread-local
/// destructors run).
func onNewThread(_ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let status = pthread_create(&thread, nil, { argument in
        let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    precondition(status == 0)
    pthread_join(thread, nil)
}
