import FerriteTestSupport
import Foundation
import Testing
@testable import FerriteServer
#if canImport(Glibc)
import Glibc
#endif

/// The real `ferrite serve` process, driven by real clients: redis-cli, redis-py, and raw bytes.
@Suite(.serialized) struct ServerIntegrationTests {
    static let redisCLIAvailable = RedisClients.redisCLI != nil || RedisClients.required
    static let redisPyAvailable = RedisClients.redisPy || RedisClients.required

    @Test(.enabled(if: redisPyAvailable, "redis-py not installed (pip install redis; .ci/run does)"), arguments: [nil, "s3cret"])
    func redisPyDrivesEveryCommand(password: String?) throws {
        guard RedisClients.redisPy, let python = RedisClients.python else {
            Issue.record("redis-py is required (FERRITE_REQUIRE_CLIENTS) but `python3 -c 'import redis'` fails")
            return
        }
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("py.pool"), extraArguments: password.map { ["--requirepass", $0] } ?? [])
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Clients/redis_py_suite.py").path
        let result = try RedisClients.run(python, [script, String(server.port)] + (password.map { [$0] } ?? []))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("checks passed"), "\(result.output)")
        print(result.output.split(separator: "\n").last.map(String.init) ?? "")
        #expect(server.terminate() == 0)
    }

    /// redis-cli, one command per invocation, with the output redis-cli prints for Redis.
    @Test(.enabled(if: redisCLIAvailable, "redis-cli not installed (apt-get install redis-tools; .ci/run does)"))
    func redisCLIGetsRedisReplies() throws {
        guard let cli = RedisClients.redisCLI else {
            Issue.record("redis-cli is required (FERRITE_REQUIRE_CLIENTS) but not found")
            return
        }
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("cli.pool"))
        let cases: [([String], String)] = [
            (["PING"], "PONG"),
            (["ECHO", "hello world"], "hello world"),
            (["SELECT", "0"], "OK"),
            (["SET", "greeting", "hi"], "OK"),
            (["SET", "greeting", "x", "NX"], ""),
            (["SET", "greeting", "hey", "XX"], "OK"),
            (["GET", "greeting"], "hey"),
            (["GET", "missing"], ""),
            (["MSET", "a", "1", "b", "2"], "OK"),
            (["MGET", "a", "b", "missing"], "1\n2\n"),
            (["INCR", "counter"], "1"),
            (["INCRBY", "counter", "9"], "10"),
            (["EXISTS", "a", "b", "missing"], "2"),
            (["DEL", "a", "missing"], "1"),
            (["HSET", "user", "name", "ada", "born", "1815"], "2"),
            (["HMSET", "user", "lang", "swift"], "OK"),
            (["HGET", "user", "name"], "ada"),
            (["HMGET", "user", "born", "nope"], "1815\n"),
            (["HLEN", "user"], "3"),
            (["HDEL", "user", "lang"], "1"),
            (["ZADD", "scores", "1", "one", "2", "two", "3", "three"], "3"),
            (["ZCARD", "scores"], "3"),
            (["ZRANGE", "scores", "0", "-1"], "one\ntwo\nthree"),
            (["ZRANGEBYSCORE", "scores", "2", "+inf", "WITHSCORES"], "two\n2\nthree\n3"),
            (["ZRANGE", "scores", "(1", "3", "BYSCORE", "LIMIT", "0", "1"], "two"),
            (["ZREM", "scores", "two"], "1"),
            (["DBSIZE"], "5"),
            (["GET", "user"], "WRONGTYPE Operation against a key holding the wrong kind of value"),
            (["INCR", "greeting"], "ERR value is not an integer or out of range"),
            (["GET"], "ERR wrong number of arguments for 'get' command"),
            (["NOSUCHCOMMAND"], "ERR unknown command 'NOSUCHCOMMAND', with args beginning with: "),
            (["COMMAND", "COUNT"], String(CommandSpec.table.count)),
            (["CONFIG", "GET", "appendonly"], "appendonly\nyes"),
            (["FLUSHDB"], "OK"),
            (["DBSIZE"], "0"),
        ]
        for (arguments, expected) in cases {
            let result = try RedisClients.run(cli, ["-p", String(server.port)] + arguments)
            #expect(result.output.trimmingCharacters(in: .newlines) == expected.trimmingCharacters(in: .newlines), "redis-cli \(arguments.joined(separator: " "))")
        }
        // Pipelined input (redis-cli --pipe style through stdin), then SCAN and INFO.
        let many = (0..<500).map { "SET key:\($0) \($0)" }.joined(separator: "\n") + "\n"
        let piped = try RedisClients.run(cli, ["-p", String(server.port)], input: many)
        #expect(piped.output.components(separatedBy: "OK").count - 1 == 500)
        let scanned = try RedisClients.run(cli, ["-p", String(server.port), "--scan", "--pattern", "key:1*"])
        #expect(Set(scanned.output.split(separator: "\n").map(String.init)) == Set((0..<500).map { "key:\($0)" }.filter { $0.hasPrefix("key:1") }))
        let info = try RedisClients.run(cli, ["-p", String(server.port), "INFO"])
        for field in ["durability_mode:storage", "db0:keys=500", "pool_used_bytes:", "log_syncs:", "total_commits:"] {
            #expect(info.output.contains(field), "INFO lacks \(field)")
        }
        #expect(server.terminate() == 0)
    }

    /// Malformed framing gets an error and a closed connection; the server keeps serving others
    /// and loses nothing acknowledged.
    @Test func malformedInputGetsAnErrorAndTheServerKeepsServing() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("bad.pool"), extraArguments: ["--max-bulk-bytes", "4096"])
        let good = try RawClient(port: server.port)
        #expect(try good.call("SET", "kept", "yes") == .simple("OK"))
        let inputs: [(String, String)] = [
            ("*1\r\n:12\r\n", "ERR Protocol error: expected '$', got ':'"),
            ("*-\r\n", "ERR Protocol error: invalid multibulk length"),
            ("*1\r\n$5000\r\n", "ERR Protocol error: invalid bulk length"),
            ("SET \"unclosed\r\n", "ERR Protocol error: unbalanced quotes in request"),
            ("*2\r\n$3\r\nGET\r\n$1\r\nkXY", "ERR Protocol error: bulk string not followed by CRLF"),
        ]
        for (input, error) in inputs {
            let bad = try RawClient(port: server.port)
            try bad.send(Array(input.utf8))
            #expect(try bad.read() == .error(error), "\(input.debugDescription)")
            #expect(bad.isClosedByPeer(), "the connection closes after \(input.debugDescription)")
        }
        // Junk bytes of every kind, then a request on a fresh connection.
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let junk = RawClient.encode(["SET", "x", "y"]) + (0..<Int.random(in: 1...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let client = try RawClient(port: server.port)
            try client.send(junk)
            _ = client.isClosedByPeer()
        }
        #expect(try good.call("GET", "kept") == .bulk("yes"))
        #expect(try good.call("PING") == .simple("PONG"))
        // Inline commands work too (telnet).
        try good.send(Array("GET kept\r\n".utf8))
        #expect(try good.read() == .bulk("yes"))
        #expect(server.terminate() == 0)
    }

    /// Many requests in one write: replies come back in order.
    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("pipe.pool"))
        let client = try RawClient(port: server.port)
        var batch: [UInt8] = []
        for i in 0..<2000 { batch += RawClient.encode(["SET", "k\(i)", "v\(i)"]) + RawClient.encode(["INCR", "n"]) + RawClient.encode(["GET", "k\(i)"]) }
        try client.send(batch)
        for i in 0..<2000 {
            #expect(try client.read() == .simple("OK"))
            #expect(try client.read() == .integer(i + 1))
            #expect(try client.read() == .bulk("v\(i)"))
        }
        #expect(server.terminate() == 0)
    }

    /// QUIT answers OK and closes the connection; requests pipelined after it do not run.
    @Test func quitEndsTheConnectionAndWhatFollowsIt() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("quit.pool"))
        let client = try RawClient(port: server.port)
        try client.send(RawClient.encode(["SET", "before", "1"]) + RawClient.encode(["QUIT"]) + RawClient.encode(["SET", "after", "1"]))
        #expect(try client.read() == .simple("OK"))
        #expect(try client.read() == .simple("OK"))
        #expect(client.isClosedByPeer())
        #expect(try RawClient(port: server.port).call("MGET", "before", "after") == .array([.bulk("1"), .null]))
        #expect(server.terminate() == 0)
    }

    /// Clients that each wait for their reply still share syncs: one `fdatasync` acknowledges the
    /// writes of many connections (storage mode's group commit through deferred durability).
    @Test func concurrentClientsShareSyncs() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("group.pool"))
        let port = server.port
        // Threads of their own (concurrentPerform would run only one per core).
        let done = DispatchGroup()
        for client in 0..<16 {
            done.enter()
            Thread.detachNewThread {
                if let connection = try? RawClient(port: port) {
                    for i in 0..<150 { _ = try? connection.call("SET", "c\(client):\(i)", "value") }
                }
                done.leave()
            }
        }
        done.wait()
        guard case .bulk(let info) = try RawClient(port: port).call("INFO", "all") else { Issue.record("no INFO"); return }
        func field(_ name: String) -> Int {
            info.split(separator: "\r\n").first { $0.hasPrefix(name + ":") }.flatMap { Int($0.dropFirst(name.count + 1)) } ?? -1
        }
        let commits = field("total_commits"), syncs = field("log_syncs")
        #expect(commits == 16 * 150)
        #expect(syncs > 0 && syncs * 2 < commits, "\(syncs) syncs for \(commits) commits")
        print("server group commit: \(commits) commits from 16 clients in \(syncs) log syncs")
        #expect(server.terminate() == 0)
    }

    @Test func connectionLimitAndAuthAreEnforced() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let server = try ServerProcess(pool: directory.file("limits.pool"), extraArguments: ["--maxclients", "2", "--requirepass", "pw"])
        let first = try RawClient(port: server.port), second = try RawClient(port: server.port)
        #expect(try first.call("GET", "a") == .error("NOAUTH Authentication required."))
        #expect(try first.call("AUTH", "wrong") == .error("WRONGPASS invalid username-password pair or user is disabled."))
        #expect(try first.call("AUTH", "pw") == .simple("OK"))
        #expect(try first.call("SET", "a", "1") == .simple("OK"))
        let third = try RawClient(port: server.port)
        #expect(try third.read() == .error("ERR max number of clients reached"))
        #expect(third.isClosedByPeer())
        #expect(try second.call("AUTH", "default", "pw") == .simple("OK"))
        #expect(try second.call("GET", "a") == .bulk("1"))
        #expect(server.terminate() == 0)
    }

    /// SIGTERM closes the pool cleanly; the next start finds every acknowledged write. Memory
    /// mode too, with the pool on /dev/shm.
    @Test(arguments: ["storage", "memory"])
    func restartKeepsAcknowledgedData(mode: String) throws {
        let directory = TemporaryDirectory(onDisk: mode == "storage")
        let pool = directory.file("restart.pool")
        var server = try ServerProcess(pool: pool, extraArguments: ["--durability", mode])
        #expect(server.output.contains("durability \(mode)"))
        var client = try RawClient(port: server.port)
        for i in 0..<300 { _ = try client.call("HSET", "h\(i % 7)", "f\(i)", "v\(i)") }
        _ = try client.call("ZADD", "z", "1.5", "a", "-2", "b")
        #expect(server.terminate() == 0)
        server = try ServerProcess(pool: pool, port: server.port)
        client = try RawClient(port: server.port)
        #expect(try client.call("DBSIZE") == .integer(8))
        #expect(try client.call("HGET", "h5", "f299") == .bulk("v299"))
        #expect(try client.call("ZRANGE", "z", "0", "-1") == .array([.bulk("b"), .bulk("a")]))
        #expect(server.terminate() == 0)
    }

    /// A second server on the same pool is refused with a clear message; the first keeps going.
    @Test func aPoolServedTwiceIsRefused() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let pool = directory.file("twice.pool")
        let server = try ServerProcess(pool: pool)
        let second = try RedisClients.run(ServerProcess.binary, ["serve", "--pool", pool, "--port", String(ServerProcess.freePort()), "--metrics-port", "0"])
        #expect(second.status != 0)
        #expect(second.output.contains("already open in another process"), "\(second.output)")
        #expect(try RawClient(port: server.port).call("PING") == .simple("PONG"))
        #expect(server.terminate() == 0)
    }

    /// The Prometheus endpoint answers with the server's metrics.
    @Test func metricsEndpointServesPrometheusText() throws {
        let directory = TemporaryDirectory(onDisk: true)
        let metricsPort = ServerProcess.freePort()
        let server = try ServerProcess(pool: directory.file("metrics.pool"), extraArguments: ["--metrics-port", String(metricsPort)])
        _ = try RawClient(port: server.port).call("SET", "a", "b")
        let http = try RawClient(port: metricsPort)
        try http.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        var text = ""
        while true {
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(http.fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            text += String(decoding: chunk[0..<n], as: UTF8.self)
        }
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        for metric in ["ferrite_commands_total", "ferrite_keys 1", "ferrite_log_syncs", "ferrite_pool_used_bytes"] {
            #expect(text.contains(metric), "metrics lack \(metric)")
        }
        #expect(server.terminate() == 0)
    }
}
