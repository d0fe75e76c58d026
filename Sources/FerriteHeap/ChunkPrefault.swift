import CFerriteShim
import Foundation

/// Maps the pages of the chunks the allocator will hand out next, in the background, so that a
/// transaction that takes a fresh chunk does not stop for the first-touch faults of its pages
/// (allocating and zeroing the file's pages, copying them into the working view's private pages,
/// mapping them in both views: several microseconds a page, more on a virtual machine whose host
/// backs guest memory lazily).
///
/// It maps them as a write would (`MADV_POPULATE_WRITE`), which changes no byte: the durable
/// view's pages are allocated, and the working view's pages get their private copies of the
/// file's content early. That is safe because the chunks are free: nothing writes them until the
/// allocator hands them out, and from then on every write goes to the working view first (a
/// transaction's stores, the allocator's bitmap words, new blocks) and reaches the durable view
/// only after, so a working-view page never needs to show a durable-view change it did not make
/// itself. (A page made private early only stops following the file sooner.)
///
/// The allocator asks for the chunks after the one it just took; a single thread, started on the
/// first request, maps them one chunk at a time. `stop()` (at close, before the views are
/// unmapped) waits for the chunk being mapped.
///
/// On a memory-mode pool whose file is not on DAX (a disk), mapping a chunk as a write marks its
/// page-cache pages dirty, so up to ``chunksAhead`` chunks of unchanged zero pages may be written
/// back to the file early: harmless, and the same pages the allocator is about to write anyway.
final class ChunkPrefault: @unchecked Sendable {
    /// How many chunks past the one just taken are mapped in advance.
    static let chunksAhead = 4

    private let lock = ConditionLock()
    private let views: [UInt]
    private let heapOffset: Int
    private let chunkSize: Int
    private var queue = PrefaultQueue()
    private var running = false
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)

    init(views: [UnsafeMutableRawPointer], heapOffset: Int, chunkSize: Int) {
        self.views = views.map { UInt(bitPattern: $0) }
        self.heapOffset = heapOffset
        self.chunkSize = chunkSize
    }

    /// Asks for `chunks` (free chunks, all below the pool's current chunk count) to be mapped.
    /// Never waits.
    func request(_ chunks: Range<Int>) {
        lock.withLock {
            guard !stopping, queue.add(chunks) else { return }
            if running {
                lock.signal()
            } else {
                running = true
                Thread.detachNewThread { [self] in run() }
            }
        }
    }

    private func run() {
        lock.lock()
        while true {
            var chunk = queue.take()
            while !stopping && chunk == nil {
                lock.wait()
                chunk = queue.take()
            }
            guard !stopping, let chunk else { break }
            lock.unlock()
            var failed = false
            for view in views {
                let start = UnsafeMutableRawPointer(bitPattern: view)! + heapOffset + chunk * chunkSize
                if ferrite_populate_write(start, chunkSize) != 0 { failed = true; break }
            }
            lock.lock()
            // An old kernel without MADV_POPULATE_WRITE: nothing to gain from trying again.
            if failed { stopping = true }
        }
        lock.unlock()
        finished.signal()
    }

    /// Stops the thread (after the chunk it is mapping): the views may be unmapped afterwards.
    /// Calling it again does nothing.
    func stop() {
        let wasRunning = lock.withLock { () -> Bool in
            stopping = true
            lock.signal()
            defer { running = false }
            return running
        }
        if wasRunning { finished.wait() }
    }
}

/// The chunks a ``ChunkPrefault`` has mapped and has still to map: one run of chunks,
/// `mappedFrom..<next` done and `next..<wanted` to do.
struct PrefaultQueue: Equatable {
    private(set) var mappedFrom = 0
    private(set) var next = 0
    private(set) var wanted = 0

    /// Adds a request: nothing if it is inside the run already mapped or pending, extends the run
    /// if it starts inside it or right after it, and otherwise (lower chunks after a large free,
    /// say) replaces the run. Returns whether there is new work.
    mutating func add(_ chunks: Range<Int>) -> Bool {
        guard !chunks.isEmpty else { return false }
        let runEnd = max(next, wanted)
        if chunks.lowerBound >= mappedFrom && chunks.upperBound <= runEnd { return false }
        if chunks.lowerBound >= mappedFrom && chunks.lowerBound <= runEnd {
            wanted = chunks.upperBound
        } else {
            mappedFrom = chunks.lowerBound
            next = chunks.lowerBound
            wanted = chunks.upperBound
        }
        return true
    }

    /// The next chunk to map, if any.
    mutating func take() -> Int? {
        guard next < wanted else { return nil }
        defer { next += 1 }
        return next
    }
}
