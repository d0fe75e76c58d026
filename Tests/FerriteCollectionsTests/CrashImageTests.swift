import Foundation
import Synchronization
import Testing
import FerriteHeap
import FerriteMedium
import FerriteCollections
import FerriteTestSupport

/// Simulated power failures (failure-models.md) during random collection operations: at every
/// fence, crash images (persisted state plus none, all or a random subset of the unpersisted
/// words) are recovered, and each collection must equal its model with exactly the committed
/// transactions applied, with a valid heap and nothing leaked.
@Suite struct CollectionCrashImageTests {
    struct Progress: Sendable {
        var committed = CollectionsModel()
        var pending: CollectionsModel?
        var images = 0
        var failures: [String] = []
    }

    static func check(_ image: [UInt8], _ progress: Progress) -> String? {
        do {
            let heap = try openImage(image)
            defer { heap.close() }
            try CollectionsModel.register(in: heap)
            var problems: [String] = []
            let found = try CollectionsModel.read(from: heap, problems: &problems)
            if !problems.isEmpty { return "inconsistent collections: \(problems.prefix(3))" }
            if found != progress.committed && found != progress.pending {
                return "recovered \(found); committed \(progress.committed); pending \(progress.pending.map(\.description) ?? "none")"
            }
            let report = heap.verify()
            return report.isValid ? nil : "verifier: \(report)"
        } catch {
            return "recovery failed: \(error)"
        }
    }

    @Test("crash images at every fence of random collection transactions recover to exactly the committed ones",
          arguments: [7, 8] as [UInt64])
    func collectionsRecoverFromEveryCrashImage(seed: UInt64) throws {
        let (heap, medium) = try makeSimulatedHeap(maximumSize: 4 << 20)
        defer { heap.close() }
        try CollectionsModel.create(in: heap)
        let collections = try CollectionsModel.Collections(heap)
        let progress = Mutex(Progress())
        let fences = Mutex(0)
        medium.onFence = { medium in
            let now = progress.withLock { $0 }
            let n = fences.withLock { $0 += 1; return $0 }
            var modes: [SimulatedMedium.Survivors] = [.none, .all]
            for r in 0..<2 { modes.append(.random(seed: seed &* 7_919 &+ UInt64(n) &* 31 &+ UInt64(r))) }
            for mode in modes {
                let failure = Self.check(medium.crashImage(mode), now)
                progress.withLock {
                    $0.images += 1
                    if let failure, $0.failures.count < 3 { $0.failures.append("fence \(n) \(mode): \(failure)") }
                }
            }
        }
        var workload = CollectionsWorkload(seed: seed)
        var model = CollectionsModel()
        var rng = SeededGenerator(seed: seed ^ 0xABCD)
        for _ in 0..<600 {
            var next = model
            let operations = Int.random(in: 1...3, using: &rng)
            let aborts = Int.random(in: 0..<8, using: &rng) == 0
            do {
                try heap.transaction {
                    for _ in 0..<operations { try workload.step(collections, &next) }
                    if aborts { throw CancellationError() }
                    let planned = next
                    progress.withLock { $0.pending = planned }
                }
                model = next
            } catch is CancellationError {}
            let committed = model
            progress.withLock { $0.committed = committed; $0.pending = nil }
        }
        medium.onFence = nil
        let outcome = progress.withLock { $0 }
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 2_500, "only \(outcome.images) crash images")
        var problems: [String] = []
        #expect(try CollectionsModel.read(from: heap, problems: &problems) == model)
        print("collection crash images checked (seed \(seed)): \(outcome.images)")
    }
}
