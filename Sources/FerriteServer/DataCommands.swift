import FerriteCollections
import FerriteHeap

/// The commands on data: strings, keys, hashes, sorted sets. Each checks its arguments and the
/// types of the keys it touches before it changes anything (so that inside EXEC a failing command
/// leaves no partial effect), and runs with the engine's lock held (writes in a transaction).
extension CommandEngine {
    func runData(_ name: String, _ r: [[UInt8]], _ session: Session) throws -> RESPReply {
        let keys = keyspace
        switch name {
        // MARK: Keyspace
        case "dbsize":
            return .integer(Int64(keys.count))
        case "flushdb", "flushall":
            if r.count > 2 || (r.count == 2 && !["sync", "async"].contains(Self.text(r[1]).lowercased())) { throw CommandError.syntax }
            try keys.flush()
            return .ok
        case "del", "unlink":
            var removed: Int64 = 0
            for key in r.dropFirst() where try keys.delete(key) { removed += 1 }
            return .integer(removed)
        case "exists":
            return .integer(Int64(r.dropFirst().filter { keys.entry($0) != nil }.count))
        case "type":
            guard let entry = keys.entry(r[1]) else { return .simple("none") }
            switch entry.kind {
            case nil: return .simple("unknown")
            case .string: return .simple("string")
            case .hash: return .simple("hash")
            case .sortedSet: return .simple("zset")
            case .keyspace: return .simple("none")
            }
        case "scan":
            return try scan(r)
        case "keys":
            let pattern = GlobPattern(r[1])
            var cursor: UInt64 = 0
            var found: [RESPReply] = []
            repeat {
                let page = keys.scan(from: cursor, count: 1024)
                for (key, _) in page.keys where pattern.matchesEverything || pattern.matches(key) { found.append(.bulk(key)) }
                cursor = page.cursor
            } while cursor != 0
            return .array(found)

        // MARK: Strings
        case "get":
            return try keys.string(r[1]).map { .bulk($0) } ?? .null
        case "strlen":
            return .integer(Int64(try keys.withString(r[1]) { $0.count } ?? 0))
        case "mget":
            return .array(r.dropFirst().map { key in
                // MGET answers nil for a key of another type, as Redis does.
                ((try? keys.string(key)) ?? nil).map { .bulk($0) } ?? .null
            })
        case "set":
            return try set(r)
        case "setnx":
            if keys.entry(r[1]) != nil { return .integer(0) }
            try keys.setString(r[1], r[2])
            return .integer(1)
        case "mset":
            guard r.count % 2 == 1 else { throw CommandError("ERR wrong number of arguments for 'mset' command") }
            for i in stride(from: 1, to: r.count, by: 2) { try keys.setString(r[i], r[i + 1]) }
            return .ok
        case "incr", "decr", "incrby", "decrby":
            var delta = 1
            if r.count == 3 {
                guard let parsed = RESPRequestDecoder.integer(r[2][...]) else { throw CommandError.notInteger }
                delta = parsed
            }
            if name.hasPrefix("decr") {
                guard delta != Int.min else { throw CommandError("ERR decrement would overflow") }
                delta = -delta
            }
            let current = try keys.string(r[1]).map { bytes -> Int in
                guard let value = RESPRequestDecoder.integer(bytes[...]) else { throw CommandError.notInteger }
                return value
            } ?? 0
            let (sum, overflow) = current.addingReportingOverflow(delta)
            guard !overflow else { throw CommandError.overflow }
            try keys.setString(r[1], Array(String(sum).utf8))
            return .integer(Int64(sum))

        // MARK: Hashes
        case "hset", "hmset":
            guard r.count % 2 == 0 else { throw CommandError("ERR wrong number of arguments for '\(name)' command") }
            let hash = try keys.hash(r[1], create: true)!
            var added: Int64 = 0
            for i in stride(from: 2, to: r.count, by: 2) where try hash.updateValue(r[i + 1], forKey: r[i]) == nil { added += 1 }
            return name == "hset" ? .integer(added) : .ok
        case "hget":
            return try keys.hash(r[1])?.value(forKey: r[2]).map { .bulk($0) } ?? .null
        case "hmget":
            let hash = try keys.hash(r[1])
            return .array(r.dropFirst(2).map { field in hash?.value(forKey: field).map { .bulk($0) } ?? .null })
        case "hgetall":
            guard let hash = try keys.hash(r[1]) else { return .map([]) }
            return .map(hash.map { (.bulk($0.key), .bulk($0.value)) })
        case "hdel":
            guard let hash = try keys.hash(r[1]) else { return .integer(0) }
            var removed: Int64 = 0
            for field in r.dropFirst(2) where try hash.removeValue(forKey: field) != nil { removed += 1 }
            if hash.isEmpty { try keys.delete(r[1]) }
            return .integer(removed)
        case "hlen":
            return .integer(Int64(try keys.hash(r[1])?.count ?? 0))
        case "hexists":
            return .integer(try keys.hash(r[1])?.contains(r[2]) == true ? 1 : 0)

        // MARK: Sorted sets
        case "zadd":
            return try zadd(r, session)
        case "zrem":
            guard let set = try keys.sortedSet(r[1]) else { return .integer(0) }
            var removed: Int64 = 0
            for member in r.dropFirst(2) where try set.remove(member) { removed += 1 }
            if set.count == 0 { try keys.delete(r[1]) }
            return .integer(removed)
        case "zcard":
            return .integer(Int64(try keys.sortedSet(r[1])?.count ?? 0))
        case "zscore":
            return try keys.sortedSet(r[1])?.scores.value(forKey: r[2]).map { .double($0) } ?? .null
        case "zrange":
            return try zrange(r, byScoreCommand: false, session)
        case "zrangebyscore":
            return try zrange(r, byScoreCommand: true, session)
        case "zrevrange", "zrevrangebyscore":
            // ZRANGE with REV (and BYSCORE): the same ranges, read from the end.
            let options = name == "zrevrange" ? [Array("REV".utf8)] : [Array("BYSCORE".utf8), Array("REV".utf8)]
            return try zrange(Array(r[0...3]) + options + r.dropFirst(4), byScoreCommand: false, session)
        default:
            throw CommandError("ERR unknown command '\(name)'")
        }
    }

    // MARK: SET

    private func set(_ r: [[UInt8]]) throws -> RESPReply {
        var onlyIfAbsent = false, onlyIfPresent = false, returnOld = false
        for option in r.dropFirst(3) {
            switch Self.text(option).uppercased() {
            case "NX": onlyIfAbsent = true
            case "XX": onlyIfPresent = true
            case "GET": returnOld = true
            case "EX", "PX", "EXAT", "PXAT", "KEEPTTL":
                throw CommandError("ERR Ferrite does not support key expiry (\(Self.text(option).uppercased())): keys persist until deleted")
            default: throw CommandError.syntax
            }
        }
        if onlyIfAbsent && onlyIfPresent { throw CommandError.syntax }
        // A plain SET needs no lookup first (updateValue finds the old value itself).
        let existing = onlyIfAbsent || onlyIfPresent || returnOld ? keys(r[1]) : nil
        var old: RESPReply = .null
        if returnOld, let existing {
            guard existing.kind == .string else { throw CommandError.wrongType }
            old = .bulk(try keyspace.string(r[1]) ?? [])
        }
        if (onlyIfAbsent && existing != nil) || (onlyIfPresent && existing == nil) { return returnOld ? old : .null }
        try keyspace.setString(r[1], r[2])
        return returnOld ? old : .ok
    }

    private func keys(_ key: [UInt8]) -> KeyEntry? { keyspace.entry(key) }

    // MARK: SCAN

    private func scan(_ r: [[UInt8]]) throws -> RESPReply {
        guard let cursor = UInt64(Self.text(r[1])) else { throw CommandError("ERR invalid cursor") }
        var count = 10
        var pattern: GlobPattern?
        var type: KeyEntry.Kind?
        var index = 2
        while index < r.count {
            guard index + 1 < r.count else { throw CommandError.syntax }
            switch Self.text(r[index]).uppercased() {
            case "COUNT":
                guard let value = RESPRequestDecoder.integer(r[index + 1][...]) else { throw CommandError.notInteger }
                guard value >= 1 else { throw CommandError.syntax }
                count = min(value, 1 << 20)
            case "MATCH":
                pattern = GlobPattern(r[index + 1])
            case "TYPE":
                switch Self.text(r[index + 1]).lowercased() {
                case "string": type = .string
                case "hash": type = .hash
                case "zset": type = .sortedSet
                default: type = .keyspace  // a type this server never holds: matches nothing
                }
            default:
                throw CommandError.syntax
            }
            index += 2
        }
        let page = keyspace.scan(from: cursor, count: count)
        let keys = page.keys.filter { key, entry in
            (pattern.map { $0.matchesEverything || $0.matches(key) } ?? true) && (type.map { entry.kind == $0 } ?? true)
        }
        return .array([.bulk(String(page.cursor)), .array(keys.map { .bulk($0.key) })])
    }

    // MARK: Sorted sets

    /// A score argument: a float, `inf`, `+inf` or `-inf`; never NaN.
    static func score(_ bytes: [UInt8]) throws(CommandError) -> Double {
        guard let value = Double(text(bytes)), !value.isNaN else { throw CommandError.notFloat }
        return value
    }

    private func zadd(_ r: [[UInt8]], _ session: Session) throws -> RESPReply {
        var nx = false, xx = false, gt = false, lt = false, ch = false, incr = false
        var index = 2
        options: while index < r.count {
            switch Self.text(r[index]).uppercased() {
            case "NX": nx = true
            case "XX": xx = true
            case "GT": gt = true
            case "LT": lt = true
            case "CH": ch = true
            case "INCR": incr = true
            default: break options
            }
            index += 1
        }
        let pairs = r.count - index
        guard pairs > 0, pairs % 2 == 0 else { throw CommandError.syntax }
        if nx && xx { throw CommandError("ERR XX and NX options at the same time are not compatible") }
        if (gt && lt) || (nx && (gt || lt)) { throw CommandError("ERR GT, LT, and/or NX options at the same time are not compatible") }
        if incr && pairs != 2 { throw CommandError("ERR INCR option supports a single increment-element pair") }
        var updates: [(Double, [UInt8])] = []
        for i in stride(from: index, to: r.count, by: 2) { updates.append((try Self.score(r[i]), r[i + 1])) }
        // Type checked, and INCR's result computed, before anything is created or changed.
        if let entry = keyspace.entry(r[1]), entry.kind != .sortedSet { throw CommandError.wrongType }
        if xx && keyspace.entry(r[1]) == nil { return incr ? .null : .integer(0) }
        if incr, let (score, member) = updates.first {
            let old = try keyspace.sortedSet(r[1])?.scores.value(forKey: member)
            if ((old ?? 0) + score).isNaN { throw CommandError("ERR resulting score is not a number (NaN)") }
        }
        let set = try keyspace.sortedSet(r[1], create: true)!
        var added: Int64 = 0, changed: Int64 = 0
        var incremented: Double?
        for (score, member) in updates {
            let old = set.scores.value(forKey: member)
            if (nx && old != nil) || (xx && old == nil) { continue }
            var new = score
            if incr {
                new = (old ?? 0) + score
                guard !new.isNaN else { throw CommandError("ERR resulting score is not a number (NaN)") }
            }
            if let old, (gt && new <= old) || (lt && new >= old) { continue }
            incremented = new
            if old == nil { added += 1 } else if old != new { changed += 1 }
            try set.set(member, score: new)
        }
        if set.count == 0 { try keyspace.delete(r[1]) }
        if incr { return incremented.map { .double($0) } ?? .null }
        return .integer(ch ? added + changed : added)
    }

    /// A ZRANGEBYSCORE bound: `(` for exclusive, `-inf` / `+inf`.
    private static func scoreBound(_ bytes: [UInt8]) throws(CommandError) -> (Double, exclusive: Bool) {
        let exclusive = bytes.first == UInt8(ascii: "(")
        guard let value = Double(text(exclusive ? Array(bytes.dropFirst()) : bytes)), !value.isNaN else {
            throw CommandError("ERR min or max is not a float")
        }
        return (value, exclusive)
    }

    /// ZRANGE (by rank, or BYSCORE; REV; LIMIT; WITHSCORES) and ZRANGEBYSCORE.
    private func zrange(_ r: [[UInt8]], byScoreCommand: Bool, _ session: Session) throws -> RESPReply {
        var byScore = byScoreCommand, reverse = false, withScores = false
        var limit: (offset: Int, count: Int)?
        var index = 4
        while index < r.count {
            switch Self.text(r[index]).uppercased() {
            case "BYSCORE" where !byScoreCommand: byScore = true
            case "BYLEX" where !byScoreCommand: throw CommandError("ERR BYLEX is not supported by Ferrite")
            case "REV" where !byScoreCommand: reverse = true
            case "WITHSCORES": withScores = true
            case "LIMIT":
                guard index + 2 < r.count else { throw CommandError.syntax }
                guard let offset = RESPRequestDecoder.integer(r[index + 1][...]), let count = RESPRequestDecoder.integer(r[index + 2][...]) else {
                    throw CommandError.notInteger
                }
                limit = (offset, count)
                index += 2
            default: throw CommandError.syntax
            }
            index += 1
        }
        if limit != nil && !byScore {
            throw CommandError("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX")
        }
        var members: [(member: [UInt8], score: Double)] = []
        if byScore {
            // ZRANGE ... BYSCORE REV takes max then min.
            let (low, high) = reverse ? (try Self.scoreBound(r[3]), try Self.scoreBound(r[2])) : (try Self.scoreBound(r[2]), try Self.scoreBound(r[3]))
            guard let set = try keyspace.sortedSet(r[1]) else { return .array([]) }
            var skip = max(limit?.offset ?? 0, 0)
            let wanted = (limit?.count).map { $0 < 0 ? Int.max : $0 } ?? Int.max
            if limit.map({ $0.offset < 0 }) == true { return .array([]) }
            let order = set.order
            func inRange(_ score: Double) -> (below: Bool, above: Bool) {
                (score < low.0 || (low.exclusive && score == low.0), score > high.0 || (high.exclusive && score == high.0))
            }
            if !reverse {
                var position = order.lowerBound(ScoredMember(score: low.0, member: []))
                while position != order.endIndex && members.count < wanted {
                    let key = order[position].key
                    let range = inRange(key.score)
                    if range.above { break }
                    if !range.below {
                        if skip > 0 { skip -= 1 } else { members.append((key.member, key.score)) }
                    }
                    position = order.index(after: position)
                }
            } else {
                var position = order.endIndex
                while position != order.startIndex && members.count < wanted {
                    position = order.index(before: position)
                    let key = order[position].key
                    let range = inRange(key.score)
                    if range.below { break }
                    if !range.above {
                        if skip > 0 { skip -= 1 } else { members.append((key.member, key.score)) }
                    }
                }
            }
        } else {
            guard let start = RESPRequestDecoder.integer(r[2][...]), let stop = RESPRequestDecoder.integer(r[3][...]) else {
                throw CommandError.notInteger
            }
            guard let set = try keyspace.sortedSet(r[1]) else { return .array([]) }
            let count = set.count
            var first = start < 0 ? max(count + start, 0) : start
            let last = stop < 0 ? count + stop : min(stop, count - 1)
            guard first <= last, first < count else { return .array([]) }
            let order = set.order
            if !reverse {
                var position = order.startIndex
                var rank = 0
                while rank < first { position = order.index(after: position); rank += 1 }
                while rank <= last {
                    let key = order[position].key
                    members.append((key.member, key.score))
                    position = order.index(after: position)
                    rank += 1
                }
            } else {
                var position = order.endIndex
                var rank = -1
                while rank < last {
                    position = order.index(before: position)
                    rank += 1
                    if rank >= first {
                        let key = order[position].key
                        members.append((key.member, key.score))
                    }
                }
                first = 0
            }
        }
        if !withScores { return .array(members.map { .bulk($0.member) }) }
        if session.protocolVersion >= 3 {
            return .array(members.map { .array([.bulk($0.member), .double($0.score)]) })
        }
        return .array(members.flatMap { [.bulk($0.member), .double($0.score)] })
    }
}
