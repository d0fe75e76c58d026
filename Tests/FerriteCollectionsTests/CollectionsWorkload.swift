import FerriteHeap
@_spi(Testing) import FerriteCollections
import FerriteTestSupport

/// Five persistent collections under roots, and the standard-library model they must equal.
struct CollectionsModel: Equatable, CustomStringConvertible {
    var array: [String] = []
    var ints: [Int: Int] = [:]
    var names: [String: String] = [:]
    var tree: [Int: String] = [:]
    var words: [String: Int] = [:]

    var description: String {
        "array \(array.count), ints \(ints.count), names \(names.count), tree \(tree.count), words \(words.count)"
    }

    typealias Array_ = PersistentArray<String>
    typealias Ints = PersistentDictionary<Int, Int>
    typealias Names = PersistentDictionary<String, String>
    typealias Tree = PersistentSortedMap<Int, String>
    typealias Words = PersistentSortedMap<String, Int>

    static func register(in heap: Heap) throws {
        for type: any PersistentObject.Type in [Array_.self, Ints.self, Names.self, Tree.self, Words.self] { try heap.register(type) }
    }

    /// Creates the empty collections under their roots.
    static func create(in heap: Heap) throws {
        // Tiny hash-table segments, so that tables of a few hundred keys span many of them (each
        // table records its segment size: tests that race on this setting stay correct).
        PersistentDictionaryTuning.segmentSlotsShift.store(4, ordering: .relaxed)
        try heap.transaction {
            try heap.setRoot("array", to: try Array_.make(in: heap))
            try heap.setRoot("ints", to: try Ints.make(in: heap))
            try heap.setRoot("names", to: try Names.make(in: heap))
            try heap.setRoot("tree", to: try Tree.make(in: heap))
            try heap.setRoot("words", to: try Words.make(in: heap))
        }
    }

    struct Collections {
        let array: Array_, ints: Ints, names: Names, tree: Tree, words: Words
        init(_ heap: Heap) throws {
            array = try heap.root("array", as: Array_.self)!
            ints = try heap.root("ints", as: Ints.self)!
            names = try heap.root("names", as: Names.self)!
            tree = try heap.root("tree", as: Tree.self)!
            words = try heap.root("words", as: Words.self)!
        }
    }

    /// Reads the collections back, checking their own consistency on the way. Nil means broken:
    /// `problems` says why.
    static func read(from heap: Heap, problems: inout [String]) throws -> CollectionsModel {
        let c = try Collections(heap)
        var model = CollectionsModel()
        // Plain loops, not Array(_:), which traps when a broken collection's count is wrong.
        for element in c.array { model.array.append(element) }
        if model.array.count != c.array.count { problems.append("array: count \(c.array.count), \(model.array.count) elements") }
        for (k, v) in c.ints { if model.ints.updateValue(v, forKey: k) != nil { problems.append("ints: key \(k) twice") } }
        for (k, v) in c.names { if model.names.updateValue(v, forKey: k) != nil { problems.append("names: key \(k) twice") } }
        if model.ints.count != c.ints.count { problems.append("ints: count \(c.ints.count), \(model.ints.count) pairs") }
        if model.names.count != c.names.count { problems.append("names: count \(c.names.count), \(model.names.count) pairs") }
        for (k, v) in model.ints where c.ints[k] != v { problems.append("ints: lookup of \(k) disagrees with iteration") }
        for (k, v) in model.names where c.names[k] != v { problems.append("names: lookup of \(k) disagrees with iteration") }
        var treePairs: [(key: Int, value: String)] = [], wordPairs: [(key: String, value: Int)] = []
        for pair in c.tree { treePairs.append(pair) }
        for pair in c.words { wordPairs.append(pair) }
        if treePairs.count != c.tree.count { problems.append("tree: count \(c.tree.count), \(treePairs.count) pairs") }
        if wordPairs.count != c.words.count { problems.append("words: count \(c.words.count), \(wordPairs.count) pairs") }
        model.tree = Dictionary(treePairs.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        model.words = Dictionary(wordPairs.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        if treePairs.map(\.key) != model.tree.keys.sorted() { problems.append("tree: iteration out of order or duplicated") }
        if wordPairs.map(\.key) != model.words.keys.sorted() { problems.append("words: iteration out of order or duplicated") }
        var reversedKeys: [Int] = []
        var index = c.tree.endIndex
        while index != c.tree.startIndex && reversedKeys.count <= treePairs.count { index = c.tree.index(before: index); reversedKeys.append(c.tree[index].key) }
        if reversedKeys != treePairs.map(\.key).reversed() { problems.append("tree: reverse iteration differs") }
        problems += c.tree.checkInvariants().map { "tree: " + $0 } + c.words.checkInvariants().map { "words: " + $0 }
        return model
    }
}

/// Random operations on the collections and their model.
struct CollectionsWorkload {
    var random: SeededGenerator
    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    static let words = ["a", "b", "ab", "ba", "caf\u{E9}", "cafe\u{301}x", "日本", "zebra", "Zebra", "", "x y", "long " + String(repeating: "w", count: 40)]

    mutating func word() -> String {
        let base = Self.words[Int.random(in: 0..<Self.words.count, using: &random)]
        return base + String(Int.random(in: 0..<40, using: &random))
    }

    /// Applies one random operation to the collections and to `model`.
    mutating func step(_ c: CollectionsModel.Collections, _ model: inout CollectionsModel) throws {
        switch Int.random(in: 0..<100, using: &random) {
        case 0..<8:
            let value = word()
            try c.array.append(value); model.array.append(value)
        case 8..<12 where !model.array.isEmpty:
            let index = Int.random(in: 0...model.array.count, using: &random), value = word()
            try c.array.insert(value, at: index); model.array.insert(value, at: index)
        case 12..<16 where !model.array.isEmpty:
            let index = Int.random(in: 0..<model.array.count, using: &random)
            let removed = try c.array.remove(at: index)
            precondition(removed == model.array.remove(at: index), "array.remove returned the wrong element")
        case 16..<19 where !model.array.isEmpty:
            let index = Int.random(in: 0..<model.array.count, using: &random), value = word()
            try c.array.set(value, at: index); model.array[index] = value
        case 19..<38:
            let key = Int.random(in: 0..<400, using: &random), value = Int.random(in: 0..<1_000_000, using: &random)
            let old = try c.ints.updateValue(value, forKey: key)
            precondition(old == model.ints.updateValue(value, forKey: key), "ints.updateValue returned the wrong old value")
        case 38..<46:
            let key = Int.random(in: 0..<400, using: &random)
            let old = try c.ints.removeValue(forKey: key)
            precondition(old == model.ints.removeValue(forKey: key), "ints.removeValue returned the wrong value")
        case 46..<58:
            let key = word(), value = word()
            try c.names.updateValue(value, forKey: key); model.names[key] = value
        case 58..<63:
            let key = word()
            try c.names.removeValue(forKey: key); model.names[key] = nil
        case 63..<78:
            let key = Int.random(in: 0..<600, using: &random), value = word()
            try c.tree.updateValue(value, forKey: key); model.tree[key] = value
        case 78..<86:
            let key = Int.random(in: 0..<600, using: &random)
            let old = try c.tree.removeValue(forKey: key)
            precondition(old == model.tree.removeValue(forKey: key), "tree.removeValue returned the wrong value")
        case 86..<94:
            let key = word(), value = Int.random(in: 0..<100, using: &random)
            try c.words.updateValue(value, forKey: key); model.words[key] = value
        case 94..<98:
            let key = word()
            try c.words.removeValue(forKey: key); model.words[key] = nil
        default:
            if Int.random(in: 0..<40, using: &random) == 0 {
                try c.ints.removeAll(); model.ints = [:]
            } else {
                let key = Int.random(in: 0..<600, using: &random), value = word()
                try c.tree.updateValue(value, forKey: key); model.tree[key] = value
            }
        }
    }
}
