import FerriteHeap
import Foundation
import Synchronization

/// Runs Redis commands against a persistent keyspace: dispatch, arity and authentication checks,
/// MULTI/EXEC, and the connection and server commands. Independent of networking (the tests drive
/// it directly).
///
/// Concurrency: readers share a lock, writers take it alone, and every write command is one heap
/// transaction (EXEC: one for all its commands), so each command is atomic, also across crashes.
/// Callers run batches inside ``Heap/deferringDurability(_:)`` and wait for
/// ``Heap/commitPoint`` before replying (see ``DurableReplies``).
public final class CommandEngine: @unchecked Sendable {
    public let heap: Heap
    let keyspace: Keyspace
    let lock = ReadWriteLock()
    let configuration: ServerConfiguration
    let statistics = ServerStatistics()
    private let startTime = Date()
    /// Wakes the reaper when values went to the trash.
    let trashSignal = DispatchSemaphore(value: 0)
    private let reaperState = Mutex<(running: Bool, stopping: Bool)>((false, false))
    private let reaperDone = DispatchSemaphore(value: 0)

    /// Opens the keyspace in `heap` (creating it in a new pool). ``startReaper()`` then resumes
    /// freeing what a previous run left in the trash.
    public init(heap: Heap, configuration: ServerConfiguration) throws {
        self.heap = heap
        self.configuration = configuration
        keyspace = try Keyspace(heap: heap)
    }

    deinit { stopReaper() }

    public var requiresPassword: Bool { configuration.password != nil }
    /// Keys in the keyspace.
    public var keyCount: Int { lock.withReadLock { keyspace.count } }

    // MARK: Dispatch

    /// Runs one request (its first element is the command name) and returns the reply.
    public func execute(_ request: [[UInt8]], session: inout Session) -> RESPReply {
        let name: String, spec: CommandSpec
        switch admit(request, &session) {
        case .reply(let reply): return reply
        case .run(let admittedName, let admittedSpec): (name, spec) = (admittedName, admittedSpec)
        }
        switch spec.access {
        case .none:
            return runControl(name, request, &session)
        case .read:
            return lock.withReadLock { Self.reply { try runData(name, request, session) } }
        case .write:
            // Never run a checkpoint under the lock (see Heap.makeLogRoomIfNeeded).
            heap.makeLogRoomIfNeeded()
            let (reply, trashGrew) = lock.withWriteLock {
                (runTransaction { () throws -> RESPReply in try runData(name, request, session) }, keyspace.trashGrew)
            }
            if trashGrew { trashSignal.signal() }
            return reply
        }
    }

    /// What becomes of a request before it runs.
    enum Admission {
        /// It runs: its lowercased name and its spec.
        case run(String, CommandSpec)
        /// It stops here with this reply: unknown, wrong arity, not authenticated, or queued.
        case reply(RESPReply)
    }

    /// The checks every request passes first (and MULTI's queueing).
    func admit(_ request: [[UInt8]], _ session: inout Session) -> Admission {
        guard !request.isEmpty else { return .reply(.error("ERR empty command")) }
        statistics.commands.add(1, ordering: .relaxed)
        let name = CommandSpec.name(of: request)
        guard let spec = CommandSpec.table[name] else {
            if session.queued != nil { session.queueFailed = true }
            let shown = request.dropFirst().prefix(8).map { "'\(Self.text($0).prefix(64))'" }.joined(separator: " ")
            return .reply(.error("ERR unknown command '\(Self.text(request[0]).prefix(128))', with args beginning with: \(shown)"))
        }
        guard spec.acceptsArgumentCount(request.count) else {
            if session.queued != nil { session.queueFailed = true }
            return .reply(.error("ERR wrong number of arguments for '\(name)' command"))
        }
        guard session.isAuthenticated || spec.beforeAuth else {
            if session.queued != nil { session.queueFailed = true }
            return .reply(.error("NOAUTH Authentication required."))
        }
        if session.queued != nil && !spec.controlsTransaction {
            session.queued!.append(request)
            return .reply(.simple("QUEUED"))
        }
        return .run(name, spec)
    }

    // MARK: The reaper

    /// Frees one batch of the trash in a transaction of its own; false once the trash is empty.
    /// Its commit does not wait for the disk: nothing is acknowledged by it.
    @discardableResult
    public func reapStep() -> Bool {
        heap.makeLogRoomIfNeeded()
        return lock.withWriteLock {
            keyspace.trashGrew = false
            do {
                return try heap.deferringDurability { try heap.transaction { try keyspace.reapStep() } }
            } catch {
                keyspace.reloadRoots()
                return false  // a full pool, say: the trash waits for the next signal
            }
        }
    }

    /// Starts the thread that empties the trash (FLUSHDB's old keyspace, large deleted values) a
    /// batch at a time, taking the lock briefly for each batch so that commands run in between.
    public func startReaper() {
        let started = reaperState.withLock { state -> Bool in
            guard !state.running else { return false }
            state.running = true
            return true
        }
        guard started else { return }
        let thread = Thread { [self] in
            while !reaperState.withLock({ $0.stopping }) {
                if !reapStep() { _ = trashSignal.wait(timeout: .now() + .seconds(1)) }
            }
            reaperDone.signal()
        }
        thread.name = "ferrite-reaper"
        thread.start()
    }

    /// Stops the reaper thread (the trash keeps what is left: the next open resumes it).
    public func stopReaper() {
        let running = reaperState.withLock { state -> Bool in
            state.stopping = true
            return state.running
        }
        guard running else { return }
        trashSignal.signal()
        reaperDone.wait()
        reaperState.withLock { $0 = (false, false) }
    }

    /// Runs `body` as one heap transaction (the caller holds the write lock); a command error
    /// rolls it back and becomes the reply, as does a heap error (a full pool).
    func runTransaction(_ body: () throws -> RESPReply) -> RESPReply {
        do {
            let reply = try heap.transaction(body)
            statistics.writes.add(1, ordering: .relaxed)
            return reply
        } catch {
            // Rolled back: a FLUSHDB in it may have replaced the keyspace in memory only.
            keyspace.reloadRoots()
            if let error = error as? CommandError { return .error(error.message) }
            if let error = error as? HeapError { return .error(Self.message(for: error)) }
            return .error("ERR \(error)")
        }
    }

    /// The reply of a read command: its result, or its error.
    private static func reply(_ body: () throws -> RESPReply) -> RESPReply {
        do { return try body() } catch let error as CommandError { return .error(error.message) } catch let error as HeapError {
            return .error(message(for: error))
        } catch { return .error("ERR \(error)") }
    }

    static func message(for error: HeapError) -> String {
        switch error {
        case .poolFull(let requested, let maximum):
            return "OOM command not allowed: the pool is full (\(requested) more bytes wanted, \(maximum) at most): delete keys or restart with a larger --max-pool-size"
        case .transactionTooLarge(let bytes):
            return "ERR the command changes more than one transaction can log (\(bytes) bytes): split it into smaller commands"
        default:
            return "ERR \(error)"
        }
    }

    static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    // MARK: Connection, server and transaction commands

    func runControl(_ name: String, _ request: [[UInt8]], _ session: inout Session) -> RESPReply {
        switch name {
        case "ping":
            if request.count > 2 { return .error("ERR wrong number of arguments for 'ping' command") }
            return request.count == 2 ? .bulk(request[1]) : .simple("PONG")
        case "echo":
            return .bulk(request[1])
        case "select":
            guard let index = RESPRequestDecoder.integer(request[1][...]) else { return .error(CommandError.notInteger.message) }
            return index == 0 ? .ok : .error("ERR DB index is out of range")
        case "quit":
            session.wantsClose = true
            return .ok
        case "auth":
            return auth(request, &session)
        case "hello":
            return hello(request, &session)
        case "client":
            return client(request, &session)
        case "command":
            return command(request, session)
        case "config":
            return config(request)
        case "info":
            return .bulk(info(section: request.count > 1 ? Self.text(request[1]).lowercased() : "default"))
        case "time":
            let now = Date().timeIntervalSince1970
            return .array([.bulk(String(Int64(now))), .bulk(String(Int64((now - now.rounded(.down)) * 1_000_000)))])
        case "multi":
            if session.queued != nil { return .error("ERR MULTI calls can not be nested") }
            session.queued = []
            session.queueFailed = false
            return .ok
        case "discard":
            if session.queued == nil { return .error("ERR DISCARD without MULTI") }
            session.queued = nil
            return .ok
        case "exec":
            return exec(&session)
        default:
            return .error("ERR unknown command '\(name)'")
        }
    }

    private func auth(_ request: [[UInt8]], _ session: inout Session) -> RESPReply {
        guard let password = configuration.password else {
            return .error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
        }
        // AUTH password, or AUTH username password (only the default user exists).
        guard request.count <= 3 else { return .error(CommandError.syntax.message) }
        let user = request.count == 3 ? Self.text(request[1]) : "default"
        guard user == "default", Self.constantTimeEqual(request.last!, Array(password.utf8)) else {
            return .error("WRONGPASS invalid username-password pair or user is disabled.")
        }
        session.isAuthenticated = true
        return .ok
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return difference == 0
    }

    private func hello(_ request: [[UInt8]], _ session: inout Session) -> RESPReply {
        var version = session.protocolVersion
        var index = 1
        if request.count > 1 {
            guard let requested = RESPRequestDecoder.integer(request[1][...]) else {
                return .error("ERR Protocol version is not an integer or out of range")
            }
            guard requested == 2 || requested == 3 else { return .error("NOPROTO unsupported protocol version") }
            version = requested
            index = 2
        }
        var authenticated = session.isAuthenticated
        var name = session.name
        while index < request.count {
            switch Self.text(request[index]).lowercased() {
            case "auth" where index + 2 < request.count:
                var probe = session
                let reply = auth([Array("auth".utf8), request[index + 1], request[index + 2]], &probe)
                if case .error = reply { return reply }
                authenticated = true
                index += 3
            case "setname" where index + 1 < request.count:
                name = Self.text(request[index + 1])
                index += 2
            default:
                return .error("ERR Syntax error in HELLO option '\(Self.text(request[index]))'")
            }
        }
        guard authenticated else { return .error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time") }
        session.isAuthenticated = true
        session.protocolVersion = version
        session.name = name
        return .map([
            (.bulk("server"), .bulk("redis")),
            (.bulk("version"), .bulk(Self.redisVersion)),
            (.bulk("proto"), .integer(Int64(version))),
            (.bulk("id"), .integer(Int64(session.id))),
            (.bulk("mode"), .bulk("standalone")),
            (.bulk("role"), .bulk("master")),
            (.bulk("modules"), .array([])),
        ])
    }

    /// The Redis version clients are told (the command set follows it), and Ferrite's own.
    static let redisVersion = "7.2.0"
    static let ferriteVersion = "0.1.0"

    private func client(_ request: [[UInt8]], _ session: inout Session) -> RESPReply {
        switch Self.text(request[1]).lowercased() {
        case "id": return .integer(Int64(session.id))
        case "setname" where request.count == 3:
            session.name = Self.text(request[2])
            return .ok
        case "getname": return session.name.map { .bulk($0) } ?? .null
        case "setinfo" where request.count == 4: return .ok
        default:
            return .error("ERR unknown subcommand or wrong number of arguments for '\(Self.text(request[1]))'. Try CLIENT HELP.")
        }
    }

    private func command(_ request: [[UInt8]], _ session: Session) -> RESPReply {
        let specs = CommandSpec.table.values.sorted { $0.name < $1.name }
        guard request.count > 1 else { return .array(specs.map(\.info)) }
        switch Self.text(request[1]).lowercased() {
        case "count": return .integer(Int64(specs.count))
        case "info":
            let names = request.count > 2 ? request.dropFirst(2).map { Self.text($0).lowercased() } : specs.map(\.name)
            return .array(names.map { CommandSpec.table[$0]?.info ?? .nullArray })
        case "docs":
            // No documentation to offer: clients (redis-cli's hints) do without.
            return .map([])
        case "list": return .array(specs.map { .bulk($0.name) })
        default:
            return .error("ERR unknown subcommand '\(Self.text(request[1]))'. Try COMMAND HELP.")
        }
    }

    /// The parameters CONFIG GET reports (enough for redis-benchmark and redis-cli).
    private var configParameters: [(String, String)] {
        let storage = heap.durability == .storage
        return [
            ("bind", configuration.host),
            ("port", String(configuration.port)),
            ("databases", "1"),
            ("maxclients", String(configuration.maximumClients)),
            ("proto-max-bulk-len", String(configuration.maximumBulkBytes)),
            ("requirepass", configuration.password ?? ""),
            ("save", ""),
            ("appendonly", storage ? "yes" : "no"),
            ("appendfsync", storage ? (configuration.storageSync == .full ? "always" : "everysec") : "no"),
            ("maxmemory", String(heap.size.maximum)),
            ("maxmemory-policy", "noeviction"),
            ("dir", FileManager.default.currentDirectoryPath),
            ("dbfilename", heap.path),
        ]
    }

    private func config(_ request: [[UInt8]]) -> RESPReply {
        switch Self.text(request[1]).lowercased() {
        case "get" where request.count >= 3:
            let patterns = request.dropFirst(2).map { GlobPattern(Array(Self.text($0).lowercased().utf8)) }
            let matching = configParameters.filter { parameter in patterns.contains { $0.matches(Array(parameter.0.utf8)) } }
            return .map(matching.map { (.bulk($0.0), .bulk($0.1)) })
        case "resetstat":
            return .ok
        case "set":
            return .error("ERR CONFIG SET is not supported: restart `ferrite serve` with the option instead")
        default:
            return .error("ERR unknown subcommand or wrong number of arguments for '\(Self.text(request[1]))'. Try CONFIG HELP.")
        }
    }

    // MARK: MULTI / EXEC

    /// Runs the queued commands as one failure-atomic transaction, in isolation: all of them take
    /// effect or (after a crash, or a full pool) none. A command that fails on its own (a wrong
    /// type) replies its error and changes nothing, the others still run, as in Redis.
    private func exec(_ session: inout Session) -> RESPReply {
        guard let queued = session.queued else { return .error("ERR EXEC without MULTI") }
        session.queued = nil
        if session.queueFailed {
            session.queueFailed = false
            return .error("EXECABORT Transaction discarded because of previous errors.")
        }
        if queued.isEmpty { return .array([]) }
        // Connection commands first checked, as Redis runs them in order too; they touch no data.
        let writes = queued.contains { CommandSpec.table[CommandSpec.name(of: $0)]?.access == .write }
        var inner = session
        let runAll = { () throws -> RESPReply in try self.runQueued(queued, &inner) }
        let reply: RESPReply
        if writes {
            heap.makeLogRoomIfNeeded()
            let trashGrew: Bool
            (reply, trashGrew) = lock.withWriteLock { (runTransaction(runAll), keyspace.trashGrew) }
            if trashGrew { trashSignal.signal() }
        } else {
            reply = lock.withReadLock { (try? runAll()) ?? .error("EXECABORT the transaction could not run") }
        }
        inner.queued = nil
        session = inner
        if case .error(let message) = reply { return .error(message.hasPrefix("EXECABORT") ? message : "EXECABORT \(message)") }
        return reply
    }

    /// Runs the commands queued since MULTI, in order, with the lock held and (for writes) in a
    /// transaction. Commands check their arguments before they change anything, so a command
    /// error leaves the others' changes intact; a heap error (a full pool) is thrown.
    func runQueued(_ queued: [[[UInt8]]], _ session: inout Session) throws -> RESPReply {
        var replies: [RESPReply] = []
        for request in queued {
            let name = CommandSpec.name(of: request)
            switch CommandSpec.table[name]!.access {
            case .none: replies.append(runControl(name, request, &session))
            case .read, .write:
                do { replies.append(try runData(name, request, session)) } catch let error as CommandError {
                    replies.append(.error(error.message))
                }
            }
        }
        return .array(replies)
    }

    // MARK: INFO

    func info(section: String) -> String {
        let all = section == "all" || section == "everything" || section == "default"
        var text = ""
        func add(_ name: String, _ fields: [(String, String)]) {
            guard all || section == name.lowercased() else { return }
            if !text.isEmpty { text += "\r\n" }
            text += "# \(name)\r\n"
            for (key, value) in fields { text += "\(key):\(value)\r\n" }
        }
        let uptime = Int(Date().timeIntervalSince(startTime))
        add("Server", [
            ("redis_version", Self.redisVersion), ("ferrite_version", Self.ferriteVersion), ("redis_mode", "standalone"),
            ("os", "Linux"), ("arch_bits", "64"), ("process_id", String(ProcessInfo.processInfo.processIdentifier)),
            ("tcp_port", String(configuration.port)), ("uptime_in_seconds", String(uptime)), ("uptime_in_days", String(uptime / 86400)),
        ])
        add("Clients", [
            ("connected_clients", String(statistics.connectedClients.load(ordering: .relaxed))),
            ("maxclients", String(configuration.maximumClients)),
        ])
        let usage = heap.bytesInUse
        add("Memory", [
            ("used_memory", String(usage.chunks)),
            ("pool_path", heap.path),
            ("pool_size_bytes", String(heap.size.current)),
            ("pool_used_bytes", String(usage.chunks)),
            ("pool_maximum_bytes", String(heap.size.maximum)),
            ("pool_chunk_bytes", String(usage.chunkSize)),
            ("maxmemory", String(heap.size.maximum)),
            ("maxmemory_policy", "noeviction"),
        ])
        var persistence: [(String, String)] = [
            ("loading", "0"),
            ("durability_mode", heap.durability == .storage ? "storage" : "memory"),
            ("pool_on_dax", heap.isDAX ? "1" : "0"),
            ("recovery_replayed_transactions", String(heap.recovery.replayedTransactions)),
            ("recovery_open_seconds", String(format: "%.6f", heap.recovery.openSeconds)),
            ("rdb_changes_since_last_save", "0"),
            ("aof_enabled", heap.durability == .storage ? "1" : "0"),
            ("trash_values", String(lock.withReadLock { keyspace.trash.count })),
        ]
        if let log = heap.storageStatistics {
            persistence += [
                ("storage_sync", configuration.storageSync == .full ? "full" : "normal"),
                ("log_records", String(log.logRecords)), ("log_syncs", String(log.logSyncs)),
                ("log_checkpoints", String(log.checkpoints)), ("log_bytes_in_use", String(log.logBytesInUse)),
                ("log_capacity_bytes", String(log.logCapacity)),
            ]
        }
        add("Persistence", persistence)
        add("Stats", [
            ("total_connections_received", String(statistics.connectionsAccepted.load(ordering: .relaxed))),
            ("total_commands_processed", String(statistics.commands.load(ordering: .relaxed))),
            ("total_commits", String(statistics.writes.load(ordering: .relaxed))),
            ("rejected_connections", String(statistics.connectionsRejected.load(ordering: .relaxed))),
            ("protocol_errors", String(statistics.protocolErrors.load(ordering: .relaxed))),
        ])
        let keys = keyCount
        add("Keyspace", keys > 0 ? [("db0", "keys=\(keys),expires=0,avg_ttl=0")] : [])
        return text
    }
}

/// Counters the server keeps for INFO (the metrics endpoint has its own, through swift-metrics).
final class ServerStatistics: Sendable {
    let commands = Atomic<Int>(0)
    let writes = Atomic<Int>(0)
    let connectedClients = Atomic<Int>(0)
    let connectionsAccepted = Atomic<Int>(0)
    let connectionsRejected = Atomic<Int>(0)
    let protocolErrors = Atomic<Int>(0)
}
