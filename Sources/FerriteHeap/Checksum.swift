/// A fast 64-bit hash for log records and headers: detects torn or stale records.
/// Not cryptographic. Stable across versions: it is part of the on-disk format.
@usableFromInline
enum Checksum {
    @inline(__always)
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    /// Hashes `count` bytes at `bytes`, which must be a multiple of 8, with `seed`.
    static func hash(_ bytes: UnsafeRawPointer, count: Int, seed: UInt64) -> UInt64 {
        precondition(count % 8 == 0)
        // The seed is mixed non-linearly before any data word, so that a change in the seed can
        // never be cancelled by a change in the first word (a stale record of the previous
        // transaction must not validate under the next one's sequence number).
        var h = mix(seed ^ 0x2D35_8DCC_AA6C_78A5, 0x9E37_79B9_7F4A_7C15) ^ mix(seed &+ 0x3C6E_F372_FE94_F82B, 0xA076_1D64_78BD_642F)
        var i = 0
        while i < count {
            let word = bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = mix(h ^ word, 0x8BB8_4B93_962E_ACC9) &+ UInt64(i)
            i += 8
        }
        return mix(h ^ UInt64(count), 0x4B33_A62E_D433_D4A3)
    }

    /// FNV-1a, 64 bits: stable type ids from type names.
    static func fnv1a(_ string: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in string.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01B3
        }
        return h
    }
}

/// An incremental 64-bit hash over words and byte ranges (for COMMIT records).
struct StreamHasher {
    private(set) var value: UInt64

    init(seed: UInt64) {
        value = Checksum.mix(seed ^ 0x6A09_E667_F3BC_C909, 0x9E37_79B9_7F4A_7C15) ^ 0xBB67_AE85_84CA_A73B
    }

    @inline(__always)
    mutating func add(_ word: UInt64) {
        value = Checksum.mix(value ^ word, 0x8BB8_4B93_962E_ACC9) &+ 0x3C6E_F372_FE94_F82B
    }

    /// Adds `count` bytes (any count) and the count itself.
    mutating func add(_ bytes: UnsafeRawPointer, count: Int) {
        var i = 0
        while i + 8 <= count {
            add(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        if i < count {
            var tail: UInt64 = 0
            for j in i..<count { tail |= UInt64(bytes.load(fromByteOffset: j, as: UInt8.self)) << UInt64(8 * (j - i)) }
            add(tail)
        }
        add(UInt64(count))
    }
}
