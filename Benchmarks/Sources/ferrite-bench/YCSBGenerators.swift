import Foundation

// The YCSB core generators (workloads.md: "The generators, precisely"), so that results compare
// with published YCSB figures.

/// 64-bit FNV-1a over the 8 bytes of `value` (YCSB's `fnvhash64`, as a non-negative number).
func fnv1a64(_ value: UInt64) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    var remaining = value
    for _ in 0..<8 {
        hash ^= remaining & 0xFF
        hash = hash &* 0x0000_0100_0000_01B3
        remaining >>= 8
    }
    return hash & ~(1 << 63)  // YCSB takes the absolute value of a signed long
}

/// The key of the record with sequence number `sequence`: "user" and the decimal FNV-1a hash.
/// Formatted by hand into the string's own storage (string interpolation costs several times
/// more, and the harness's cost per operation is in every store's figures).
func ycsbKey(_ sequence: UInt64) -> String {
    var value = fnv1a64(sequence)
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 19 digits, least significant first
    var count = 0
    withUnsafeMutableBytes(of: &digits) { buffer in
        repeat {
            buffer[count] = UInt8(truncatingIfNeeded: 48 &+ value % 10)
            value /= 10
            count += 1
        } while value != 0
    }
    return String(unsafeUninitializedCapacity: 4 + count) { bytes in
        bytes[0] = 0x75; bytes[1] = 0x73; bytes[2] = 0x65; bytes[3] = 0x72  // "user"
        withUnsafeBytes(of: digits) { buffer in
            for i in 0..<count { bytes[4 + i] = buffer[count - 1 - i] }
        }
        return 4 + count
    }
}

/// A zipfian distribution over `0..<items` with constant `theta` (Gray et al., as YCSB implements it).
struct ZipfianGenerator: Sendable {
    let items: UInt64
    let theta: Double
    let alpha: Double
    let zetaN: Double
    let eta: Double
    let halfPowTheta: Double

    init(items: UInt64, theta: Double = 0.99, zetaN precomputed: Double? = nil) {
        self.items = items
        self.theta = theta
        alpha = 1 / (1 - theta)
        let zeta2 = Self.zeta(2, theta)
        zetaN = precomputed ?? Self.zeta(items, theta)
        eta = (1 - pow(2 / Double(items), 1 - theta)) / (1 - zeta2 / zetaN)
        halfPowTheta = pow(0.5, theta)
    }

    static func zeta(_ n: UInt64, _ theta: Double) -> Double {
        var sum = 0.0
        for i in 1...max(1, n) { sum += 1 / pow(Double(i), theta) }
        return sum
    }

    func next(using rng: inout some RandomNumberGenerator) -> UInt64 {
        let u = Double.random(in: 0..<1, using: &rng)
        let uz = u * zetaN
        if uz < 1 { return 0 }
        if uz < 1 + halfPowTheta { return 1 }
        return min(items - 1, UInt64(Double(items) * pow(eta * u - eta + 1, alpha)))
    }
}

/// YCSB's scrambled zipfian: a zipfian over 10,000,000,000 items (its precomputed zeta for theta
/// 0.99), hashed onto the record range so that popular records are spread over the key space.
struct ScrambledZipfianGenerator: Sendable {
    static let itemCount: UInt64 = 10_000_000_000
    static let zetan = 26.46902820178302
    let zipfian = ZipfianGenerator(items: itemCount, theta: 0.99, zetaN: zetan)
    let records: UInt64

    func next(using rng: inout some RandomNumberGenerator) -> UInt64 {
        fnv1a64(zipfian.next(using: &rng)) % records
    }
}

/// YCSB's "latest": a zipfian over the records inserted so far, counted back from the newest.
/// Each thread keeps its own (no lock shared between threads on every operation).
struct LatestGenerator {
    /// The zipfian of the current record count, recomputed when the count has grown by more
    /// than 1% (YCSB recomputes its zeta incrementally; the count changes by a few percent during
    /// a run).
    private var zipfian: ZipfianGenerator?

    /// A generator whose zipfian is computed for `records` records now (it takes a million
    /// terms: compute it before the timed phase, then give each thread a copy).
    init(records: UInt64) { zipfian = ZipfianGenerator(items: records, theta: 0.99) }

    mutating func next(newest: UInt64, using rng: inout some RandomNumberGenerator) -> UInt64 {
        let count = newest + 1
        if zipfian == nil || zipfian!.items > count || count - zipfian!.items > zipfian!.items / 100 {
            zipfian = ZipfianGenerator(items: count, theta: 0.99, zetaN: zipfian.map { Self.extend($0, to: count) })
        }
        let back = zipfian!.next(using: &rng)
        return back > newest ? 0 : newest - back
    }

    /// The zeta of `count` items from the zeta of fewer (adds the missing terms).
    static func extend(_ zipfian: ZipfianGenerator, to count: UInt64) -> Double {
        guard count > zipfian.items else { return ZipfianGenerator.zeta(count, zipfian.theta) }
        var sum = zipfian.zetaN
        for i in (zipfian.items + 1)...count { sum += 1 / pow(Double(i), zipfian.theta) }
        return sum
    }
}
