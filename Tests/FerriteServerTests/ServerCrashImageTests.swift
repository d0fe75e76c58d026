import FerriteCollections
import FerriteHeap
import FerriteMedium
import FerriteTestSupport
import Foundation
import Synchronization
import Testing
@testable import FerriteServer

/// Simulated power failures under the server's commands, run as the server runs them: commits
/// that do not wait for the disk (one per command, or one for a group of requests), replies
/// (acknowledgements) only once their commit point is durable. At every sync of the log or the
/// pool file, crash images are recovered, a command engine opened on them, and its keyspace
/// compared with what was acknowledged.
@Suite struct ServerCrashImageTests {
    /// What a client can observe of the keyspace.
    struct Model: Equatable, CustomStringConvertible {
        var strings: [String: String] = [:]
        var hashes: [String: [String: String]] = [:]
        var sortedSets: [String: [String: Double]] = [:]
        var description: String { "\(strings.count) strings, \(hashes.count) hashes, \(sortedSets.count) sorted sets" }

        /// Applies one command (only those the test sends, on keys of the right types).
        mutating func apply(_ command: [String]) {
            switch command[0] {
            case "SET": strings[command[1]] = command[2]
            case "INCR": strings[command[1]] = String((Int(strings[command[1]] ?? "0") ?? 0) + 1)
            case "DEL":
                for key in command.dropFirst() { strings[key] = nil; hashes[key] = nil; sortedSets[key] = nil }
            case "HSET": hashes[command[1], default: [:]][command[2]] = command[3]
            case "HDEL":
                hashes[command[1]]?[command[2]] = nil
                if hashes[command[1]]?.isEmpty == true { hashes[command[1]] = nil }
            case "ZADD": sortedSets[command[1], default: [:]][command[3]] = Double(command[2])!
            case "ZREM":
                sortedSets[command[1]]?[command[2]] = nil
                if sortedSets[command[1]]?.isEmpty == true { sortedSets[command[1]] = nil }
            case "FLUSHDB": self = Model()
            default: break
            }
        }

        /// The keyspace of an engine.
        init(reading engine: CommandEngine) {
            for (key, entry) in engine.keyspace.keys {
                let name = String(decoding: key, as: UTF8.self)
                let handle = ObjectHandle(unchecked: entry.reference, in: engine.heap)
                switch entry.kind {
                case .string: strings[name] = String(decoding: PersistentBytes(handle: handle).array, as: UTF8.self)
                case .hash:
                    hashes[name] = Dictionary(uniqueKeysWithValues: HashValue(handle: handle).map {
                        (String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self))
                    })
                case .sortedSet:
                    sortedSets[name] = Dictionary(uniqueKeysWithValues: SortedSetObject(handle: handle).scores.map {
                        (String(decoding: $0.key, as: UTF8.self), $0.value)
                    })
                default: strings[name] = "?"
                }
            }
        }

        init() {}

        /// The part of the keyspace whose keys start with `prefix`.
        func only(_ prefix: String) -> Model {
            var part = Model()
            part.strings = strings.filter { $0.key.hasPrefix(prefix) }
            part.hashes = hashes.filter { $0.key.hasPrefix(prefix) }
            part.sortedSets = sortedSets.filter { $0.key.hasPrefix(prefix) }
            return part
        }
    }

    /// One step: a few commands sent together (each its own transaction), or a MULTI/EXEC block
    /// (one transaction).
    /// Keys start with `prefix` (one per client thread); FLUSHDB only with `flush` (one client).
    static func step(_ rng: inout SeededGenerator, _ index: Int, prefix: String, flush: Bool) -> (commands: [[String]], atomic: Bool) {
        func command() -> [String] {
            let key = Int.random(in: 0..<4, using: &rng), field = Int.random(in: 0..<6, using: &rng)
            switch Int.random(in: 0..<(flush ? 100 : 97), using: &rng) {
            case 0..<25: return ["SET", "\(prefix)s\(key)", "v\(index)-\(String(repeating: "x", count: Int.random(in: 0..<300, using: &rng)))"]
            case 25..<35: return ["INCR", "\(prefix)n"]
            case 35..<55: return ["HSET", "\(prefix)h\(key)", "f\(field)", "v\(index)"]
            case 55..<62: return ["HDEL", "\(prefix)h\(key)", "f\(field)"]
            case 62..<80: return ["ZADD", "\(prefix)z\(key)", String(Double(Int.random(in: -50...50, using: &rng)) / 4), "m\(field)"]
            case 80..<87: return ["ZREM", "\(prefix)z\(key)", "m\(field)"]
            case 87..<97: return ["DEL", prefix + ["s", "h", "z"][field % 3] + "\(key)"]
            default: return ["FLUSHDB"]
            }
        }
        let count = Int.random(in: 1...(flush ? 4 : 12), using: &rng)
        return ((0..<count).map { _ in command() }, Int.random(in: 0..<5, using: &rng) == 0)
    }

    /// The acknowledged state, and the states the commands in flight may have left.
    struct Progress {
        var acknowledged = Model()
        var inFlight: [Model] = []
    }

    /// Runs `steps` steps on each of `threads` client threads (keys `c0:`, `c1:`...; FLUSHDB
    /// with one thread only), checking crash images at every sync.
    static func run(seed: UInt64, threads: Int, steps: Int, randomImagesPerSync: Int) throws -> (images: Int, failures: [String]) {
        let options = smallStorageOptions(maximumSize: 8 << 20, logCapacity: 128 << 10)
        let disk = SimulatedDisk()
        let heap = try openStorage(on: disk, options: options)
        let engine = try CommandEngine(heap: heap, configuration: ServerConfiguration())
        defer { heap.close() }
        try heap.checkpoint()  // the empty keyspace is durable
        let progress = Mutex([Progress](repeating: Progress(), count: threads))
        let outcome = Mutex((images: 0, failures: [String]()))
        let syncIndex = Mutex(0)
        disk.onSync = { disk, file in
            let n = syncIndex.withLock { $0 += 1; return $0 }
            var images = [disk.crashImage(.none)]
            for r in 0..<randomImagesPerSync { images.append(disk.crashImage(.random(seed: seed &* 7919 &+ UInt64(n) &* 31 &+ UInt64(r)))) }
            let now = progress.withLock { $0 }
            for (index, image) in images.enumerated() {
                var failure: String?
                do {
                    let recovered = try openStorageImage(image, options: options)
                    defer { recovered.close() }
                    let all = Model(reading: try CommandEngine(heap: recovered, configuration: ServerConfiguration()))
                    for (client, state) in now.enumerated() where failure == nil {
                        let found = all.only("c\(client):")
                        if found != state.acknowledged && !state.inFlight.contains(found) {
                            failure = "client \(client): recovered \(found), acknowledged \(state.acknowledged) (\(state.inFlight.count) in flight)"
                        }
                    }
                    let report = recovered.verify()
                    if failure == nil && !report.isValid { failure = "verifier: \(report)" }
                } catch {
                    failure = "recovery failed: \(error)"
                }
                outcome.withLock {
                    $0.images += 1
                    if let failure, $0.failures.count < 5 { $0.failures.append("sync \(n) of \(file), image \(index): \(failure)") }
                }
            }
        }
        let failuresOfClients = Mutex([String]())
        DispatchQueue.concurrentPerform(iterations: threads) { client in
            let prefix = "c\(client):"
            var rng = SeededGenerator(seed: seed &+ UInt64(client) &* 104_729)
            var model = Model()
            var session = Session(id: client + 1, isAuthenticated: true)
            for index in 0..<steps {
                let (commands, atomic) = step(&rng, index, prefix: prefix, flush: threads == 1)
                // What a crash may leave: any prefix of the step's commands (all or none in MULTI).
                var states: [Model] = []
                var next = model
                for command in commands {
                    next.apply(command)
                    if !atomic { states.append(next) }
                }
                if atomic { states = [next] }
                progress.withLock { $0[client].inFlight = states }
                let requests = (atomic ? [["MULTI"]] + commands + [["EXEC"]] : commands).map { $0.map { Array($0.utf8) } }
                var replies: [RESPReply] = []
                heap.deferringDurability {
                    if index % 3 == 0 {
                        // As the server runs a loop iteration's requests: one transaction for all.
                        var sessions = [session]
                        replies = engine.executeGroup([requests], sessions: &sessions)[0]
                        session = sessions[0]
                    } else {
                        for request in requests { replies.append(engine.execute(request, session: &session)) }
                    }
                }
                for reply in replies {
                    if case .error(let message) = reply { failuresOfClients.withLock { $0.append("client \(client), step \(index): \(message)") } }
                }
                // Acknowledge as the server does: the blocking wait, or the notification path.
                let point = heap.commitPoint
                if index % 2 == 0 {
                    heap.waitUntilDurable(point)
                } else {
                    let notified = DispatchSemaphore(value: 0)
                    if !heap.waitUntilDurable(point, unlessBusy: { notified.signal() }) { notified.wait() }
                }
                if !heap.isDurable(point) { failuresOfClients.withLock { $0.append("client \(client): acknowledged before durable") } }
                model = next
                progress.withLock { $0[client] = Progress(acknowledged: model) }
                if client == 0 && index % 7 == 0 { while engine.reapStep() {} }  // free what FLUSHDB and DEL dropped
                // Checkpoints now and then (besides the background ones), taken while the other
                // client's commits are appended but not yet synced.
                if index % 9 == 4 { try? heap.checkpoint() }
            }
        }
        disk.onSync = nil
        let live = Model(reading: engine)
        var failures = outcome.withLock { $0.failures } + failuresOfClients.withLock { $0 }
        let final = progress.withLock { $0 }
        for client in 0..<threads where live.only("c\(client):") != final[client].acknowledged {
            failures.append("client \(client): live keyspace differs from its model")
        }
        return (outcome.withLock { $0.images }, failures)
    }

    @Test("server commands with deferred durability: crash images at every sync hold every acknowledged write",
          arguments: [(41, 1), (42, 2)] as [(UInt64, Int)])
    func serverCrashImagesHoldEveryAcknowledgedWrite(seed: UInt64, threads: Int) throws {
        let result = try Self.run(seed: seed, threads: threads, steps: threads == 1 ? 400 : 250, randomImagesPerSync: 3)
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.images >= 1_000, "only \(result.images) crash images")
        print("server crash images checked (seed \(seed), \(threads) clients): \(result.images)")
    }
}
