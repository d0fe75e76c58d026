import FerriteHeap
import Metrics
import NIOCore
import NIOHTTP1
import Prometheus
import Synchronization

/// The server's metrics, recorded through swift-metrics into a Prometheus registry of its own
/// (so that several servers in one process, as in the tests, keep theirs apart). Everything is
/// read from the engine's own counters when scraped: nothing is counted twice on the request
/// path.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private let commands: Metrics.Counter
    /// The engine's command count at the last scrape (the counter moves by the difference).
    private let commandsReported = Mutex(0)
    private let connections: Metrics.Gauge
    private let keys: Metrics.Gauge
    private let poolBytes: Metrics.Gauge
    private let poolUsedBytes: Metrics.Gauge
    private let logRecords: Metrics.Gauge
    private let logSyncs: Metrics.Gauge
    private let checkpoints: Metrics.Gauge
    private let commits: Metrics.Gauge

    init() {
        let factory = PrometheusMetricsFactory(registry: registry)
        commands = Metrics.Counter(label: "ferrite_commands_total", factory: factory)
        connections = Metrics.Gauge(label: "ferrite_connected_clients", factory: factory)
        keys = Metrics.Gauge(label: "ferrite_keys", factory: factory)
        poolBytes = Metrics.Gauge(label: "ferrite_pool_bytes", factory: factory)
        poolUsedBytes = Metrics.Gauge(label: "ferrite_pool_used_bytes", factory: factory)
        logRecords = Metrics.Gauge(label: "ferrite_log_records", factory: factory)
        logSyncs = Metrics.Gauge(label: "ferrite_log_syncs", factory: factory)
        checkpoints = Metrics.Gauge(label: "ferrite_checkpoints", factory: factory)
        commits = Metrics.Gauge(label: "ferrite_commits", factory: factory)
    }

    /// The metrics in Prometheus's text format, with the gauges read from the engine now.
    func exposition(engine: CommandEngine) -> [UInt8] {
        let statistics = engine.statistics
        let processed = statistics.commands.load(ordering: .relaxed)
        let delta = commandsReported.withLock { reported in
            defer { reported = processed }
            return max(0, processed - reported)
        }
        commands.increment(by: Int64(delta))
        connections.record(statistics.connectedClients.load(ordering: .relaxed))
        keys.record(engine.keyCount)
        poolBytes.record(engine.heap.size.current)
        poolUsedBytes.record(engine.heap.bytesInUse.chunks)
        commits.record(engine.statistics.writes.load(ordering: .relaxed))
        if let log = engine.heap.storageStatistics {
            logRecords.record(log.logRecords)
            logSyncs.record(log.logSyncs)
            checkpoints.record(log.checkpoints)
        }
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}

/// Answers `GET /metrics` with the server's metrics (and anything else with 404).
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let metrics: ServerMetrics
    private let engine: CommandEngine
    private var path = ""

    init(metrics: ServerMetrics, engine: CommandEngine) {
        self.metrics = metrics
        self.engine = engine
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri : ""
        case .body:
            break
        case .end:
            let found = path == "/metrics" || path.hasPrefix("/metrics?")
            let body = found ? metrics.exposition(engine: engine) : Array("not found: try /metrics\n".utf8)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}
