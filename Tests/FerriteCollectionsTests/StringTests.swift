import Testing
import FerriteHeap
import FerriteCollections
import FerriteTestSupport

@Suite struct StringTests {
    static let samples = ["", "a", "Ada", "ada", "abc", "abd", "ab", "caf\u{E9}", "cafe\u{301}", "\u{212A}elvin", "Kelvin",
                          "日本語", "日本", "emoji 🇫🇷", "\u{0}nul", String(repeating: "x", count: 100)]

    @Test func persistentStringsCompareHashAndRoundTripLikeSwiftStrings() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("strings.pool"), options: smallPoolOptions())
        defer { heap.close() }
        let stored = try Self.samples.map { try PersistentString.make($0, in: heap) }
        for (i, a) in Self.samples.enumerated() {
            #expect(stored[i].string == a)
            #expect(stored[i] == a)
            #expect(a.persistentHash == stored[i].string.persistentHash)
            for (j, b) in Self.samples.enumerated() {
                #expect((stored[i] == stored[j]) == (a == b), "\(a) == \(b)")
                #expect((stored[i] < stored[j]) == (a < b), "\(a) < \(b)")
                if a == b {
                    #expect(stored[i].hashValue == stored[j].hashValue)
                    #expect(a.persistentHash == b.persistentHash, "canonically equal strings hash alike: \(a) \(b)")
                }
            }
        }
    }

    @Test func byteStringsKeepArbitraryBytes() throws {
        let directory = TemporaryDirectory()
        let heap = try Heap(path: directory.file("bytes.pool"), options: smallPoolOptions())
        defer { heap.close() }
        let values: [[UInt8]] = [[], [0], [0xFF, 0, 0x80], Array(0...255)]
        let stored = try values.map { try PersistentBytes.make($0, in: heap) }
        for (i, value) in values.enumerated() {
            #expect(stored[i].array == value)
            for (j, other) in values.enumerated() { #expect((stored[i] == stored[j]) == (value == other)) }
        }
    }
}
