/// A map from pool offsets to sizes, tuned for the handful of entries a typical transaction has:
/// a linear scan of a small array, with a dictionary index once it grows.
struct OffsetMap {
    private(set) var keys: [UInt64] = []
    private(set) var values: [Int] = []
    private var index: [UInt64: Int] = [:]
    private static let linearLimit = 12

    var isEmpty: Bool { keys.isEmpty }
    var count: Int { keys.count }

    @inline(__always)
    private func position(_ key: UInt64) -> Int? {
        if keys.count <= Self.linearLimit {
            for i in keys.indices where keys[i] == key { return i }
            return nil
        }
        return index[key]
    }

    @inline(__always)
    subscript(key: UInt64) -> Int? { position(key).map { values[$0] } }

    mutating func set(_ key: UInt64, _ value: Int) {
        if let i = position(key) { values[i] = value; return }
        keys.append(key)
        values.append(value)
        if keys.count == Self.linearLimit + 1 {
            for i in keys.indices { index[keys[i]] = i }
        } else if keys.count > Self.linearLimit {
            index[key] = keys.count - 1
        }
    }

    /// Removes `key`; returns whether it was there.
    @discardableResult
    mutating func remove(_ key: UInt64) -> Bool {
        guard let i = position(key) else { return false }
        let last = keys.count - 1
        if keys.count > Self.linearLimit { index[key] = nil; if i != last { index[keys[last]] = i } }
        keys.swapAt(i, last); values.swapAt(i, last)
        keys.removeLast(); values.removeLast()
        if keys.count == Self.linearLimit { index.removeAll(keepingCapacity: true) }
        return true
    }

    mutating func removeAll() {
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        if !index.isEmpty { index.removeAll(keepingCapacity: true) }
    }
}
