import FerriteHeap
import NIOCore

/// Holds back replies until what they acknowledge (or reveal) is durable, then sends them: one
/// per event loop, used only on that loop.
///
/// Connections run their commands with commits that do not wait for the disk
/// (``Heap/deferringDurability(_:)``), so their locks are free again at once. Their replies wait
/// here. Once the loop has handled every connection that was ready (a task runs after the loop's
/// I/O), it waits once for the highest commit point any of them needs, as Redis's
/// `appendfsync always` does before it answers, and sends them all. Both loops' waits share the
/// log's syncs (group commit), so one `fdatasync` answers many clients.
final class DurableReplies: @unchecked Sendable {
    struct Waiting {
        let handler: ConnectionHandler
        let context: ChannelHandlerContext
        let output: ByteBuffer
        let close: Bool
    }

    let heap: Heap
    let eventLoop: any EventLoop
    private var waiting: [Waiting] = []
    private var highest = CommitPoint.zero
    private var scheduled = false

    init(heap: Heap, eventLoop: any EventLoop) {
        self.heap = heap
        self.eventLoop = eventLoop
    }

    /// Sends `output` once everything committed before `point` is durable.
    func send(_ output: ByteBuffer, after point: CommitPoint, handler: ConnectionHandler, context: ChannelHandlerContext, close: Bool) {
        eventLoop.preconditionInEventLoop()
        waiting.append(Waiting(handler: handler, context: context, output: output, close: close))
        if point > highest { highest = point }
        handler.repliesWaiting += 1
        if !scheduled {
            scheduled = true
            eventLoop.execute { self.flush() }
        }
    }

    private func flush() {
        scheduled = false
        let batch = waiting
        waiting.removeAll(keepingCapacity: true)
        heap.waitUntilDurable(highest)
        for entry in batch {
            entry.handler.repliesWaiting -= 1
            entry.handler.deliver(entry.output, context: entry.context, close: entry.close)
        }
    }
}
