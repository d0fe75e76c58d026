/// The block sizes small allocations are rounded up to, and how each packs into a chunk.
///
/// Sizes step by 16 bytes up to 128, then by quarters of each power of two, up to an eighth of
/// a chunk. Anything larger takes whole chunks (a "huge" allocation). The classes are derived
/// from the chunk size alone, so the same pool always yields the same classes.
struct SizeClasses {
    struct SizeClass {
        let blockSize: Int
        let blockCount: Int
        /// Bytes at the start of the chunk holding the allocation bitmap (a multiple of 64).
        let bitmapBytes: Int
        var bitmapWords: Int { (blockCount + 63) / 64 }
    }

    let classes: [SizeClass]
    let largestBlock: Int
    private let lookup: [UInt8]  // (size + 15) / 16 -> class index

    init(chunkSize: Int) {
        var sizes: [Int] = stride(from: 32, through: 128, by: 16).map { $0 }
        var power = 128
        while power * 2 <= chunkSize / 8 {
            for quarter in 1...4 { sizes.append(power + quarter * power / 4) }
            power *= 2
        }
        classes = sizes.map { size in
            var count = chunkSize / size
            while ((count + 63) / 64 * 8).roundedUp(to: 64) + count * size > chunkSize { count -= 1 }
            return SizeClass(blockSize: size, blockCount: count, bitmapBytes: ((count + 63) / 64 * 8).roundedUp(to: 64))
        }
        largestBlock = sizes.last!
        var table = [UInt8](repeating: 0, count: largestBlock / 16 + 1)
        var index = 0
        for slot in 0..<table.count {
            while classes[index].blockSize < slot * 16 { index += 1 }
            table[slot] = UInt8(index)
        }
        lookup = table
    }

    /// The class for a block of `size` bytes, or nil when it needs whole chunks.
    @inline(__always)
    func classIndex(forBlockSize size: Int) -> Int? {
        size <= largestBlock ? Int(lookup[(size + 15) / 16]) : nil
    }

    func classIndex(ofExactBlockSize size: Int) -> Int? {
        guard let index = classIndex(forBlockSize: size), classes[index].blockSize == size else { return nil }
        return index
    }
}
