/// A growable buffer of trivial values that a transaction context reuses from one transaction to
/// the next: no copy-on-write, no reference counting, and clearing is a store.
struct ScratchBuffer<Element: BitwiseCopyable> {
    private(set) var base: UnsafeMutablePointer<Element>
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 16) {
        self.capacity = Self.roundedCapacity(capacity)
        base = Self.allocateLines(self.capacity)
    }

    /// Storage in whole cache lines of its own: two threads' buffers must never share a line
    /// (every transaction writes them, and a shared line would move between cores each time).
    private static func allocateLines(_ capacity: Int) -> UnsafeMutablePointer<Element> {
        UnsafeMutableRawPointer.allocate(byteCount: capacity * MemoryLayout<Element>.stride, alignment: 128)
            .bindMemory(to: Element.self, capacity: capacity)
    }

    private static func roundedCapacity(_ capacity: Int) -> Int {
        let perLine = max(1, 128 / MemoryLayout<Element>.stride)
        return (max(capacity, 1) + perLine - 1) / perLine * perLine
    }

    /// Frees the storage; the buffer must not be used afterwards.
    func deallocate() { UnsafeMutableRawPointer(base).deallocate() }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    subscript(index: Int) -> Element {
        get { base[index] }
        nonmutating set { base[index] = newValue }
    }

    @inline(__always)
    mutating func append(_ element: Element) {
        if count == capacity { grow() }
        base[count] = element
        count += 1
    }

    private mutating func grow() {
        let bigger = Self.allocateLines(capacity * 2)
        bigger.update(from: base, count: count)
        UnsafeMutableRawPointer(base).deallocate()
        base = bigger
        capacity *= 2
    }

    @inline(__always) mutating func removeAll() { count = 0 }

    /// Removes `n` elements starting at `index`, keeping the order of the rest.
    mutating func remove(at index: Int, count n: Int) {
        (base + index).update(from: base + index + n, count: count - index - n)
        count -= n
    }

    /// Whether the buffer holds `element` (a linear scan: for the short lists transactions keep).
    @inline(__always)
    func contains(_ element: Element) -> Bool where Element: Equatable {
        var i = 0
        while i < count {
            if base[i] == element { return true }
            i += 1
        }
        return false
    }

    /// The elements as raw bytes (a log record payload).
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count * MemoryLayout<Element>.stride) }
}
