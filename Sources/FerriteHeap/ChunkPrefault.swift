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
final class ChunkPrefault: @unchecked Sendable {
    /// How many chunks past the one just taken are mapped in advance.
    static let chunksAhead = 4

    private let lock = ConditionLock()
    private let views: [UInt]
    private let heapOffset: Int
    private let chunkSize: Int
    /// Chunks below `next` are mapped (or were skipped); those up to `wanted` are to be mapped.
    private var next = 0
    private var wanted = 0
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
            guard !stopping, chunks.upperBound > max(next, wanted) else { return }
            if chunks.lowerBound > next { next = chunks.lowerBound }
            wanted = chunks.upperBound
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
            while !stopping && next >= wanted { lock.wait() }
            if stopping { break }
            let chunk = next
            next += 1
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
    func stop() {
        let wasRunning = lock.withLock { () -> Bool in
            stopping = true
            lock.signal()
            return running
        }
        if wasRunning { finished.wait() }
    }
}
