/// A map from pool offsets to sizes, tuned for the handful of entries a typical transaction has:
/// a linear scan of a small buffer, with a dictionary index once it grows. Reused across
/// transactions; call ``deallocate()`` when its owner goes away.
struct OffsetMap {
    private(set) var keys = ScratchBuffer<UInt64>()
    private(set) var values = ScratchBuffer<Int>()
    private var index: [UInt64: Int] = [:]
    private static let linearLimit = 12

    func deallocate() {
        keys.deallocate()
        values.deallocate()
    }

    var isEmpty: Bool { keys.isEmpty }
    var count: Int { keys.count }

    @inline(__always)
    private func position(_ key: UInt64) -> Int? {
        if keys.count <= Self.linearLimit {
            var i = 0
            while i < keys.count {
                if keys[i] == key { return i }
                i += 1
            }
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
            for i in 0..<keys.count { index[keys[i]] = i }
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
        keys[i] = keys[last]
        values[i] = values[last]
        keys.remove(at: last, count: 1)
        values.remove(at: last, count: 1)
        if keys.count == Self.linearLimit { index.removeAll(keepingCapacity: true) }
        return true
    }

    mutating func removeAll() {
        keys.removeAll()
        values.removeAll()
        if !index.isEmpty { index.removeAll(keepingCapacity: true) }
    }
}
