import CFerriteShim
import FerriteMedium
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How a storage-mode commit waits for the disk.
public enum StorageSync: Sendable {
    /// A transaction returns once its log record is on the disk (`fdatasync`), shared with the
    /// commits of other threads (group commit). Survives power loss. The default.
    case full
    /// A transaction returns once its log record is written to the file, not synced: a
    /// background thread syncs every 10 ms. Survives process crashes; **power loss or a kernel
    /// crash may lose the last few milliseconds of commits** (always a whole number of them, the
    /// latest), like SQLite's `synchronous=NORMAL`.
    case normal
}

/// The medium of storage mode: durability through a write-ahead log, not cache-line flushes.
///
/// The commit protocol is memory mode's, unchanged; only what makes a range durable differs. The
/// durable view is private memory (a `MAP_PRIVATE` mapping of the pool file): nothing reaches the
/// pool file but checkpoints. ``flush(_:count:)`` notes the calling thread's lines; ``fence()``
/// appends them, with their current content, as one checksummed record to the log (split in
/// several if it is very large), and waits until the log is synced (group commit; with
/// ``StorageSync/normal``, until the record is written, the syncer thread syncing it). A fence thus
/// does what memory mode's does: every line the thread flushed before it is durable when it
/// returns. Lines are taken while the log is locked, so records are in the order their contents
/// were taken, and replaying them in LSN order never moves a line back past a fenced version.
///
/// A *checkpoint* writes the pages that records changed to the pool file and records, in the log
/// header, the LSN from which recovery replays: it bounds the log and recovery time.
final class StorageMedium: PersistenceMedium, @unchecked Sendable {
    let log: WriteAheadLog
    let poolFile: any StorageFile
    let sync: StorageSync
    /// The generation of the records this medium appends (one more than the last open's).
    let generation: UInt64
    private let durable: UnsafeMutableRawPointer
    private let extent: Int

    /// Per-thread state: the lines flushed since the thread's last fence, and a record buffer.
    final class ThreadState: PooledThreadValue {
        @exclusivity(unchecked) var lines = ScratchBuffer<UInt64>()
        @exclusivity(unchecked) var record: UnsafeMutableRawPointer
        /// While set, fences append their records without waiting for the disk
        /// (``StorageMedium/deferringDurability(_:)``).
        @exclusivity(unchecked) var deferring = false
        init(size: Int, pool: ThreadValuePool) {
            record = .allocate(byteCount: size, alignment: 64)
            super.init(pool: pool)
        }
        /// A thread that exited between a flush and its fence, or while deferring, leaves its
        /// state to nobody.
        override var isReusable: Bool { lines.isEmpty && !deferring }
        deinit { lines.deallocate(); record.deallocate() }
    }
    /// The calling thread's state, retained (see ``PooledThreadValue``).
    private let key = ThreadValueKeys.take()
    /// States of exited threads, for the next threads.
    let threadStates = ThreadValuePool()
    /// Whether `key` went back to ``ThreadValueKeys`` (at close: a closed medium may outlive its
    /// heap for a while, held by a thread's leftover context, and must not hold a key meanwhile).
    @exclusivity(unchecked) private var keyReturned = false

    /// Pages changed by records since the last checkpoint, guarded by the log's lock (marked
    /// while a record is built): a bitmap, and the list of the set bits.
    private let dirtyBits: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var dirtyPages: [Int] = []
    static let pageSize = 4096

    private let checkpointLock = Lock()
    @exclusivity(unchecked) private var checkpointCounter: UInt64
    @exclusivity(unchecked) private(set) var checkpointCount = 0

    /// The background threads: a checkpointer (when half the ring is in use) and, in `.normal`
    /// mode, a syncer (every 10 ms).
    private let background = ConditionLock()
    @exclusivity(unchecked) private var stopping = false
    @exclusivity(unchecked) private var backgroundRunning = false
    @exclusivity(unchecked) private var backgroundThreads = 0
    private let backgroundDone = DispatchSemaphore(value: 0)

    init(log: WriteAheadLog, poolFile: any StorageFile, sync: StorageSync, checkpoint: WriteAheadLog.Checkpoint,
         durable: UnsafeMutableRawPointer, extent: Int) {
        self.log = log
        self.poolFile = poolFile
        self.sync = sync
        self.generation = checkpoint.generation + 1
        self.checkpointCounter = checkpoint.counter
        self.durable = durable
        self.extent = extent
        log.writeThrough = sync == .normal
        let pages = (extent + Self.pageSize - 1) / Self.pageSize
        dirtyBits = .allocate(capacity: (pages + 63) / 64)
        dirtyBits.initialize(repeating: 0, count: (pages + 63) / 64)
    }

    deinit {
        returnKey()
        dirtyBits.deallocate()
    }

    var description: String { sync == .full ? "write-ahead log + fdatasync (group commit)" : "write-ahead log, synced every 10 ms" }

    @inline(__always)
    private func threadState() -> ThreadState {
        if let existing = ThreadValueKeys.value(key, of: threadStates, as: ThreadState.self) { return existing }
        return ThreadValueKeys.attach(key, from: threadStates) { ThreadState(size: log.maximumRecordSize, pool: threadStates) }
    }

    /// Marks the page of a durable-view offset changed since the last checkpoint. Log locked.
    @inline(__always)
    private func markDirty(_ offset: Int) {
        let page = offset / Self.pageSize
        let mask: UInt64 = 1 << UInt64(page % 64)
        if dirtyBits[page / 64] & mask == 0 {
            dirtyBits[page / 64] |= mask
            dirtyPages.append(page)
        }
    }

    // MARK: PersistenceMedium

    func flush(_ address: UnsafeRawPointer, count: Int) {
        guard count > 0 else { return }
        let start = address - UnsafeRawPointer(durable)
        precondition(start >= 0 && start + count <= extent, "flush outside the durable view")
        let state = threadState()
        var line = start & ~63
        while line < start + count {
            state.lines.append(UInt64(line))
            line += 64
        }
    }

    func fence() {
        let state = threadState()
        guard !state.lines.isEmpty else { return }
        // Sorted and deduplicated in place: no allocation per fence.
        var lines = UnsafeMutableBufferPointer(start: state.lines.base, count: state.lines.count)
        defer { state.lines.removeAll() }
        lines.sort()
        var unique = 0
        for i in 0..<lines.count where unique == 0 || lines[unique - 1] != lines[i] {
            lines[unique] = lines[i]
            unique += 1
        }
        let perRecord = (log.maximumRecordSize - WriteAheadLog.recordSize(lines: 0)) / WriteAheadLog.lineEntrySize
        var end: UInt64 = 0
        var first = 0
        while first < unique {
            let count = min(perRecord, unique - first)
            let part = first
            end = log.append(size: WriteAheadLog.recordSize(lines: count), makeRoom: { checkpointOrWait() }) { lsn in
                let record = state.record
                for i in 0..<count {
                    let offset = Int(lines[part + i])
                    let entry = record + WriteAheadLog.recordHeaderSize + i * WriteAheadLog.lineEntrySize
                    entry.storeBytes(of: UInt64(offset), as: UInt64.self)
                    ferrite_copy_words(entry + 8, durable + offset, 8)
                    markDirty(offset)
                }
                log.seal(record, lines: count, lsn: lsn, generation: generation)
                return UnsafeRawPointer(record)
            }
            first += count
        }
        if backgroundRunning && log.used > log.capacity / 2 { background.withLock { background.broadcast() } }
        // `.normal`: the record was written as it was appended; the background thread syncs.
        if sync == .full && !state.deferring { log.waitDurable(through: end) }
    }

    // MARK: Deferred durability

    /// Runs `body` with the calling thread's fences returning once their records are appended,
    /// before they are synced. Every crash still leaves a prefix of the log, so recovery still
    /// finds a state the commit protocol allows at some instant; only the promise that a returned
    /// commit is durable moves to ``waitDurable(through:)``, which the caller must call before it
    /// acknowledges anything.
    func deferringDurability<R>(_ body: () throws -> R) rethrows -> R {
        let state = threadState()
        let outer = state.deferring
        state.deferring = true
        defer { state.deferring = outer }
        return try body()
    }

    /// The end of every record appended so far, by any thread.
    var appendedEnd: UInt64 { log.appendedEnd }

    /// Whether every record up to `lsn` is durable as this medium promises it: synced with
    /// ``StorageSync/full``, written with ``StorageSync/normal``.
    func isDurable(through lsn: UInt64) -> Bool {
        sync == .normal || log.isSynced(through: lsn)
    }

    /// Returns once every record up to `lsn` is durable as this medium promises it.
    func waitDurable(through lsn: UInt64) {
        if sync == .full { log.waitDurable(through: lsn) }
    }

    /// Runs (or waits for) a checkpoint when more than three quarters of the log are in use, so
    /// that appenders never find the ring full. Deferred commits do not wait for syncs, so
    /// nothing else slows them down to the checkpointer's pace; a caller that is about to commit
    /// while holding its own locks calls this first, without them.
    func makeRoomIfNeeded() {
        if log.usedEstimate > log.capacity / 4 * 3 { checkpointOrWait() }
    }

    /// Returns true once every record up to `lsn` is durable, unless a sync is under way: then
    /// returns false and calls `notify` once it is.
    func waitDurable(through lsn: UInt64, unlessBusy notify: @escaping @Sendable () -> Void) -> Bool {
        sync == .normal || log.waitDurable(through: lsn, unlessBusy: notify)
    }

    // MARK: Checkpoints

    /// Runs a checkpoint unless one is running, in which case it waits for that one (the ring is
    /// full: an appender makes room).
    private func checkpointOrWait() {
        // Whoever held the checkpoint lock before us may have made room already.
        do { try checkpoint(onlyAbove: log.capacity / 2) } catch {
            fatalError("Ferrite storage mode: a checkpoint failed: \(error). Stopping: the log could no longer take commits.")
        }
    }

    /// Writes every page records changed to the pool file, then records (durably) that replay
    /// starts at the LSN the pages were taken at, freeing the ring below it.
    ///
    /// Pages are copied from the durable view at some time after that LSN: they may hold newer
    /// content than its records, even content of fences not yet appended. That is what memory
    /// mode allows of lines written but not yet fenced, provided every record appended before the
    /// pages were taken is durable before the checkpoint record is: it is synced first. (With
    /// ``StorageSync/normal``, before each batch of pages is written, too.)
    /// With `onlyAbove`, does nothing unless more than that many bytes of the log are in use
    /// once it holds the checkpoint lock. If it fails, the pages it took are marked dirty again
    /// (they are rewritten from the durable view by the next checkpoint) and the log keeps every
    /// record since the last checkpoint: nothing is lost.
    func checkpoint(onlyAbove threshold: Int? = nil) throws(FileError) {
        checkpointLock.lock()
        defer { checkpointLock.unlock() }
        if let threshold, log.used <= threshold { return }
        var pages: [Int] = []
        let lsn = log.withAppendLock { appended in
            pages = dirtyPages
            dirtyPages.removeAll(keepingCapacity: true)
            for page in pages { dirtyBits[page / 64] &= ~(1 << UInt64(page % 64)) }
            return appended
        }
        do {
            try writePages(pages.sorted())
            log.waitDurable(through: log.end)
            // The size first: the pool may grow meanwhile, and only what the sync covers is durable.
            let size = try poolFile.size()
            try poolFile.sync()
            // The counter picks the record's slot: it moves on only once a record is durable, so
            // the last durable record is never the one overwritten.
            let counter = checkpointCounter + 1
            try log.writeCheckpoint(.init(counter: counter, lsn: lsn, generation: generation, poolFileSize: UInt64(size)))
            checkpointCounter = counter
            checkpointCount += 1
        } catch {
            log.withAppendLock { _ in for page in pages { markDirty(page * Self.pageSize) } }
            throw error
        }
    }

    /// Copies runs of pages from the durable view, word by word (never a torn word), and writes
    /// each run with one pwrite.
    private func writePages(_ pages: [Int]) throws(FileError) {
        let bufferPages = 256
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferPages * Self.pageSize, alignment: 4096)
        defer { buffer.deallocate() }
        var i = 0
        while i < pages.count {
            var run = 1
            while i + run < pages.count && run < bufferPages && pages[i + run] == pages[i] + run { run += 1 }
            let offset = pages[i] * Self.pageSize
            ferrite_copy_words(buffer, durable + offset, run * Self.pageSize / 8)
            // The pages may hold effects of commits whose fences returned before their records
            // were synced (`.normal`, or a thread in `deferringDurability`): those records must
            // be durable before the pages can reach the disk (the write-ahead rule). Records
            // appended before the copy are enough; when they are synced already (`.full`, no
            // deferred commits), this costs nothing.
            log.waitDurable(through: log.end)
            try poolFile.write(UnsafeRawBufferPointer(start: buffer, count: run * Self.pageSize), at: offset)
            i += run
        }
    }

    /// Notes the pages of lines recovery replayed from the log, so that the first checkpoint
    /// writes them.
    func noteReplayed(_ offset: Int) { log.withAppendLock { _ in markDirty(offset) } }

    // MARK: Background work

    /// Starts the background threads: the log's writer, a checkpointer (at half the ring), and in
    /// `.normal` mode a syncer (every 10 ms, never held up by a checkpoint).
    func startBackground() {
        // `.normal` commits never wait for a sync: the syncer alone syncs, every 10 ms.
        if sync == .full { log.startWriter() }
        backgroundRunning = true
        startLoop("ferrite-checkpointer") { [self] in
            if log.used > log.capacity / 2 { checkpointOrWait() }
        }
        if sync == .normal {
            startLoop("ferrite-syncer") { [self] in log.waitDurable(through: log.end) }
        }
    }

    /// Runs `body` every 10 ms (or sooner when woken) on a thread of its own, until close.
    private func startLoop(_ name: String, _ body: @escaping @Sendable () -> Void) {
        background.withLock { backgroundThreads += 1 }
        let thread = Thread { [self] in
            background.lock()
            while !stopping {
                background.wait(nanoseconds: 10_000_000)
                if stopping { break }
                background.unlock()
                body()
                background.lock()
            }
            background.unlock()
            backgroundDone.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops the background thread, then syncs and checkpoints everything (a clean close: the
    /// next open replays nothing).
    func close() {
        if backgroundRunning {
            let threads = background.withLock { stopping = true; background.broadcast(); return backgroundThreads }
            for _ in 0..<threads { backgroundDone.wait() }
            backgroundRunning = false
        }
        log.stopWriter()
        do { try checkpoint() } catch {
            // Everything committed is in the log already: the next open replays it.
            FileHandle.standardError.write(Data("Ferrite: the closing checkpoint failed (\(error)); the next open recovers from the log.\n".utf8))
        }
        log.close()
        returnKey()
    }

    /// States of threads still alive are dropped when they exit (or when the key's next owner
    /// finds them); the key goes to the next owner.
    private func returnKey() {
        guard !keyReturned else { return }
        keyReturned = true
        threadStates.close()
        ThreadValueKeys.giveBack(key)
    }
}
