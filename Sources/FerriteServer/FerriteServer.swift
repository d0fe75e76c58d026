import FerriteHeap
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `ferrite serve`: a Redis-protocol server over a persistent keyspace.
///
/// ```swift
/// let server = try FerriteServer.start(configuration: ServerConfiguration(), logger: logger)
/// print(server.address)
/// try server.waitUntilClosed()
/// ```
///
/// Every acknowledged write is durable under the pool's mode before its reply leaves the server;
/// in storage mode the commits of all connections share their syncs. See ``DurableReplies``.
public final class FerriteServer: Sendable {
    public let engine: CommandEngine
    /// Where the server listens (with the port it got, when asked for port 0).
    public let address: SocketAddress
    /// Where the metrics endpoint listens, if it does.
    public let metricsAddress: SocketAddress?
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let metricsChannel: (any Channel)?
    private let connections = ConnectionRegistry()
    private let logger: Logger
    private let stopped = Mutex(false)
    /// Left once a stop has finished: a second caller of ``stop()`` waits for the first.
    private let stopDone = DispatchGroup()

    /// Opens (or creates) the pool, recovers it, and starts listening.
    public static func start(configuration: ServerConfiguration, logger: Logger) throws -> FerriteServer {
        let heap = try openPool(configuration)
        do {
            return try FerriteServer(heap: heap, configuration: configuration, logger: logger)
        } catch {
            heap.close()
            throw error
        }
    }

    /// The pool's options: storage mode unless asked otherwise or the directory is on DAX.
    static func openPool(_ configuration: ServerConfiguration) throws -> Heap {
        var options = HeapOptions()
        options.maximumSize = configuration.maximumPoolBytes
        options.storageSync = configuration.storageSync
        options.logCapacity = configuration.logCapacity
        let directory = URL(fileURLWithPath: configuration.poolPath).deletingLastPathComponent().path
        options.durability = configuration.durability ?? (FileSystemInfo.isDAX(path: directory) ? .memory : .storage)
        return try Heap(path: configuration.poolPath, options: options)
    }

    private init(heap: Heap, configuration: ServerConfiguration, logger: Logger) throws {
        let engine = try CommandEngine(heap: heap, configuration: configuration)
        self.engine = engine
        self.logger = logger
        let threads = configuration.threads ?? System.coreCount
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let metrics = ServerMetrics()
        // One reply batcher per event loop, used only on its loop.
        var batchers: [ObjectIdentifier: DurableReplies] = [:]
        for loop in group.makeIterator() { batchers[ObjectIdentifier(loop)] = DurableReplies(engine: engine, eventLoop: loop) }
        let replies = batchers
        let connections = self.connections
        let nextID = Atomic<Int>(1)
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 511)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: 1 << 20, high: 4 << 20))
                .childChannelInitializer { channel in
                    let id = nextID.add(1, ordering: .relaxed).oldValue
                    connections.add(channel)
                    return channel.eventLoop.makeCompletedFuture {
                        let handler = ConnectionHandler(engine: engine, replies: replies[ObjectIdentifier(channel.eventLoop)]!,
                                                        logger: logger, id: id)
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                }
                .bind(host: configuration.host, port: configuration.port).wait()
            if let metricsPort = configuration.metricsPort {
                metricsChannel = try ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                            try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(metrics: metrics, engine: engine))
                        }
                    }
                    .bind(host: configuration.host, port: metricsPort).wait()
            } else {
                metricsChannel = nil
            }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        address = channel.localAddress!
        metricsAddress = metricsChannel?.localAddress
        stopDone.enter()
        engine.startReaper()
    }

    /// Blocks until the server is stopped (``stop()``, or a signal the caller turned into it).
    public func waitUntilClosed() throws {
        try channel.closeFuture.wait()
    }

    /// Stops accepting, closes every connection (replies still waiting for the disk are dropped:
    /// their writes are committed, and durable once the pool closes), stops the event loops and
    /// closes the pool. Idempotent; a call made while another is stopping the server returns
    /// once that one is done (the process may then exit safely).
    public func stop() {
        let first = stopped.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else {
            stopDone.wait()
            return
        }
        defer { stopDone.leave() }
        logger.info("shutting down")
        try? channel.close().wait()
        try? metricsChannel?.close().wait()
        for connection in connections.all { try? connection.close().wait() }
        // No notification of the log may reach a loop after it stopped: let the last syncs finish.
        engine.heap.waitUntilDurable(engine.heap.commitPoint)
        try? group.syncShutdownGracefully()
        engine.stopReaper()
        engine.heap.close()
        logger.info("pool closed", metadata: ["pool": "\(engine.heap.path)"])
    }
}

/// The open client connections, so that a shutdown can close them.
final class ConnectionRegistry: Sendable {
    private let channels = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in _ = self.channels.withLock { $0.removeValue(forKey: id) } }
    }

    var all: [any Channel] { channels.withLock { Array($0.values) } }
}

/// What the server needs to know of a file system.
enum FileSystemInfo {
    /// Whether `path` lies on a file system mounted with DAX (persistent memory, CXL), read from
    /// /proc/mounts: the longest mount point that contains the path decides.
    static func isDAX(path: String) -> Bool {
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        var best: (length: Int, dax: Bool) = (-1, false)
        for line in mounts.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            let mountPoint = String(fields[1])
            let contains = mountPoint == "/" || resolved == mountPoint || resolved.hasPrefix(mountPoint + "/")
            if contains && mountPoint.count > best.length {
                best = (mountPoint.count, fields[3].split(separator: ",").contains { $0 == "dax" || $0.hasPrefix("dax=") && $0 != "dax=never" })
            }
        }
        return best.dax
    }
}
