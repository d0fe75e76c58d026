import Testing
import FerriteHeap
import FerriteCollections
import FerriteTestSupport

/// A small fixed-layout struct (no padding), stored by value.
struct Point: PersistentTrivial, PersistentHashable, Equatable {
    var x: Int32, y: Int32
}

enum Color: UInt8, PersistentRawRepresentable, PersistentHashable, PersistentComparable, CaseIterable {
    case red = 1, green = 2, blue = 3
    static func < (a: Color, b: Color) -> Bool { a.rawValue < b.rawValue }
}

extension Cell: PersistentStorable {}

@Suite struct ElementTypeTests {
    @Test func collectionsHoldStructsEnumsFloatsBytesAndObjectReferencesAcrossReopen() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("types.pool")
        var heap = try Heap(path: path, options: smallPoolOptions(maximumSize: 8 << 20))
        try heap.transaction {
            let points = try PersistentArray<Point>.make(in: heap)
            try points.append(contentsOf: [Point(x: 1, y: -2), Point(x: .max, y: .min)])
            try heap.setRoot("points", to: points)
            let cells = try PersistentDictionary<Color, Cell?>.make(in: heap)
            let cell = try heap.allocate(Cell.self)
            cell.a = 42
            try cells.updateValue(cell, forKey: .green)
            try cells.updateValue(nil, forKey: .blue)
            try heap.setRoot("cells", to: cells)
            let byPoint = try PersistentDictionary<Point, [UInt8]>.make(in: heap)
            try byPoint.updateValue([0, 255, 7], forKey: Point(x: 3, y: 4))
            try heap.setRoot("byPoint", to: byPoint)
            let floats = try PersistentSortedMap<Double, Bool>.make(in: heap)
            for value in [2.5, -1.0, 0.0, 1e300] { try floats.updateValue(value > 0, forKey: value) }
            try heap.setRoot("floats", to: floats)
            let colors = try PersistentSortedMap<Color, Int>.make(in: heap)
            for color in Color.allCases.reversed() { try colors.updateValue(Int(color.rawValue), forKey: color) }
            try heap.setRoot("colors", to: colors)
        }
        heap.close()
        heap = try Heap(path: path)
        defer { heap.close() }
        for type: any PersistentObject.Type in [PersistentArray<Point>.self, PersistentDictionary<Color, Cell?>.self, PersistentDictionary<Point, [UInt8]>.self,
                                               PersistentSortedMap<Double, Bool>.self, PersistentSortedMap<Color, Int>.self, Cell.self] {
            try heap.register(type)
        }
        #expect(Array(try heap.root("points", as: PersistentArray<Point>.self)!) == [Point(x: 1, y: -2), Point(x: .max, y: .min)])
        let cells = try heap.root("cells", as: PersistentDictionary<Color, Cell?>.self)!
        #expect(cells[.green]??.a == 42)
        #expect(cells.contains(.blue) && cells[.blue]! == nil && cells[.red] == nil)
        #expect(try heap.root("byPoint", as: PersistentDictionary<Point, [UInt8]>.self)![Point(x: 3, y: 4)] == [0, 255, 7])
        #expect(try heap.root("floats", as: PersistentSortedMap<Double, Bool>.self)!.map(\.key) == [-1.0, 0.0, 2.5, 1e300])
        #expect(try heap.root("colors", as: PersistentSortedMap<Color, Int>.self)!.map(\.key) == [.red, .green, .blue])
        // The cell is reachable only through the dictionary: the verifier follows slot references.
        let report = heap.verify()
        #expect(report.isValid, "\(report)")
    }
}
