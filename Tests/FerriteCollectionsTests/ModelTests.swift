import Testing
import FerriteHeap
@_spi(Testing) import FerriteCollections
import FerriteTestSupport

/// Random operation sequences applied to each persistent collection and to its standard-library
/// counterpart agree, before and after closing and reopening the pool.
@Suite struct ModelTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func collectionsAgreeWithTheirStandardLibraryModelsAcrossReopens(seed: UInt64) throws {
        let directory = TemporaryDirectory()
        let path = directory.file("model.pool")
        var options = smallPoolOptions(maximumSize: 64 << 20, chunkSize: 64 << 10)
        options.logSlotSize = 64 << 10
        var heap = try Heap(path: path, options: options)
        try CollectionsModel.create(in: heap)
        var workload = CollectionsWorkload(seed: seed)
        var model = CollectionsModel()
        for round in 0..<6 {
            let collections = try CollectionsModel.Collections(heap)
            for _ in 0..<700 { try workload.step(collections, &model) }
            // A multi-operation transaction that commits, and one that aborts.
            var next = model
            try heap.transaction { for _ in 0..<5 { try workload.step(collections, &next) } }
            model = next
            var discarded = model
            _ = try? heap.transaction { () throws -> Void in
                for _ in 0..<5 { try workload.step(collections, &discarded) }
                throw CancellationError()
            }
            var problems: [String] = []
            #expect(try CollectionsModel.read(from: heap, problems: &problems) == model, "round \(round) before reopening")
            #expect(problems.isEmpty, "\(problems)")
            heap.close()
            heap = try Heap(path: path, options: options)
            try CollectionsModel.register(in: heap)
            #expect(try CollectionsModel.read(from: heap, problems: &problems) == model, "round \(round) after reopening")
            #expect(problems.isEmpty, "\(problems)")
            let report = heap.verify()
            #expect(report.isValid, "\(report)")
        }
        // The workload reaches sizes that make tables grow and trees split.
        let sizes = model.description
        #expect(model.ints.count > 100 && model.tree.count > 200 && model.names.count > 100 && model.words.count > 100 && model.array.count > 20, "\(sizes)")
        heap.close()
    }

    @Test func sortedMapScansBothWaysAndFindsBounds() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("scan.pool"), options: smallPoolOptions(maximumSize: 16 << 20))
        defer { heap.close() }
        let map = try PersistentSortedMap<Int, Int>.make(in: heap)
        let keys = Array(stride(from: 0, to: 3000, by: 3)).shuffled()
        try heap.transaction { for key in keys { try map.updateValue(key * 10, forKey: key) } }
        #expect(map.checkInvariants() == [])
        #expect(map.count == keys.count)
        #expect(map.entries(from: 100, limit: 3).map(\.key) == [102, 105, 108])
        #expect(map.entries(from: 100, limit: 3, reverse: true).map(\.key) == [99, 96, 93])
        #expect(map.entries(from: 99, limit: 2, reverse: true).map(\.key) == [99, 96])
        #expect(map.entries(from: 2990, through: 3100).map(\.key) == [2991, 2994, 2997])
        #expect(map.entries(from: 10, through: 0, reverse: true).map(\.key) == [9, 6, 3, 0])
        #expect(map.entries(limit: 2, reverse: true).map(\.key) == [2997, 2994])
        #expect(map[map.lowerBound(100)..<map.lowerBound(110)].map(\.key) == [102, 105, 108])
        #expect(map.reversed().prefix(2).map(\.value) == [29970, 29940])
        // Emptying the map frees every leaf but one.
        for key in keys { try map.removeValue(forKey: key) }
        #expect(map.isEmpty && map.checkInvariants() == [] && Array(map).isEmpty)
        try heap.setRoot("map", to: map)
        let report = heap.verify()
        #expect(report.isValid && report.liveBlocks == 2, "\(report)")
    }

    @Test func sortedMapValueScansMatchEntryScans() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("values.pool"), options: smallPoolOptions(maximumSize: 16 << 20))
        defer { heap.close() }
        let map = try PersistentSortedMap<String, Int>.make(in: heap)
        var rng = SeededGenerator(seed: 7)
        let keys = (0..<1500).map { _ in "key\(Int.random(in: 0..<1_000_000, using: &rng))" }
        var model: [String: Int] = [:]
        for (index, key) in keys.enumerated() { try map.updateValue(index, forKey: key); model[key] = index }
        let ascending = model.keys.sorted()
        #expect(map.values(limit: 5) == ascending.prefix(5).map { model[$0]! })
        #expect(map.values(limit: 4, reverse: true) == ascending.reversed().prefix(4).map { model[$0]! })
        for _ in 0..<300 {
            let start = "key\(Int.random(in: 0..<1_000_000, using: &rng))"
            let end = Bool.random(using: &rng) ? "key\(Int.random(in: 0..<1_000_000, using: &rng))" : nil
            let limit = Int.random(in: 0...120, using: &rng)
            let reverse = Bool.random(using: &rng)
            let range = reverse
                ? ascending.reversed().filter { $0 <= start && (end == nil || $0 >= end!) }
                : ascending.filter { $0 >= start && (end == nil || $0 <= end!) }
            let expected = range.prefix(limit).map { model[$0]! }
            let what = "from \(start) through \(end ?? "-") limit \(limit) reverse \(reverse)"
            #expect(map.values(from: start, through: end, limit: limit, reverse: reverse) == expected, "\(what)")
            #expect(map.entries(from: start, through: end, limit: limit, reverse: reverse).map(\.value) == expected, "\(what)")
        }
    }

    @Test func destroyingCollectionsReturnsAllTheirMemory() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("destroy.pool"), options: smallPoolOptions(maximumSize: 16 << 20))
        defer { heap.close() }
        try CollectionsModel.create(in: heap)
        var workload = CollectionsWorkload(seed: 9)
        var model = CollectionsModel()
        let c = try CollectionsModel.Collections(heap)
        for _ in 0..<1500 { try workload.step(c, &model) }
        #expect(heap.verify().liveBlocks > 50)
        try heap.transaction {
            try c.array.destroy(); try c.ints.destroy(); try c.names.destroy(); try c.tree.destroy(); try c.words.destroy()
            for name in heap.rootNames { try heap.setRoot(name, to: nil) }
        }
        let report = heap.verify()
        #expect(report.isValid && report.liveBlocks == 0, "\(report)")
    }

    @Test func dictionaryGrowsIncrementallyWithoutLosingKeys() throws {
        let directory = TemporaryDirectory()
        // Log slots large enough to free a whole old table at once: the segment-size knob is
        // global, and a test running alongside may shrink segments to 16 slots (1,000+ frees).
        var options = smallPoolOptions(maximumSize: 64 << 20, chunkSize: 64 << 10)
        options.logSlotSize = 64 << 10
        let heap = try Heap(path: directory.file("grow.pool"), options: options)
        defer { heap.close() }
        PersistentDictionaryTuning.segmentSlotsShift.store(8, ordering: .relaxed)  // many segments
        let dictionary = try PersistentDictionary<Int, Int>.make(in: heap)
        var model: [Int: Int] = [:]
        for key in 0..<20_000 {
            try dictionary.updateValue(key &* 7, forKey: key); model[key] = key &* 7
            // Removals and updates while tables migrate: a removed key must stay gone, an updated
            // one must read its new value, whichever table it was in.
            if key % 3 == 0 {
                let victim = key / 2
                try dictionary.removeValue(forKey: victim); model[victim] = nil
                if dictionary[victim] != nil { Issue.record("key \(victim) still found after its removal"); return }
            }
            if key % 5 == 0 {
                let updated = key / 3
                try dictionary.updateValue(-updated, forKey: updated); model[updated] = -updated
                if dictionary[updated] != -updated { Issue.record("key \(updated) reads a stale value"); return }
            }
            if key % 997 == 0 {  // mid-migration lookups see every key
                for probe in stride(from: 0, through: key, by: 13) where dictionary[probe] != model[probe] {
                    Issue.record("key \(probe) reads \(String(describing: dictionary[probe])), not \(String(describing: model[probe]))"); return
                }
            }
        }
        #expect(dictionary.count == model.count)
        #expect((0..<20_000).allSatisfy { dictionary[$0] == model[$0] })
        var iterated: [Int: Int] = [:]
        for (key, value) in dictionary { iterated[key] = value }
        #expect(iterated == model)
    }
}

@Suite struct ReadmeExampleTests {
    /// The collections example of the README, as written there.
    @Test func theReadmeCollectionsExampleWorks() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("readme.pool"), options: smallPoolOptions(maximumSize: 4 << 20))
        defer { heap.close() }
        let balances = try heap.root("balances", as: PersistentDictionary<String, Int>.self)
            ?? heap.transaction {
                let map = try PersistentDictionary<String, Int>.make(in: heap)
                try heap.setRoot("balances", to: map)
                return map
            }
        try balances.updateValue(100, forKey: "alice")
        try heap.transaction {
            try balances.updateValue(90, forKey: "alice")
            try balances.updateValue(10, forKey: "bob")
        }
        #expect(balances["alice"] == 90 && balances["bob"] == 10)
        let log = try PersistentSortedMap<Int, String>.make(in: heap)
        try log.updateValue("opened", forKey: 1)
        try log.updateValue("closed", forKey: 2)
        #expect(log.reversed().map(\.value) == ["closed", "opened"])
    }
}
