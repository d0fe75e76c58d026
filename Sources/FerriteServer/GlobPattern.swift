/// Redis's glob patterns (`KEYS`, `SCAN MATCH`): `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape.
struct GlobPattern: Sendable {
    let pattern: [UInt8]

    init(_ pattern: [UInt8]) { self.pattern = pattern }

    /// Whether the pattern matches every string (`*`): callers then skip matching.
    var matchesEverything: Bool { pattern == [UInt8(ascii: "*")] }

    func matches(_ string: [UInt8]) -> Bool {
        pattern.withUnsafeBufferPointer { p in string.withUnsafeBufferPointer { s in Self.match(p[...], s[...]) } }
    }

    private static func match(_ pattern: Slice<UnsafeBufferPointer<UInt8>>, _ string: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        var p = pattern.startIndex, s = string.startIndex
        // The position after the last `*` and the string position it was tried at.
        var starP: Int? = nil, starS = 0
        while s < string.endIndex {
            if p < pattern.endIndex {
                let c = pattern[p]
                if c == UInt8(ascii: "*") {
                    while p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") { p += 1 }
                    if p == pattern.endIndex { return true }
                    starP = p
                    starS = s
                    continue
                }
                if c == UInt8(ascii: "?") {
                    p += 1; s += 1; continue
                }
                if c == UInt8(ascii: "[") {
                    if let (matched, next) = matchClass(pattern, from: p + 1, byte: string[s]), matched {
                        p = next; s += 1; continue
                    }
                } else {
                    var literal = c
                    var next = p + 1
                    if c == UInt8(ascii: "\\") && p + 1 < pattern.endIndex {
                        literal = pattern[p + 1]
                        next = p + 2
                    }
                    if literal == string[s] {
                        p = next; s += 1; continue
                    }
                }
            }
            // Mismatch: let the last `*` swallow one more byte, if there was one.
            guard let star = starP else { return false }
            starS += 1
            s = starS
            p = star
        }
        while p < pattern.endIndex && pattern[p] == UInt8(ascii: "*") { p += 1 }
        return p == pattern.endIndex
    }

    /// Matches `byte` against the class starting after `[`; returns whether it matched and the
    /// pattern position after the closing `]` (the class runs to the end if unclosed, as Redis).
    private static func matchClass(_ pattern: Slice<UnsafeBufferPointer<UInt8>>, from start: Int, byte: UInt8) -> (Bool, Int)? {
        var p = start
        var negate = false
        if p < pattern.endIndex && pattern[p] == UInt8(ascii: "^") { negate = true; p += 1 }
        var matched = false
        while p < pattern.endIndex && pattern[p] != UInt8(ascii: "]") {
            if pattern[p] == UInt8(ascii: "\\") && p + 1 < pattern.endIndex {
                if pattern[p + 1] == byte { matched = true }
                p += 2
            } else if p + 2 < pattern.endIndex && pattern[p + 1] == UInt8(ascii: "-") && pattern[p + 2] != UInt8(ascii: "]") {
                let low = min(pattern[p], pattern[p + 2]), high = max(pattern[p], pattern[p + 2])
                if byte >= low && byte <= high { matched = true }
                p += 3
            } else {
                if pattern[p] == byte { matched = true }
                p += 1
            }
        }
        if p < pattern.endIndex { p += 1 }  // the `]`
        return (matched != negate, p)
    }
}
