import FerriteTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real crashes of the real server: clients write while `ferrite serve` is SIGKILLed at random
/// moments and restarted on the same pool; every write that was acknowledged must be there, with
/// its value, after every restart.
@Suite(.serialized) struct ServerCrashTests {
    /// What the server acknowledged, across rounds.
    final class Ledger: @unchecked Sendable {
        private let lock = NSLock()
        private(set) var strings: [String: String] = [:]
        private(set) var fields: [String: [String: String]] = [:]
        /// Per counter: increments acknowledged, and sent (acknowledged or not).
        private(set) var counters: [String: (acknowledged: Int, sent: Int)] = [:]

        func record(_ body: (Ledger) -> Void) { lock.lock(); body(self); lock.unlock() }
        func setString(_ key: String, _ value: String) { strings[key] = value }
        func setField(_ key: String, _ field: String, _ value: String) { fields[key, default: [:]][field] = value }
        func sent(_ counter: String) { counters[counter, default: (0, 0)].sent += 1 }
        func acknowledged(_ counter: String) { counters[counter, default: (0, 0)].acknowledged += 1 }
    }

    /// One client: pipelined batches of SET, HSET and INCR until the connection dies.
    static func write(port: Int, writer: Int, round: Int, ledger: Ledger, stop: Atomic) {
        guard let client = try? RawClient(port: port, timeoutSeconds: 10) else { return }
        var index = 0
        while !stop.isSet {
            var batch: [UInt8] = []
            var planned: [(key: String, value: String)] = []
            for _ in 0..<8 {
                let key = "w\(writer):r\(round):\(index)", value = "v\(index)-\(round)"
                planned.append((key, value))
                batch += RawClient.encode(["SET", key, value])
                batch += RawClient.encode(["HSET", "hash\(writer)", "r\(round):\(index)", value])
                index += 1
            }
            batch += RawClient.encode(["INCR", "counter\(writer)"])
            ledger.record { $0.sent("counter\(writer)") }
            guard (try? client.send(batch)) != nil else { return }
            for (key, value) in planned {
                guard (try? client.read()) == .simple("OK"), case .integer = try? client.read() else { return }
                ledger.record { $0.setString(key, value); $0.setField("hash\(writer)", key.split(separator: ":", maxSplits: 1).last.map(String.init)!, value) }
            }
            guard case .integer = try? client.read() else { return }
            ledger.record { $0.acknowledged("counter\(writer)") }
        }
    }

    final class Atomic: @unchecked Sendable {
        private let lock = NSLock()
        private var value = false
        var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
        func set() { lock.lock(); value = true; lock.unlock() }
    }

    /// Checks every acknowledged write against a freshly restarted server.
    static func verify(port: Int, ledger: Ledger) throws {
        let client = try RawClient(port: port)
        let keys = Array(ledger.strings.keys)
        var start = 0
        while start < keys.count {
            let chunk = Array(keys[start..<min(start + 500, keys.count)])
            guard case .array(let values) = try client.call(["MGET"] + chunk) else { throw ServerTestError("MGET failed") }
            for (key, value) in zip(chunk, values) where value != .bulk(ledger.strings[key]!) {
                Issue.record("acknowledged SET \(key) = \(ledger.strings[key]!) lost: \(value)")
            }
            start += chunk.count
        }
        for (key, fields) in ledger.fields {
            guard case .array(let flat) = try client.call("HGETALL", key) else { throw ServerTestError("HGETALL failed") }
            var stored: [String: String] = [:]
            for pair in stride(from: 0, to: flat.count - 1, by: 2) {
                if case .bulk(let field) = flat[pair], case .bulk(let value) = flat[pair + 1] { stored[field] = value }
            }
            for (field, value) in fields where stored[field] != value {
                Issue.record("acknowledged HSET \(key) \(field) lost: \(stored[field] ?? "nil")")
            }
        }
        for (counter, counts) in ledger.counters {
            let reply = try client.call("GET", counter)
            let value = if case .bulk(let text) = reply { Int(text) ?? -1 } else { 0 }
            #expect(value >= counts.acknowledged && value <= counts.sent, "\(counter): \(value), acknowledged \(counts.acknowledged), sent \(counts.sent)")
        }
    }

    /// `storage-normal`: storage mode with `--sync normal`, whose replies wait for the log write
    /// only: a killed process (not a power loss) still loses nothing acknowledged.
    @Test(arguments: ["storage", "memory", "storage-normal"])
    func killedServerLosesNoAcknowledgedWrite(mode: String) throws {
        let kills = Int(ProcessInfo.processInfo.environment["FERRITE_SERVER_KILLS"] ?? "") ?? ["storage": 12, "memory": 8][mode] ?? 6
        let directory = TemporaryDirectory(onDisk: mode != "memory")
        let pool = directory.file("crash.pool")
        let ledger = Ledger()
        var generator = SystemRandomNumberGenerator()
        let modeArguments = mode == "storage-normal" ? ["--durability", "storage", "--sync", "normal"] : ["--durability", mode]
        var server = try ServerProcess(pool: pool, extraArguments: modeArguments)
        for round in 0..<kills {
            let stop = Atomic()
            let done = DispatchGroup()
            for writer in 0..<3 {
                let port = server.port
                done.enter()
                Thread.detachNewThread {
                    Self.write(port: port, writer: writer, round: round, ledger: ledger, stop: stop)
                    done.leave()
                }
            }
            usleep(UInt32.random(in: 50_000...400_000, using: &generator))
            server.kill()
            stop.set()
            done.wait()
            server = try ServerProcess(pool: pool, port: nil)
            try Self.verify(port: server.port, ledger: ledger)
        }
        print("server crash test (\(mode)): \(kills) kills, \(ledger.strings.count) acknowledged SETs, all present")
        #expect(ledger.strings.count > kills * 10, "the writers made progress")
        #expect(server.terminate() == 0)
    }
}
