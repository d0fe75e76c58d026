import ArgumentParser
import FerriteHeap
import FerriteServer
import Foundation
import Logging

@main
struct Ferrite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferrite",
        abstract: "Ferrite: a persistent-object store.",
        subcommands: [Serve.self, Amcast.self],
        defaultSubcommand: Serve.self
    )
}

/// The durability modes, as options.
enum DurabilityOption: String, ExpressibleByArgument, CaseIterable {
    case memory, storage
}

enum SyncOption: String, ExpressibleByArgument, CaseIterable {
    case full, normal
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a pool over the Redis protocol (RESP2 and RESP3): every Redis client works with it.",
        discussion: """
            With no options, opens (or creates) ferrite.pool in the working directory and listens \
            on 127.0.0.1:6479. Every write is durable before it is acknowledged: in storage mode \
            (the default unless the pool is on a DAX file system) through a write-ahead log synced \
            with fdatasync, shared by concurrent clients (group commit).
            """
    )

    @Option(help: "The port to listen on.")
    var port = 6479
    @Option(help: "The address to listen on (loopback by default).")
    var bind = "127.0.0.1"
    @Option(help: "The pool file (created when missing).")
    var pool = "ferrite.pool"
    @Option(help: "The durability mode of a new pool: storage (write-ahead log + fdatasync, any disk) or memory (cache-line flushes, for persistent memory). Default: storage, or memory on DAX. An existing pool keeps its mode.")
    var durability: DurabilityOption?
    @Option(help: "Storage mode: sync every commit (full) or every 10 ms (normal: a power loss may lose the last 10 ms of writes).")
    var sync: SyncOption = .full
    @Option(help: "Require clients to AUTH with this password.")
    var requirepass: String?
    @Option(help: "The most clients connected at once.")
    var maxclients = 10_000
    @Option(help: "The longest key or value a request may carry, in bytes.")
    var maxBulkBytes = 512 << 20
    @Option(help: "The largest the pool may grow to, in GiB.")
    var maxPoolGib = 64
    @Option(help: "The port of the Prometheus metrics endpoint (http://BIND:PORT/metrics); 0 for none.")
    var metricsPort = 9479
    @Option(help: "Event-loop threads (default: one per core).")
    var threads: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port), (0...65535).contains(metricsPort) else { throw ValidationError("ports are 0 to 65535") }
        guard maxclients >= 1 else { throw ValidationError("--maxclients must be at least 1") }
        guard maxBulkBytes >= 1024 else { throw ValidationError("--max-bulk-bytes must be at least 1024") }
        guard maxPoolGib >= 1 else { throw ValidationError("--max-pool-gib must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown log level \(logLevel)") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "ferrite")
        var configuration = ServerConfiguration()
        configuration.host = bind
        configuration.port = port
        configuration.poolPath = pool
        configuration.durability = durability.map { $0 == .memory ? .memory : .storage }
        configuration.storageSync = sync == .full ? .full : .normal
        configuration.password = requirepass
        configuration.maximumClients = maxclients
        configuration.maximumBulkBytes = maxBulkBytes
        configuration.maximumPoolBytes = maxPoolGib << 30
        configuration.metricsPort = metricsPort == 0 ? nil : metricsPort
        configuration.threads = threads

        let server: FerriteServer
        do {
            server = try FerriteServer.start(configuration: configuration, logger: logger)
        } catch let error as HeapError {
            throw ServeError(message: "cannot open the pool \(pool): \(error)")
        } catch {
            throw ServeError(message: "cannot start: \(error)")
        }
        let heap = server.engine.heap
        let mode = heap.durability == .storage
            ? "storage (write-ahead log \(Heap.logPath(forPool: heap.path)), \(sync == .full ? "fdatasync per commit, group commit" : "synced every 10 ms"))"
            : "memory (\(heap.isDAX ? "DAX: survives power loss" : "not on DAX: survives process crashes only"))"
        say("ferrite: listening on \(server.address.ipAddress ?? bind):\(server.address.port ?? port)")
        say("ferrite: pool \(URL(fileURLWithPath: heap.path).standardizedFileURL.path), \(server.engine.keyCount) keys, durability \(mode)")
        if heap.recovery.replayedTransactions > 0 || heap.recovery.replayedLogRecords > 0 {
            say("ferrite: recovered \(heap.recovery.replayedTransactions) transactions, \(heap.recovery.replayedLogRecords) log records in \(String(format: "%.1f", heap.recovery.openSeconds * 1000)) ms")
        }
        if let metrics = server.metricsAddress { say("ferrite: metrics on http://\(metrics.ipAddress ?? bind):\(metrics.port ?? 0)/metrics") }

        // SIGINT and SIGTERM stop the server cleanly: connections closed, the pool checkpointed and closed.
        let signals = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { server.stop() }
            source.resume()
            return source
        }
        try withExtendedLifetime(signals) { try server.waitUntilClosed() }
        server.stop()
        say("ferrite: stopped")
    }
}

/// Prints a line on standard output at once (unbuffered: tests and scripts wait for it).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

struct ServeError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
