import FerriteHeap
import FerriteTestSupport
import Foundation
import Testing
@testable import FerriteServer

/// The command engine on a real pool, without networking.
@Suite struct CommandEngineTests {
    final class Fixture {
        let directory = TemporaryDirectory()
        var engine: CommandEngine
        var session = Session(id: 1, isAuthenticated: true)
        var configuration = ServerConfiguration()

        init(durability: Durability = .memory, password: String? = nil, logCapacity: Int = 64 << 20, maximumPoolBytes: Int = 1 << 30) throws {
            configuration.poolPath = directory.file("engine.pool")
            configuration.logCapacity = logCapacity
            configuration.durability = durability
            configuration.maximumPoolBytes = maximumPoolBytes
            configuration.password = password
            engine = try CommandEngine(heap: try FerriteServer.openPool(configuration), configuration: configuration)
            session = Session(id: 1, isAuthenticated: password == nil)
        }

        @discardableResult
        func run(_ arguments: String...) -> RESPReply { run(arguments) }

        func run(_ arguments: [String]) -> RESPReply {
            engine.execute(arguments.map { Array($0.utf8) }, session: &session)
        }

        /// Closes and reopens the pool.
        func reopen() throws {
            engine.stopReaper()
            engine.heap.close()
            engine = try CommandEngine(heap: try FerriteServer.openPool(configuration), configuration: configuration)
        }
    }

    @Test func stringCommandsAnswerAsRedis() throws {
        let f = try Fixture()
        #expect(f.run("SET", "k", "v") == .ok)
        #expect(f.run("get", "k") == .bulk("v"))
        #expect(f.run("GET", "nope") == .null)
        #expect(f.run("SET", "k", "w", "NX") == .null)
        #expect(f.run("SET", "k", "w", "XX", "GET") == .bulk("v"))
        #expect(f.run("SET", "k", "w", "NX", "XX") == .error("ERR syntax error"))
        #expect(f.run("SETNX", "k", "x") == .integer(0))
        #expect(f.run("STRLEN", "k") == .integer(1))
        #expect(f.run("INCR", "k") == .error("ERR value is not an integer or out of range"))
        #expect(f.run("INCRBY", "n", "x") == .error("ERR value is not an integer or out of range"))
        #expect(f.run("INCRBY", "n", "-5") == .integer(-5))
        #expect(f.run("DECRBY", "n", "5") == .integer(-10))
        #expect(f.run("SET", "max", String(Int64.max)) == .ok)
        #expect(f.run("INCR", "max") == .error("ERR increment or decrement would overflow"))
        #expect(f.run("MSET", "a", "1", "b") == .error("ERR wrong number of arguments for 'mset' command"))
        #expect(f.run("MSET", "a", "1", "b", "2") == .ok)
        #expect(f.run("MGET", "a", "nope", "b") == .array([.bulk("1"), .null, .bulk("2")]))
        #expect(f.run("EXISTS", "a", "a", "nope") == .integer(2))
        #expect(f.run("DEL", "a", "b", "nope") == .integer(2))
        #expect(f.run("DBSIZE") == .integer(3))
        #expect(f.run("TYPE", "k") == .simple("string"))
    }

    @Test func wrongTypesAndArityAreErrorsThatChangeNothing() throws {
        let f = try Fixture()
        f.run("HSET", "h", "f", "v")
        #expect(f.run("GET", "h") == .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
        #expect(f.run("INCR", "h") == .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
        #expect(f.run("ZADD", "h", "1", "m") == .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
        #expect(f.run("SET", "h", "x", "GET") == .error("WRONGTYPE Operation against a key holding the wrong kind of value"))
        #expect(f.run("HGET", "h", "f") == .bulk("v"))
        #expect(f.run("GET") == .error("ERR wrong number of arguments for 'get' command"))
        #expect(f.run("HSET", "h", "f") == .error("ERR wrong number of arguments for 'hset' command"))
        #expect(f.run("HSET", "h", "f", "v", "g") == .error("ERR wrong number of arguments for 'hset' command"))
        guard case .error(let message) = f.run("FROB", "a", "b") else { Issue.record("no error"); return }
        #expect(message == "ERR unknown command 'FROB', with args beginning with: 'a' 'b'")
        #expect(f.run("SET", "k", "v", "EX", "10") == .error("ERR Ferrite does not support key expiry (EX): keys persist until deleted"))
    }

    @Test func hashAndSortedSetCommandsAnswerAsRedis() throws {
        let f = try Fixture()
        #expect(f.run("HSET", "h", "a", "1", "b", "2") == .integer(2))
        #expect(f.run("HMSET", "h", "a", "3") == .ok)
        #expect(f.run("HMGET", "h", "a", "x", "b") == .array([.bulk("3"), .null, .bulk("2")]))
        #expect(f.run("HLEN", "h") == .integer(2))
        #expect(f.run("HDEL", "h", "a", "b", "c") == .integer(2))
        #expect(f.run("EXISTS", "h") == .integer(0))
        #expect(f.run("ZADD", "z", "2", "b", "1", "a", "3", "c", "-inf", "m", "+inf", "p") == .integer(5))
        #expect(f.run("ZRANGE", "z", "0", "-1") == .array(["m", "a", "b", "c", "p"].map { .bulk($0) }))
        #expect(f.run("ZRANGE", "z", "-2", "-1", "WITHSCORES") == .array([.bulk("c"), .double(3), .bulk("p"), .double(.infinity)]))
        #expect(f.run("ZRANGEBYSCORE", "z", "(1", "3") == .array([.bulk("b"), .bulk("c")]))
        #expect(f.run("ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "2") == .array([.bulk("a"), .bulk("b")]))
        #expect(f.run("ZRANGE", "z", "3", "1", "BYSCORE", "REV") == .array([.bulk("c"), .bulk("b"), .bulk("a")]))
        #expect(f.run("ZRANGE", "z", "0", "1", "LIMIT", "0", "1") == .error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"))
        #expect(f.run("ZADD", "z", "XX", "NX", "1", "a") == .error("ERR XX and NX options at the same time are not compatible"))
        #expect(f.run("ZADD", "z", "nan", "a") == .error("ERR value is not a valid float"))
        #expect(f.run("ZADD", "z", "GT", "0", "a") == .integer(0))
        #expect(f.run("ZSCORE", "z", "a") == .double(1))
        #expect(f.run("ZADD", "z", "INCR", "2", "a") == .double(3))
        #expect(f.run("ZADD", "inf", "+inf", "a") == .integer(1))
        #expect(f.run("ZADD", "inf", "INCR", "-inf", "a") == .error("ERR resulting score is not a number (NaN)"))
        #expect(f.run("ZADD", "fresh", "INCR", "nan", "a") == .error("ERR value is not a valid float"))
        #expect(f.run("EXISTS", "fresh") == .integer(0))
        #expect(f.run("DEL", "inf") == .integer(1))
        #expect(f.run("ZREM", "z", "a", "b", "q") == .integer(2))
        #expect(f.run("ZCARD", "z") == .integer(3))
        #expect(f.run("ZREM", "z", "c", "m", "p") == .integer(3))
        #expect(f.run("TYPE", "z") == .simple("none"))
    }

    @Test func multiExecIsAtomicAndReportsErrorsAsRedis() throws {
        let f = try Fixture()
        #expect(f.run("MULTI") == .ok)
        #expect(f.run("SET", "a", "1") == .simple("QUEUED"))
        #expect(f.run("INCR", "a") == .simple("QUEUED"))
        #expect(f.run("HSET", "a", "f", "v") == .simple("QUEUED"))
        #expect(f.run("MULTI") == .error("ERR MULTI calls can not be nested"))
        #expect(f.run("EXEC") == .array([.ok, .integer(2), .error("WRONGTYPE Operation against a key holding the wrong kind of value")]))
        #expect(f.run("GET", "a") == .bulk("2"))
        #expect(f.run("MULTI") == .ok)
        #expect(f.run("SET", "b", "1") == .simple("QUEUED"))
        #expect(f.run("NOSUCH") == .error("ERR unknown command 'NOSUCH', with args beginning with: "))
        #expect(f.run("EXEC") == .error("EXECABORT Transaction discarded because of previous errors."))
        #expect(f.run("EXISTS", "b") == .integer(0))
        #expect(f.run("DISCARD") == .error("ERR DISCARD without MULTI"))
        #expect(f.run("EXEC") == .error("ERR EXEC without MULTI"))
    }

    @Test func authGuardsEverythingButAuthHelloAndQuit() throws {
        let f = try Fixture(password: "s3cret")
        #expect(f.run("GET", "a") == .error("NOAUTH Authentication required."))
        #expect(f.run("AUTH", "nope") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(f.run("AUTH", "s3cret") == .ok)
        #expect(f.run("GET", "a") == .null)
        let g = try Fixture()
        #expect(g.run("AUTH", "x") == .error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"))
    }

    @Test func helloSwitchesToRESP3() throws {
        let f = try Fixture()
        guard case .map(let fields) = f.run("HELLO", "3") else { Issue.record("HELLO did not reply a map"); return }
        #expect(fields.contains { $0.0 == .bulk("proto") && $0.1 == .integer(3) })
        #expect(f.session.protocolVersion == 3)
        #expect(f.run("HELLO", "4") == .error("NOPROTO unsupported protocol version"))
    }

    /// SCAN returns every key present throughout, while the table grows under it.
    @Test func scanReturnsEveryKeyWhileTheTableGrows() throws {
        let f = try Fixture()
        let original = Set((0..<2000).map { "k\($0)" })
        for key in original { f.run("SET", key, "v") }
        var seen = Set<String>()
        var cursor = "0"
        var added = 0
        repeat {
            guard case .array(let page) = f.run("SCAN", cursor, "COUNT", "13"), case .bulk(let next) = page[0], case .array(let keys) = page[1] else {
                Issue.record("bad SCAN reply"); return
            }
            for case .bulk(let key) in keys { seen.insert(String(decoding: key, as: UTF8.self)) }
            cursor = String(decoding: next, as: UTF8.self)
            // Grow the table between pages (several doublings in all).
            for _ in 0..<40 { f.run("SET", "new\(added)", "v"); added += 1 }
        } while cursor != "0"
        #expect(original.isSubset(of: seen), "missing \(original.subtracting(seen).count) keys")
        guard case .array(let matched) = f.run("SCAN", "0", "MATCH", "k1?", "COUNT", "100000") else { return }
        guard case .array(let keys) = matched[1] else { return }
        let names = keys.compactMap { reply -> String? in if case .bulk(let key) = reply { String(decoding: key, as: UTF8.self) } else { nil } }
        #expect(Set(names) == Set((10..<20).map { "k\($0)" }))
    }

    /// FLUSHDB and the deletion of a large hash free their storage in the background, a batch
    /// per transaction, and leave no block behind (the verifier walks the pool).
    @Test func droppedValuesAreFreedInBatchesWithoutLeaks() throws {
        let f = try Fixture()
        for i in 0..<3000 { f.run("SET", "s\(i)", String(repeating: "x", count: i % 50)) }
        for i in 0..<1500 { f.run("HSET", "big", "f\(i)", "v\(i)") }
        for i in 0..<600 { f.run("ZADD", "zbig", String(i), "m\(i)") }
        #expect(f.run("DEL", "big") == .integer(1))
        #expect(f.engine.keyspace.trash.count == 1)
        #expect(f.run("FLUSHDB") == .ok)
        #expect(f.run("DBSIZE") == .integer(0))
        var steps = 0
        while f.engine.reapStep() { steps += 1 }
        #expect(steps > 10, "freed in batches")
        #expect(f.engine.keyspace.trash.isEmpty)
        let report = f.engine.heap.verify()
        #expect(report.isValid, "\(report)")
        #expect(report.unreachableBlocks.isEmpty, "leaked: \(report)")
    }

    /// Commits that do not wait for the disk (as the server runs them) on a small log: the log
    /// fills many times over, checkpoints keep up (none runs under the keyspace lock), and every
    /// write is there after reopening.
    @Test func deferredCommitsOnASmallLogCheckpointAndKeepEveryWrite() throws {
        let f = try Fixture(durability: .storage, logCapacity: 256 << 10)
        let value = String(repeating: "v", count: 300)
        for batch in 0..<200 {
            let heap = f.engine.heap
            heap.deferringDurability {
                for i in 0..<20 { f.run("SET", "k\(batch * 20 + i)", value + String(i)) }
            }
            heap.waitUntilDurable(heap.commitPoint)
        }
        let statistics = try #require(f.engine.heap.storageStatistics)
        #expect(statistics.checkpoints > 5, "the log filled \(statistics.checkpoints) times")
        try f.reopen()
        #expect(f.run("DBSIZE") == .integer(4000))
        #expect(f.run("GET", "k3999") == .bulk(value + "19"))
        #expect(f.run("GET", "k0") == .bulk(value + "0"))
    }

    /// A loop iteration's requests run as one transaction; when it cannot commit (a full pool),
    /// they run again one by one: only the request that cannot fit fails, and nothing is lost.
    @Test func aGroupThatFillsThePoolFallsBackToOneByOne() throws {
        let f = try Fixture(maximumPoolBytes: 24 << 20)
        let huge = [UInt8](repeating: 7, count: 30 << 20)
        var sessions = [f.session, f.session]
        let replies = f.engine.executeGroup([
            [[Array("SET".utf8), Array("a".utf8), Array("1".utf8)], [Array("SET".utf8), Array("huge".utf8), huge]],
            [[Array("SET".utf8), Array("b".utf8), Array("2".utf8)], [Array("INCR".utf8), Array("a".utf8)]],
        ], sessions: &sessions)
        #expect(replies[0][0] == .ok)
        guard case .error(let message) = replies[0][1] else { Issue.record("the huge SET did not fail"); return }
        #expect(message.hasPrefix("OOM"))
        #expect(replies[1] == [.ok, .integer(2)])
        #expect(f.run("MGET", "a", "b", "huge") == .array([.bulk("2"), .bulk("2"), .null]))
    }

    @Test(arguments: [Durability.memory, .storage])
    func dataSurvivesReopening(durability: Durability) throws {
        let f = try Fixture(durability: durability)
        f.run("SET", "a", "1")
        f.run("HSET", "h", "f", "v")
        f.run("ZADD", "z", "1.5", "m")
        f.run("FLUSHDB")
        f.run("SET", "b", "2")
        f.run("HSET", "h2", "f", "v")
        f.run("ZADD", "z2", "2.5", "m")
        try f.reopen()
        #expect(f.run("MGET", "a", "b") == .array([.null, .bulk("2")]))
        #expect(f.run("HGET", "h2", "f") == .bulk("v"))
        #expect(f.run("ZSCORE", "z2", "m") == .double(2.5))
        #expect(f.run("DBSIZE") == .integer(3))
    }
}
