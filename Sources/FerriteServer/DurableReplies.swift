import FerriteHeap
import NIOCore

/// Holds back replies until what they acknowledge (or reveal) is durable, then sends them, in
/// order: one per event loop, used only on that loop.
///
/// Connections run their commands with commits that do not wait for the disk
/// (``Heap/deferringDurability(_:)``), so their locks are free again at once. Their replies wait
/// here, in groups: once the loop has handled every connection that was ready (a task runs after
/// the loop's I/O), the group of their replies waits for the highest commit point any of them
/// needs. If the log is idle, the loop syncs it itself and answers at once (the lowest latency:
/// no other thread involved). If a sync is under way, the loop does not wait behind it: it goes
/// on serving the clients whose requests arrive meanwhile, whose commits join the next sync, and
/// the group is sent when the log's syncing thread reports that point durable. Groups leave in
/// the order they were made, so no connection's replies overtake each other.
final class DurableReplies: @unchecked Sendable {
    struct Waiting {
        let handler: ConnectionHandler
        let context: ChannelHandlerContext
        let output: ByteBuffer
        let close: Bool
    }

    let heap: Heap
    let engine: CommandEngine
    let eventLoop: any EventLoop
    /// Connections with requests read in this loop iteration, not yet run.
    private var ready: [(handler: ConnectionHandler, context: ChannelHandlerContext)] = []
    /// Replies of this loop iteration, not yet grouped.
    private var waiting: [Waiting] = []
    private var highest = CommitPoint.zero
    private var scheduled = false
    /// Groups waiting for the log, oldest first, each with the point it needs.
    private var groups: [(point: CommitPoint, replies: [Waiting])] = []

    init(engine: CommandEngine, eventLoop: any EventLoop) {
        self.engine = engine
        self.heap = engine.heap
        self.eventLoop = eventLoop
    }

    /// Runs `handler`'s requests after the loop's I/O, with those of every other connection
    /// ready in this iteration (``CommandEngine/executeGroup(_:sessions:)``).
    func run(_ handler: ConnectionHandler, context: ChannelHandlerContext) {
        eventLoop.preconditionInEventLoop()
        ready.append((handler, context))
        scheduleFlush()
    }

    private func scheduleFlush() {
        if !scheduled {
            scheduled = true
            eventLoop.execute { self.flush() }
        }
    }

    /// Sends `output` once everything committed before `point` is durable.
    func send(_ output: ByteBuffer, after point: CommitPoint, handler: ConnectionHandler, context: ChannelHandlerContext, close: Bool) {
        eventLoop.preconditionInEventLoop()
        waiting.append(Waiting(handler: handler, context: context, output: output, close: close))
        if point > highest { highest = point }
        handler.repliesWaiting += 1
        scheduleFlush()
    }

    /// Runs after the loop's I/O: runs the ready connections' requests, makes this iteration's
    /// replies a group and sends every group that is durable.
    private func flush() {
        if !ready.isEmpty {
            let connections = ready
            ready.removeAll(keepingCapacity: true)
            var batches: [[[[UInt8]]]] = []
            var sessions: [Session] = []
            for connection in connections {
                let (requests, session) = connection.handler.takeRequests()
                batches.append(requests)
                sessions.append(session)
            }
            let replies = heap.deferringDurability { engine.executeGroup(batches, sessions: &sessions) }
            // The point after the whole group covers its commits and everything it read.
            let point = heap.commitPoint
            for (index, connection) in connections.enumerated() {
                connection.handler.finish(replies[index], session: sessions[index], point: point, context: connection.context)
            }
        }
        scheduled = false
        if !waiting.isEmpty {
            groups.append((highest, waiting))
            waiting.removeAll(keepingCapacity: true)
        }
        let point = highest
        let durable = heap.waitUntilDurable(point, unlessBusy: { [self] in eventLoop.execute { self.drain() } })
        if durable { drain() }
    }

    /// Sends the groups at the head of the queue whose points are durable.
    private func drain() {
        while let group = groups.first, heap.isDurable(group.point) {
            groups.removeFirst()
            for entry in group.replies {
                entry.handler.repliesWaiting -= 1
                entry.handler.deliver(entry.output, context: entry.context, close: entry.close)
            }
        }
    }
}
