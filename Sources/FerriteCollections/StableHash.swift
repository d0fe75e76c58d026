/// Hashes that are the same in every process (Swift's `Hasher` is seeded per process, so it
/// cannot place keys in a persistent table).
public enum StableHash {
    /// Mixes a 64-bit value (the finalizer of SplitMix64): every input bit affects every output bit.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Hashes bytes eight at a time.
    public static func bytes(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count)
        var index = 0
        while index + 8 <= bytes.count {
            hash = mix(hash ^ bytes.loadUnaligned(fromByteOffset: index, as: UInt64.self))
            index += 8
        }
        if index < bytes.count {
            var tail: UInt64 = 0
            for i in index..<bytes.count { tail |= UInt64(bytes[i]) << UInt64((i - index) * 8) }
            hash = mix(hash ^ tail ^ 0xFF00_0000_0000_0000)
        }
        return mix(hash)
    }
}
