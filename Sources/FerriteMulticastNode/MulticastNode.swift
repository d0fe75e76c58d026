import FerriteMulticast
import Foundation
import NIOCore
import NIOPosix

/// One replica of a multicast protocol as a real process: its state machine driven by TCP
/// messages from its peers and clients and by a 5 ms tick, all on one event loop (no locks).
///
/// After each batch of events the node makes the batch's records durable (appended to its log;
/// with `syncs`, fdatasync'd) before it sends anything or logs any delivery, so a SIGKILLed node
/// restarts from its log and rejoins correctly. Deliveries go to a delivery log (one line each,
/// with the wall-clock time) that `ferrite amcast check` reads.
public final class MulticastNode<Replica: MulticastReplica>: @unchecked Sendable {
    // @unchecked: every mutable property is touched only on `loop`.
    public let id: ProcessID
    let configuration: ClusterConfiguration
    let addresses: [ProcessID: SocketAddress]
    let loop: EventLoop
    private var replica: Replica
    private let durable: DurableLog<Replica.Durable.Record>
    private let deliveryLog: Int32
    private let codec = WireCodec<Replica.Wire>()

    private var channels: [ProcessID: Channel] = [:]
    private var waitingForConnection: [ProcessID: [ByteBuffer]] = [:]
    private var pendingRecords: [Replica.Durable.Record] = []
    private var pendingSends: [(ProcessID, Replica.Wire)] = []
    private var pendingDeliveries: [Delivery] = []
    private var flushScheduled = false
    private var server: Channel?
    /// An emulated network delay added to every message sent (0: none), as netem would.
    public var networkDelay: TimeAmount = .zero

    /// Opens replica `id`'s durable log and delivery log under `directory` and rebuilds the
    /// replica from the log.
    public init(id: ProcessID, cluster: ClusterFile, directory: String, timing: ProtocolTiming, syncs: Bool, loop: EventLoop) throws {
        let configuration = cluster.configuration
        guard configuration.group(of: id) != nil else { throw MulticastNodeError.unknownReplica(id.rawValue) }
        self.id = id
        self.configuration = configuration
        addresses = try cluster.addresses()
        self.loop = loop
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        durable = try DurableLog(path: "\(directory)/replica-\(id.rawValue).durable", syncs: syncs)
        var state = Replica.Durable()
        for record in try durable.readAll() { state.apply(record) }
        replica = Replica(id: id, configuration: configuration, timing: timing, durable: state, now: monotonicMicroseconds())
        deliveryLog = open("\(directory)/replica-\(id.rawValue).deliveries", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard deliveryLog >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    deinit { close(deliveryLog) }

    /// Starts listening and ticking. Returns once the server socket is bound.
    public func start() throws {
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in self.configure(channel) }
        server = try bootstrap.bind(to: addresses[id]!).wait()
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(5), delay: .milliseconds(5)) { _ in
            self.apply(self.replica.tick(now: monotonicMicroseconds()))
        }
    }

    /// Waits until the node's server closes (it never does on its own: the process is stopped).
    public func wait() throws { try server?.closeFuture.wait() }

    private func configure(_ channel: Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
            try channel.pipeline.syncOperations.addHandler(InboundHandler(node: self))
        }
    }

    fileprivate func received(_ frame: ByteBuffer, on channel: Channel) {
        guard let (sender, message) = try? codec.decode(frame) else {
            channel.close(promise: nil)   // Not a peer speaking this protocol.
            return
        }
        if channels[sender] !== channel, configuration.group(of: sender) == nil || channels[sender] == nil {
            channels[sender] = channel   // Clients are reached over the connection they opened.
        }
        apply(replica.receive(message, from: sender, now: monotonicMicroseconds()))
    }

    fileprivate func closed(_ channel: Channel) {
        for (process, known) in channels where known === channel { channels[process] = nil }
    }

    private func apply(_ output: ReplicaOutput<Replica.Wire, Replica.Durable.Record>) {
        guard !output.isEmpty else { return }
        pendingRecords += output.records
        pendingSends += output.sends
        pendingDeliveries += output.deliveries
        if !flushScheduled {
            flushScheduled = true
            loop.execute { self.flush() }
        }
    }

    /// Records first (durable), then deliveries, then messages.
    private func flush() {
        flushScheduled = false
        do {
            try durable.append(pendingRecords)
        } catch {
            fatalError("replica \(id) cannot write its durable log: \(error)")   // Continuing would break the protocol.
        }
        pendingRecords.removeAll(keepingCapacity: true)
        if !pendingDeliveries.isEmpty {
            let now = wallClockMicroseconds()
            var lines = ""
            for delivery in pendingDeliveries {
                lines += "D \(delivery.message.id.client.rawValue) \(delivery.message.id.sequence) \(delivery.timestamp.counter) \(delivery.timestamp.group.rawValue) \(now) \(delivery.message.destinations.map { String($0.rawValue) }.joined(separator: ","))\n"
            }
            try? writeAll(deliveryLog, Data(lines.utf8))
            pendingDeliveries.removeAll(keepingCapacity: true)
        }
        var frames: [(ProcessID, ByteBuffer)] = []
        for (destination, message) in pendingSends {
            guard let frame = try? codec.frame(message, from: id, allocator: ByteBufferAllocator()) else { continue }
            frames.append((destination, frame))
        }
        pendingSends.removeAll(keepingCapacity: true)
        if networkDelay == .zero {
            transmit(frames)
        } else {
            let delayed = frames
            loop.scheduleTask(in: networkDelay) { self.transmit(delayed) }
        }
    }

    private func transmit(_ frames: [(ProcessID, ByteBuffer)]) {
        var touched: [ObjectIdentifier: Channel] = [:]
        for (destination, frame) in frames {
            if let channel = channels[destination] {
                channel.write(frame, promise: nil)
                touched[ObjectIdentifier(channel)] = channel
            } else if addresses[destination] != nil {
                connect(to: destination, sending: frame)
            }   // A client that is gone: drop.
        }
        for channel in touched.values { channel.flush() }
    }

    private func connect(to peer: ProcessID, sending frame: ByteBuffer) {
        if waitingForConnection[peer] != nil {
            if waitingForConnection[peer]!.count < 100_000 { waitingForConnection[peer]!.append(frame) }
            return
        }
        waitingForConnection[peer] = [frame]
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.milliseconds(200))
            .channelInitializer { channel in self.configure(channel) }
            .connect(to: addresses[peer]!)
            .whenComplete { result in
                let queued = self.waitingForConnection.removeValue(forKey: peer) ?? []
                guard case .success(let channel) = result else { return }   // Dropped: protocols retransmit.
                self.channels[peer] = channel
                for frame in queued { channel.write(frame, promise: nil) }
                channel.flush()
            }
    }

    private final class InboundHandler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let node: MulticastNode
        init(node: MulticastNode) { self.node = node }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            node.received(unwrapInboundIn(data), on: context.channel)
        }
        func channelInactive(context: ChannelHandlerContext) {
            node.closed(context.channel)
            context.fireChannelInactive()
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }
    }
}
