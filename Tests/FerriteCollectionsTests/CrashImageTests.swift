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
        var workload = CollectionsWorkload(seed: seed)
        var model = CollectionsModel()
        var rng = SeededGenerator(seed: seed ^ 0xABCD)
        let outcome = try checkCrashImagesAtEveryFence(of: medium, seed: seed, check: { image in Self.check(image, progress.withLock { $0 }) }) {
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
        }
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 2_500, "only \(outcome.images) crash images")
        var problems: [String] = []
        #expect(try CollectionsModel.read(from: heap, problems: &problems) == model)
        print("collection crash images checked (seed \(seed)): \(outcome.images)")
    }
}
