import FerriteMulticast
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// What one load level measured.
public struct LoadLevelResult: Codable, Sendable {
    public var clients: Int
    public var destinations: Int
    public var seconds: Double
    public var delivered: Int
    public var throughput: Double
    public var medianLatencyMicroseconds: UInt64
    public var p99LatencyMicroseconds: UInt64
}

/// Closed-loop clients in one process, multicasting to a running cluster: each client sends its
/// next message as soon as a destination leader replies that the previous one is delivered.
/// Every multicast is logged (wall-clock time of its first send) for the checker.
public final class LoadGenerator<Wire: MulticastWire>: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on `loop`.
    let configuration: ClusterConfiguration
    let addresses: [ProcessID: SocketAddress]
    let loop: EventLoop
    private let codec = WireCodec<Wire>()
    private let multicastLog: Int32
    private var channels: [ProcessID: Channel] = [:]
    private var clients: [ProcessID: MulticastClient<Wire>] = [:]
    private var active: Set<ProcessID> = []
    private var destinations = 1
    private var random = SimulationRandom(seed: 1)
    private var latencies: [UInt64] = []
    private var measuring = false
    private var nextClient: Int
    private let retryTimeout: Microseconds
    /// An emulated network delay added to every message sent (0: none).
    public var networkDelay: TimeAmount = .zero

    public init(cluster: ClusterFile, logPath: String, firstClientID: Int, retryTimeout: Microseconds, loop: EventLoop) throws {
        configuration = cluster.configuration
        addresses = try cluster.addresses()
        self.loop = loop
        nextClient = firstClientID
        self.retryTimeout = retryTimeout
        multicastLog = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard multicastLog >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(5), delay: .milliseconds(5)) { _ in self.tick() }
    }

    deinit { close(multicastLog) }

    /// Runs `clients` fresh closed-loop clients for `seconds`, each message to `destinations`
    /// random groups; then stops them (messages in flight still complete).
    public func run(clients count: Int, destinations: Int, seconds: Double) throws -> LoadLevelResult {
        try loop.submit {
            self.destinations = destinations
            self.latencies = []
            self.measuring = true
            for _ in 0..<count {
                let id = ProcessID(self.nextClient)
                self.nextClient += 1
                self.clients[id] = MulticastClient(id: id, configuration: self.configuration, retryTimeout: self.retryTimeout)
                self.active.insert(id)
                self.sendNext(from: id)
            }
        }.wait()
        Thread.sleep(forTimeInterval: seconds)
        let latencies = try loop.submit {
            self.measuring = false
            self.active = []
            return self.latencies
        }.wait()
        let sorted = latencies.sorted()
        return LoadLevelResult(
            clients: count, destinations: destinations, seconds: seconds, delivered: sorted.count,
            throughput: Double(sorted.count) / seconds,
            medianLatencyMicroseconds: sorted.isEmpty ? 0 : sorted[sorted.count / 2],
            p99LatencyMicroseconds: sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, sorted.count * 99 / 100)])
    }

    /// Messages sent and not yet acknowledged.
    public func outstanding() throws -> Int {
        try loop.submit { self.clients.values.count { $0.outstanding != nil } }.wait()
    }

    private func sendNext(from id: ProcessID) {
        let groups = configuration.groupIDs.shuffled(using: &random).prefix(destinations)
        let (message, sends) = clients[id]!.multicast(Array(repeating: 0x61, count: 16), to: groups, now: monotonicMicroseconds())
        let line = "M \(id.rawValue) \(message.id.sequence) \(wallClockMicroseconds()) \(message.destinations.map { String($0.rawValue) }.joined(separator: ","))\n"
        try? writeAll(multicastLog, Data(line.utf8))
        transmit(sends, from: id)
    }

    private func transmit(_ sends: [(to: ProcessID, message: Wire)], from id: ProcessID) {
        if networkDelay != .zero {
            loop.scheduleTask(in: networkDelay) { self.write(sends, from: id) }
        } else {
            write(sends, from: id)
        }
    }

    private func write(_ sends: [(to: ProcessID, message: Wire)], from id: ProcessID) {
        for (to, message) in sends {
            guard let frame = try? codec.frame(message, from: id, allocator: ByteBufferAllocator()) else { continue }
            if let channel = channels[to] {
                channel.writeAndFlush(frame, promise: nil)
            } else {
                connect(to)   // This attempt is lost; the client retries.
            }
        }
    }

    private var connecting: Set<ProcessID> = []

    private func connect(_ replica: ProcessID) {
        guard !connecting.contains(replica), let address = addresses[replica] else { return }
        connecting.insert(replica)
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(200))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(ReplyHandler(generator: self))
                }
            }
            .connect(to: address)
            .whenComplete { result in
                self.connecting.remove(replica)
                if case .success(let channel) = result { self.channels[replica] = channel }
            }
    }

    /// Connects to every replica (call once before `run`).
    public func connectAll() throws {
        try loop.submit { for replica in self.configuration.replicas { self.connect(replica) } }.wait()
        Thread.sleep(forTimeInterval: 0.3)
    }

    fileprivate func received(_ frame: ByteBuffer) {
        guard let (sender, message) = try? codec.decode(frame), let done = message.completedMessage,
              let outstanding = clients[done.client]?.outstanding else { return }
        guard clients[done.client]!.receive(message, from: sender) != nil else { return }
        if measuring { latencies.append(monotonicMicroseconds() - outstanding.firstSent) }
        if active.contains(done.client) { sendNext(from: done.client) } else { clients[done.client] = nil }
    }

    fileprivate func closed(_ channel: Channel) {
        for (replica, known) in channels where known === channel { channels[replica] = nil }
    }

    private func tick() {
        let now = monotonicMicroseconds()
        for id in Array(clients.keys) {
            let sends = clients[id]!.tick(now: now)
            if !sends.isEmpty { transmit(sends, from: id) }
        }
    }

    private final class ReplyHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let generator: LoadGenerator
        init(generator: LoadGenerator) { self.generator = generator }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { generator.received(unwrapInboundIn(data)) }
        func channelInactive(context: ChannelHandlerContext) {
            generator.closed(context.channel)
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
    }
}
