import Foundation
import Synchronization
import Testing
import FerriteHeap
import FerriteCollections
import FerriteTestSupport

/// Readers run alongside a writer and never see a half-done or rolled-back change.
@Suite struct ConcurrencyTests {
    @Test func readersAlongsideAWriterSeeOnlyWholeTransactions() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("concurrent.pool"), options: smallPoolOptions(maximumSize: 256 << 20, chunkSize: 256 << 10))
        defer { heap.close() }
        let dictionary = try PersistentDictionary<Int, String>.make(in: heap)
        let map = try PersistentSortedMap<Int, Int>.make(in: heap)
        let done = Atomic<Bool>(false)
        let failures = Mutex<[String]>([])
        let reads = Atomic<Int>(0)
        @Sendable func fail(_ text: String) { failures.withLock { if $0.count < 5 { $0.append(text) } } }

        let writer = Thread {
            var rng = SeededGenerator(seed: 42)
            for generation in 1...6_000 {
                let key = Int.random(in: 0..<3_000, using: &rng)
                let pair = key * 2  // pairs (2k, 2k+1) always change together in the sorted map
                do {
                    try heap.transaction {
                        if Int.random(in: 0..<4, using: &rng) == 0 {
                            try dictionary.removeValue(forKey: key)
                            try map.removeValue(forKey: pair); try map.removeValue(forKey: pair + 1)
                        } else {
                            try dictionary.updateValue("v\(key)-\(generation)", forKey: key)
                            try map.updateValue(generation, forKey: pair); try map.updateValue(generation, forKey: pair + 1)
                        }
                        // Some transactions roll back: readers must never see their writes.
                        if generation % 10 == 0 {
                            try dictionary.updateValue("rolled back", forKey: key)
                            try map.updateValue(-1, forKey: pair)
                            throw CancellationError()
                        }
                    }
                } catch is CancellationError {
                } catch {
                    fail("writer: \(error)")
                }
            }
            done.store(true, ordering: .releasing)
        }
        writer.start()
        DispatchQueue.concurrentPerform(iterations: 2) { reader in
            var rng = SeededGenerator(seed: UInt64(reader))
            while !done.load(ordering: .acquiring) {
                let key = Int.random(in: 0..<3_000, using: &rng)
                if let value = dictionary[key], !value.hasPrefix("v\(key)-") { fail("dictionary[\(key)] = \(value)") }
                let entries = map.entries(from: Int.random(in: 0..<6_000, using: &rng), limit: 40)
                for (i, entry) in entries.enumerated() {
                    if entry.value < 0 { fail("a rolled-back value was read: \(entry)") }
                    if i > 0 && entries[i - 1].key >= entry.key { fail("scan out of order: \(entries.map(\.key))") }
                    if entry.key % 2 == 0, i + 1 < entries.count, entries[i + 1].key != entry.key + 1 || entries[i + 1].value != entry.value {
                        fail("half a transaction seen: \(entry) then \(entries[i + 1])")
                    }
                }
                reads.add(1, ordering: .relaxed)
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(reads.load(ordering: .relaxed) > 100)
        #expect(map.checkInvariants() == [])
    }
}
