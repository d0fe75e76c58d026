import FerriteHeap
import Logging
import NIOCore

/// One client connection: runs the requests the decoder delivers, in arrival order, a read's
/// worth at a time (so pipelined requests share one wait for the disk), and sends their replies
/// once durable.
///
/// It frames requests itself, from the bytes of each read (with ``RESPRequestDecoder``), rather
/// than behind a `ByteToMessageHandler`: one pipeline step and no boxed message per request.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let engine: CommandEngine
    private let replies: DurableReplies
    private let logger: Logger
    private var session: Session
    private var requests: [[[UInt8]]] = []
    private var decoder: RESPRequestDecoder
    /// Bytes received and not yet framed into a request.
    private var unread: ByteBuffer?
    /// Replies of this connection held by ``DurableReplies``: later replies queue behind them.
    var repliesWaiting = 0
    private var closing = false
    private var counted = false
    /// Whether the loop holds this connection's requests to run (see ``run(context:extra:)``).
    private var scheduled = false
    /// A protocol error to send after the replies of the requests before it.
    private var pendingExtra: RESPReply?

    init(engine: CommandEngine, replies: DurableReplies, logger: Logger, id: Int) {
        self.engine = engine
        self.replies = replies
        self.logger = logger
        session = Session(id: id, isAuthenticated: !engine.requiresPassword)
        decoder = RESPRequestDecoder(maximumBulkBytes: engine.configuration.maximumBulkBytes,
                                     maximumArguments: engine.configuration.maximumArguments)
    }

    func channelActive(context: ChannelHandlerContext) {
        let statistics = engine.statistics
        let connected = statistics.connectedClients.add(1, ordering: .relaxed).newValue
        counted = true
        statistics.connectionsAccepted.add(1, ordering: .relaxed)
        if connected > engine.configuration.maximumClients {
            statistics.connectionsRejected.add(1, ordering: .relaxed)
            logger.warning("connection refused: \(engine.configuration.maximumClients) clients connected already", metadata: ["client": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
            var buffer = context.channel.allocator.buffer(capacity: 64)
            RESPReply.error("ERR max number of clients reached").write(to: &buffer, protocolVersion: 2)
            closing = true
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in bound.value.close(promise: nil) }
            return
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            engine.statistics.connectedClients.add(-1, ordering: .relaxed)
            counted = false
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var bytes = unwrapInboundIn(data)
        if unread == nil || unread!.readableBytes == 0 {
            unread = bytes
        } else {
            unread!.writeBuffer(&bytes)
        }
        do {
            while let request = try decoder.next(&unread!) { requests.append(request) }
        } catch {
            // The framing is lost: answer what came before, then the error, then close.
            unread = nil
            closing = true  // nothing read after this can be framed
            engine.statistics.protocolErrors.add(1, ordering: .relaxed)
            logger.info("protocol error, closing the connection", metadata: ["error": "\(error.message)"])
            run(context: context, extra: .error(error.message))
            return
        }
        // Keep a partial request's bytes compact (a large one arrives in many reads).
        if unread!.readableBytes == 0 {
            unread = nil
        } else if unread!.readerIndex > 1 << 16 {
            unread!.discardReadBytes()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        run(context: context)
        context.fireChannelReadComplete()
    }

    /// Hands the requests read so far to the loop, which runs them after its I/O together with
    /// other connections' (``DurableReplies/run(_:context:)``); `extra` (a protocol error) is
    /// sent after their replies.
    private func run(context: ChannelHandlerContext, extra: RESPReply? = nil) {
        if let extra { pendingExtra = extra }
        guard !requests.isEmpty || pendingExtra != nil, !scheduled else { return }
        scheduled = true
        replies.run(self, context: context)
    }

    /// The requests to run now, and the session to run them with.
    func takeRequests() -> ([[[UInt8]]], Session) {
        scheduled = false
        var batch: [[[UInt8]]] = []
        swap(&batch, &requests)
        return (batch, session)
    }

    /// Sends the replies of the requests taken by ``takeRequests()`` once `point` is durable.
    func finish(_ results: [RESPReply], session: Session, point: CommitPoint, context: ChannelHandlerContext) {
        self.session = session
        var output = context.channel.allocator.buffer(capacity: 128)
        for reply in results { reply.write(to: &output, protocolVersion: session.protocolVersion) }
        if let extra = pendingExtra { extra.write(to: &output, protocolVersion: session.protocolVersion) }
        let close = session.wantsClose || pendingExtra != nil
        pendingExtra = nil
        if close { closing = true }
        // Waiting for the point after the group covers its own commits and every commit whose
        // effect it read.
        if repliesWaiting == 0 && engine.heap.isDurable(point) {
            deliver(output, context: context, close: close)
        } else {
            replies.send(output, after: point, handler: self, context: context, close: close)
        }
    }

    func deliver(_ output: ByteBuffer, context: ChannelHandlerContext, close: Bool) {
        if output.readableBytes > 0 {
            if close {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(output)).whenComplete { _ in bound.value.close(promise: nil) }
            } else {
                context.writeAndFlush(wrapOutboundOut(output), promise: nil)
            }
        } else if close {
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// A client that sends without reading its replies stops being read until it catches up.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        context.channel.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenFailure { _ in }
        context.fireChannelWritabilityChanged()
    }
}
