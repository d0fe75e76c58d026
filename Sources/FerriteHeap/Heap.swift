import CFerriteShim
import FerriteMedium
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How a new pool is laid out. Recorded in the pool at creation; ignored when opening an
/// existing pool.
public struct HeapOptions: Sendable {
    /// Bytes the pool file starts with (rounded up to whole chunks).
    public var initialSize = 16 << 20
    /// The most the pool may grow to. Address space for it is reserved at open, so the pool grows
    /// in place and objects never move. Reserving address space costs no memory.
    public var maximumSize = 64 << 30
    /// The unit the allocator hands to threads and to large objects (a power of two, ≥ 16 KiB).
    public var chunkSize = 256 << 10
    /// How many redo logs the pool holds. A log is reused only once its transaction's effects are
    /// durably applied, a few commits later, so this bounds how far commits can run ahead.
    public var logSlotCount = 64
    /// The redo log capacity of one transaction, in bytes (a multiple of 4096).
    public var logSlotSize = 256 << 10
    /// Create the pool when the file does not exist.
    public var createIfMissing = true
    /// How a new pool makes commits durable: ``Durability/memory`` (cache-line flushes; power-safe
    /// on persistent memory) or ``Durability/storage`` (a write-ahead log and `fdatasync`;
    /// power-safe on any disk). Recorded in the pool: an existing pool keeps its own.
    public var durability = Durability.memory
    /// Storage mode: the capacity of the write-ahead log ring (`<pool>-wal`), in bytes (a
    /// multiple of 4096, at least 64 KiB). A checkpoint runs when half of it is in use, so it
    /// bounds recovery time. Recorded in the log at creation.
    public var logCapacity = 64 << 20
    /// Storage mode: whether a commit waits for `fdatasync` (``StorageSync/full``, the default) or
    /// only for the write (``StorageSync/normal``, which may lose the last milliseconds of commits
    /// on power loss). Chosen at every open.
    public var storageSync = StorageSync.full

    public init() {}

    var layout: PoolLayout {
        PoolLayout(chunkSize: chunkSize, maxChunks: max(1, maximumSize / chunkSize),
                   logSlotCount: logSlotCount, logSlotSize: logSlotSize)
    }
}

/// How a pool makes committed transactions durable. Chosen when the pool is created.
public enum Durability: Sendable {
    /// Cache-line write-backs and fences (`clwb` + `sfence`): power-safe on persistent memory
    /// (DAX, CXL); on other file systems, safe against process crashes only.
    case memory
    /// A write-ahead log with `fdatasync` and group commit, and checkpoints to the pool file:
    /// power-safe on any file system.
    case storage
}

/// A persistent heap: a pool file mapped into memory, holding objects that survive crashes.
///
/// Open one with ``init(path:options:)``. Objects are proxies (``PersistentObject``) that read
/// and write their fields in place in the mapped pool. Every change happens inside
/// ``transaction(_:)``, which is failure-atomic: after a crash, a transaction's writes,
/// allocations and frees are either all present or all absent.
///
/// ## Durability
/// A pool's ``Durability`` is chosen at creation. In storage mode a committed transaction is in a
/// write-ahead log synced with `fdatasync` (group commit) and survives power loss on any file
/// system. In memory mode changes are made durable with cache-line write-backs and fences: on a
/// DAX file system (persistent memory, CXL memory), where the pool is mapped with `MAP_SYNC`, a
/// committed transaction survives power loss; on any other file system (tmpfs, ext4 without DAX)
/// it survives the crash of the process, but not of the machine: ``isDAX`` says which.
///
/// ## Isolation
/// Transactions on different threads run concurrently and must touch disjoint objects; Ferrite
/// does not detect conflicts. To share objects between threads, use
/// ``transaction(locking:_:)``, which holds a lock per object for the whole transaction, or your
/// own locks held around the whole transaction. Reads outside transactions see writes of
/// in-flight transactions (there is no snapshot isolation).
public final class Heap: @unchecked Sendable {
    /// The pool file's path (`<memory>` for heaps made from an image in tests).
    public let path: String
    /// The pool's identity, fixed at creation.
    public let uuid: UUID
    /// Whether the pool is mapped from a DAX file with MAP_SYNC, so that flushed data survives
    /// power loss. When false, committed transactions survive process crashes only.
    public var isDAX: Bool { mapping.isDAX }
    /// The medium that makes stores durable.
    public let medium: any PersistenceMedium
    /// How this pool makes commits durable (recorded in the pool at creation).
    public var durability: Durability { storage == nil ? .memory : .storage }
    /// Storage mode: the write-ahead log medium, which also checkpoints.
    let storage: StorageMedium?

    @usableFromInline let base: UnsafeMutableRawPointer
    let mapping: PoolMapping
    let layout: PoolLayout
    let allocator: Allocator
    let domain: PersistDomain
    /// What recovery did when the pool was opened.
    public private(set) var recovery = RecoveryReport()

    /// The calling thread's context of this heap, retained (see ``PooledThreadValue``).
    private var key = pthread_key_t()
    private var hasKey = false
    /// Contexts of exited threads, for the next threads.
    let contextPool = ThreadValuePool()
    private let contextsLock = Lock()
    /// Every context of this heap (for the check at close).
    private var contexts: [TransactionContext] = []
    let typesLock = Lock()
    /// Registered types: published once their hooks have run.
    var swiftTypes: [UInt64: any PersistentObject.Type] = [:]
    /// Types being registered (their hooks running), visible to the registering thread's hooks only.
    var pendingTypes: [UInt64: any PersistentObject.Type] = [:]
    /// Maps the pool's pages in the background after open.
    let warmUp = WarmUp()
    /// Serializes registrations (recursive: a hook registers the types it uses).
    let registrationLock = NSRecursiveLock()
    /// Bumped when a rolled-back transaction withdraws types, so that threads drop their caches.
    let registrationGeneration = Atomic<Int>(0)
    var poolTypes: [UInt64: String] = [:]
    let rootLock = Lock()
    var reservedRoots: Set<Int> = []
    private let stripes: UnsafeMutablePointer<pthread_mutex_t>
    static let stripeCount = 1024
    @exclusivity(unchecked) private(set) var isClosed = false
    /// Tags the transaction locks this process takes (``TransactionLock``): random at every open,
    /// so that a lock word left in the pool by an earlier process counts as free.
    @usableFromInline let lockGeneration = UInt64(UInt32.random(in: 1 ... .max)) << 32

    /// What opening the pool found and did.
    public struct RecoveryReport: Sendable {
        /// Committed transactions whose effects were re-applied from their logs.
        public var replayedTransactions = 0
        /// Records re-applied.
        public var replayedRecords = 0
        /// Transactions that had not reached their commit point: discarded, as if never run.
        public var discardedTransactions = 0
        /// Storage mode: write-ahead log records replayed into the pool (those since the last
        /// checkpoint).
        public var replayedLogRecords = 0
        /// Time spent opening the pool (mapping, recovery, allocator), in seconds.
        public var openSeconds = 0.0
    }

    /// Opens the pool at `path`, creating it if it does not exist (unless
    /// `options.createIfMissing` is false), and recovers it if a crash interrupted transactions.
    ///
    /// - Throws: ``HeapError`` when the file is not a pool, is truncated or corrupt, was written by
    ///   a newer format, is open elsewhere, or a system call fails. A failed open never writes to
    ///   the file.
    /// - Parameter medium: the durability medium of a memory-mode pool; by default the CPU's
    ///   cache-line write-back. A storage-mode pool always uses its write-ahead log.
    public convenience init(path: String, options: HeapOptions = HeapOptions(),
                            medium: (any PersistenceMedium)? = nil) throws(HeapError) {
        let started = ferrite_monotonic_nanoseconds()
        let logPath = Self.logPath(forPool: path)
        if access(path, F_OK) != 0 {
            guard options.createIfMissing else { throw .systemError(operation: "open", path: path, errno: ENOENT) }
            try Self.create(path: path, logPath: logPath, options: options)
        }
        let (fd, header, fileSize) = try PoolMapping.lockAndReadHeader(path: path)
        if header.durability == .storage {
            guard access(logPath, F_OK) == 0 else { Glibc.close(fd); throw .missingLog(path: logPath) }
            let logFile: SystemFile
            do { logFile = try SystemFile(opening: logPath) } catch {
                Glibc.close(fd)
                throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
            }
            let poolFile = SystemFile(descriptor: fd, path: path, owned: false)
            let opened = try Self.openStorage(fd: fd, poolFile: poolFile, logFile: logFile, header: header, fileSize: fileSize, options: options)
            try self.init(mapping: opened.mapping, header: opened.header, medium: opened.medium, started: started, storage: opened.medium,
                          replayedLogRecords: opened.replayed)
        } else {
            let mapping = try PoolMapping.memory(fd: fd, path: path, header: header)
            try self.init(mapping: mapping, header: header, medium: medium ?? CPUCacheMedium(), started: started)
        }
    }

    /// Creates a pool (and, in storage mode, its log) at `path`, while holding a lock on the
    /// directory: two processes creating the same pool at once must not mix their files. Does
    /// nothing if the pool appeared meanwhile.
    private static func create(path: String, logPath: String, options: HeapOptions) throws(HeapError) {
        let directory = (path as NSString).deletingLastPathComponent
        let dfd = Glibc.open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw .systemError(operation: "open directory", path: directory, errno: errno) }
        defer { Glibc.close(dfd) }
        guard flock(dfd, LOCK_EX) == 0 else { throw .systemError(operation: "flock", path: directory, errno: errno) }
        defer { flock(dfd, LOCK_UN) }
        if access(path, F_OK) == 0 { return }
        let header = try newHeader(options: options)
        if options.durability == .storage {
            // The log first, complete and synced under a temporary name, then renamed and the
            // directory synced: a pool file never exists without its log.
            let temporary = logPath + ".creating-\(getpid())"
            let fd = Glibc.open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw .systemError(operation: "create", path: temporary, errno: errno) }
            do {
                try WriteAheadLog.create(file: SystemFile(descriptor: fd, path: temporary, owned: true), uuid: header.uuid,
                                         capacity: options.logCapacity, poolFileSize: header.layout.fileSize(chunks: header.chunkCount))
            } catch {
                unlink(temporary)
                throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
            }
            guard rename(temporary, logPath) == 0 else {
                let code = errno
                unlink(temporary)
                throw .systemError(operation: "rename", path: logPath, errno: code)
            }
            syncDirectory(of: logPath)
        }
        try PoolMapping.createFile(path: path, header: header)
    }

    /// The path of a storage-mode pool's write-ahead log: the pool's, with `-wal` added.
    public static func logPath(forPool path: String) -> String { path + "-wal" }

    private static func newHeader(options: HeapOptions) throws(HeapError) -> PoolHeader {
        let layout = options.layout
        if let problem = layout.validate() { throw .invalidOptions(problem) }
        guard options.initialSize <= options.maximumSize else { throw .invalidOptions("initialSize exceeds maximumSize") }
        if options.durability == .storage {
            guard options.logCapacity >= 64 << 10, options.logCapacity % 4096 == 0, options.logCapacity <= 1 << 36 else {
                throw .invalidOptions("logCapacity \(options.logCapacity) must be a multiple of 4096 between 64 KiB and 64 GiB")
            }
        }
        let chunks = min(layout.maxChunks, max(1, (options.initialSize + layout.chunkSize - 1) / layout.chunkSize))
        return PoolHeader(layout: layout, uuid: UUID(), chunkCount: chunks, durability: options.durability)
    }

    /// Opens (creating them when the pool file is empty) a storage-mode pool and its log held in
    /// any ``StorageFile``s: tests use a ``SimulatedDisk``'s.
    @_spi(Testing) public convenience init(storagePool poolFile: any StorageFile, log logFile: any StorageFile,
                                           options: HeapOptions = HeapOptions()) throws(HeapError) {
        let started = ferrite_monotonic_nanoseconds()
        func io<R>(_ body: () throws(FileError) -> R) throws(HeapError) -> R {
            do { return try body() } catch { throw .systemError(operation: error.operation, path: error.path, errno: error.errno) }
        }
        if try io({ () throws(FileError) in try poolFile.size() }) == 0 {
            var storageOptions = options
            storageOptions.durability = .storage
            let header = try Self.newHeader(options: storageOptions)
            try io { () throws(FileError) in
                try WriteAheadLog.create(file: logFile, uuid: header.uuid, capacity: options.logCapacity,
                                         poolFileSize: header.layout.fileSize(chunks: header.chunkCount))
                try poolFile.write(header.encoded(), at: 0)
                try poolFile.setSize(header.layout.fileSize(chunks: header.chunkCount))
                try poolFile.sync()
            }
        }
        let fileSize = try io { () throws(FileError) in try poolFile.size() }
        let bytes = try io { () throws(FileError) in try poolFile.read(count: min(fileSize, PoolLayout.headerSize), at: 0) }
        let header = try bytes.withUnsafeBytes { raw in
            Result { () throws(HeapError) in try PoolHeader.decode(raw, fileSize: fileSize, path: poolFile.path) }
        }.get()
        guard header.durability == .storage else { throw .invalidOptions("\(poolFile.path) is a memory-mode pool") }
        let opened = try Self.openStorage(fd: -1, poolFile: poolFile, logFile: logFile, header: header, fileSize: fileSize, options: options)
        try self.init(mapping: opened.mapping, header: opened.header, medium: opened.medium, started: started, storage: opened.medium,
                      replayedLogRecords: opened.replayed)
    }

    /// Storage-mode recovery, first part: replays the log since the last checkpoint into the
    /// durable view (re-extending the file if growth was lost), then checkpoints with a new
    /// generation, so that records of this open can never be confused with stale ones. The memory
    /// protocol's own recovery (redo logs above the watermark) follows, through the log.
    private static func openStorage(fd: Int32, poolFile: any StorageFile, logFile: any StorageFile, header: PoolHeader,
                                    fileSize: Int, options: HeapOptions)
        throws(HeapError) -> (mapping: PoolMapping, header: PoolHeader, medium: StorageMedium, replayed: Int) {
        func io<R>(_ body: () throws(FileError) -> R) throws(HeapError) -> R {
            do { return try body() } catch { throw .systemError(operation: error.operation, path: error.path, errno: error.errno) }
        }
        let layout = header.layout
        let log: WriteAheadLog, checkpoint: WriteAheadLog.Checkpoint
        do {
            (log, checkpoint) = try WriteAheadLog.open(file: logFile, uuid: header.uuid)
        } catch {
            if fd >= 0 { Glibc.close(fd) }
            throw error
        }
        guard fileSize >= Int(checkpoint.poolFileSize) else {
            if fd >= 0 { Glibc.close(fd) }
            throw .truncated(path: poolFile.path, expectedBytes: Int(checkpoint.poolFileSize), actualBytes: fileSize)
        }
        // Which part of the pool the records reach: growth since the checkpoint may be lost.
        var reach = layout.fileSize(chunks: header.chunkCount)
        var beyond = false
        let scanned: (end: UInt64, records: Int)
        do {
            scanned = try log.replay(generation: checkpoint.generation) { offset, _ in
                if offset < 0 || offset % 64 != 0 || offset + 64 > layout.maximumSize { beyond = true } else { reach = max(reach, offset + 64) }
            }
        } catch {
            if fd >= 0 { Glibc.close(fd) }
            throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
        }
        if beyond {
            if fd >= 0 { Glibc.close(fd) }
            throw .corruptLog(path: logFile.path, reason: "a record reaches outside the pool")
        }
        let chunksReached = (max(0, reach - layout.heapOffset) + layout.chunkSize - 1) / layout.chunkSize
        let mapSize = layout.fileSize(chunks: min(layout.maxChunks, chunksReached))
        do {
            if fileSize < mapSize { try io { () throws(FileError) in try poolFile.setSize(mapSize) } }
        } catch {
            if fd >= 0 { Glibc.close(fd) }
            throw error
        }
        let mapping = try PoolMapping.storage(fd: fd, file: poolFile, reserve: layout.maximumSize, map: mapSize)
        let medium = StorageMedium(log: log, poolFile: poolFile, sync: options.storageSync, checkpoint: checkpoint,
                                   durable: mapping.durable, extent: layout.maximumSize)
        let durable = mapping.durable
        let replayed = try io { () throws(FileError) in try log.replay(generation: checkpoint.generation, through: scanned.end) { offset, content in
            ferrite_copy_words(durable + offset, content, 8)
            medium.noteReplayed(offset)
        } }
        guard replayed.end == scanned.end else {
            throw .corruptLog(path: logFile.path, reason: "its records changed while it was read")
        }
        var recovered = header
        recovered.chunkCount = Int(ferrite_atomic_load_u64(durable + PoolLayout.offChunkCount))
        guard recovered.chunkCount >= 1, recovered.chunkCount <= layout.maxChunks else {
            throw .corruptHeader(path: poolFile.path, reason: "chunk count \(recovered.chunkCount) after replaying the log")
        }
        // The first write of this open: the replayed pages, under a new generation.
        try io { () throws(FileError) in try medium.checkpoint() }
        try mapping.grow(to: layout.fileSize(chunks: recovered.chunkCount))
        return (mapping, recovered, medium, replayed.records)
    }

    /// Opens a pool image held in memory (tests open simulated crash images this way).
    /// `beforeRecovery` sees the mapped image (base, size) before recovery touches it.
    @_spi(Testing) public convenience init(image: UnsafeRawBufferPointer, medium: (any PersistenceMedium)? = nil,
                     beforeRecovery: (UnsafeMutableRawPointer, Int) -> Void = { _, _ in }) throws(HeapError) {
        let started = ferrite_monotonic_nanoseconds()
        let header = try PoolHeader.decode(UnsafeRawBufferPointer(rebasing: image.prefix(PoolLayout.headerSize)),
                                           fileSize: image.count, path: "<memory>")
        let mapping = try PoolMapping.anonymous(image: image, reserve: header.layout.maximumSize)
        beforeRecovery(mapping.durable, header.layout.maximumSize.roundedUp(to: 64))
        try self.init(mapping: mapping, header: header, medium: medium ?? CPUCacheMedium(), started: started)
    }

    /// Creates a pool image in memory with the given options (tests).
    @_spi(Testing) public static func makeImage(options: HeapOptions) -> [UInt8] {
        let layout = options.layout
        precondition(layout.validate() == nil)
        let chunks = min(layout.maxChunks, max(1, options.initialSize / layout.chunkSize))
        var image = [UInt8](repeating: 0, count: layout.maximumSize)
        let header = PoolHeader(layout: layout, uuid: UUID(), chunkCount: chunks).encoded()
        image.replaceSubrange(0..<header.count, with: header)
        return image
    }

    private init(mapping: PoolMapping, header: PoolHeader, medium: any PersistenceMedium, started: UInt64,
                 storage: StorageMedium? = nil, replayedLogRecords: Int = 0) throws(HeapError) {
        self.mapping = mapping
        self.storage = storage
        self.base = mapping.working
        self.layout = header.layout
        self.uuid = header.uuid
        self.path = mapping.path
        self.medium = medium
        // Recovery: replay, in commit order, every complete log above the applied watermark.
        // Its cost is the size of those logs; no object is visited. Incomplete logs (transactions
        // that had not reached their commit fence) are ignored: nothing of them reached the file.
        let layout = header.layout
        let durable = mapping.durable
        var report = RecoveryReport()
        report.replayedLogRecords = replayedLogRecords
        var watermark = ferrite_atomic_load_u64(durable + PoolLayout.offAppliedSeq)
        let slotSeqs = (0..<layout.logSlotCount).map { ferrite_atomic_load_u64(durable + layout.logSlotOffset($0)) }
        let recoveryDomain = PersistDomain(medium: medium, durable: durable, layout: layout, watermark: watermark,
                                           highestSeq: slotSeqs.max() ?? 0, slotSeqs: slotSeqs)
        let recoveryAllocator = Allocator(base: durable, durable: durable, layout: layout, domain: recoveryDomain, mapping: mapping, chunkCount: header.chunkCount)
        recoveryDomain.allocator = recoveryAllocator
        var committed: [(seq: UInt64, records: [LogRecord])] = []
        for (slot, seq) in slotSeqs.enumerated() where seq > watermark {
            let log = RedoLog(slot: durable + layout.logSlotOffset(slot), capacity: layout.logSlotSize)
            if let records = log.committedRecords(seq: seq) { committed.append((seq, records)) } else { report.discardedTransactions += 1 }
        }
        if !committed.isEmpty {
            for entry in committed.sorted(by: { $0.seq < $1.seq }) {
                RedoLog.apply(entry.records, allocator: recoveryAllocator, poolSize: mapping.mappedSize)
                report.replayedRecords += entry.records.count
            }
            report.replayedTransactions = committed.count
            medium.fence()
            watermark = committed.map(\.seq).max()!
            ferrite_atomic_store_u64(durable + PoolLayout.offAppliedSeq, watermark)
            medium.flush(durable + PoolLayout.offAppliedSeq, count: 8)
            medium.fence()
        }
        if let storage {
            // The working view reads the file's pages: they must hold everything recovered.
            do { try storage.checkpoint() } catch {
                mapping.close()
                throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
            }
        }
        try mapping.mapWorking()
        let domain = PersistDomain(medium: medium, durable: durable, layout: layout, watermark: watermark,
                                   highestSeq: slotSeqs.max() ?? 0, slotSeqs: slotSeqs)
        self.domain = domain
        self.allocator = Allocator(base: mapping.working, durable: durable, layout: layout, domain: domain, mapping: mapping, chunkCount: header.chunkCount)
        domain.allocator = allocator
        domain.poolSize = { [unowned mapping] in mapping.mappedSize }
        self.stripes = .allocate(capacity: Self.stripeCount)
        for i in 0..<Self.stripeCount {
            (stripes + i).initialize(to: pthread_mutex_t())
            pthread_mutex_init(stripes + i, nil)
        }
        key = ThreadValueKeys.take()
        hasKey = true
        loadPoolTypes()
        report.openSeconds = Double(ferrite_monotonic_nanoseconds() - started) / 1e9
        recovery = report
        storage?.startBackground()
        warmUp.start(views: [mapping.working, mapping.durable], ranges: dataRanges())
        if mapping.fd >= 0 {
            allocator.prefault = ChunkPrefault(views: [mapping.working, mapping.durable], heapOffset: layout.heapOffset, chunkSize: layout.chunkSize)
        }
    }

    /// The byte ranges of the pool that hold data, in order, adjacent ones merged: the metadata
    /// before the heap and the chunks in use, clipped to the mapped size. O(chunks).
    func dataRanges() -> [Range<Int>] {
        var ranges = [0..<min(layout.heapOffset, mapping.mappedSize)]
        for run in allocator.chunkRunsInUse() {
            let start = layout.heapOffset + run.lowerBound * layout.chunkSize
            let end = min(layout.heapOffset + run.upperBound * layout.chunkSize, mapping.mappedSize)
            guard start < end else { continue }
            if ranges[ranges.count - 1].upperBound == start {
                ranges[ranges.count - 1] = ranges[ranges.count - 1].lowerBound..<end
            } else {
                ranges.append(start..<end)
            }
        }
        return ranges
    }

    deinit {
        close()
        for i in 0..<Self.stripeCount { pthread_mutex_destroy(stripes + i) }
        stripes.deallocate()
    }

    /// Closes the heap: unmaps the pool and releases its lock. Proxies of this heap must not be
    /// used afterwards (their fields are unmapped); the heap itself answers on any thread:
    /// transactions, allocations, frees, roots, ``handle(at:)``, ``object(at:as:)`` and
    /// ``register(_:)`` throw ``HeapError/closed``, ``inTransaction`` is false and ``rootNames``
    /// empty. No transaction may be running. Threads that used the heap release what they kept
    /// of it when they exit. Called automatically on deinit.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        contextsLock.withLock {
            for context in contexts { precondition(!context.isActive, "Heap closed while a transaction is running") }
            contexts.removeAll()
        }
        contextPool.close()
        // Threads still holding a context of this heap release it when they exit, or when a heap
        // that takes this key next finds it in their slot.
        if hasKey { ThreadValueKeys.giveBack(key) }
        warmUp.stop()
        allocator.prefault?.stop()
        storage?.close()
        mapping.close()
    }

    /// What storage mode's write-ahead log has done since the pool was opened.
    public struct StorageStatistics: Sendable {
        /// Records appended (one per fence: a commit, or a watermark or allocator update).
        public var logRecords: Int
        /// `fdatasync`s of the log: with group commit, fewer than records under concurrency.
        public var logSyncs: Int
        /// Checkpoints completed.
        public var checkpoints: Int
        /// Bytes of the log ring in use (appended since the last checkpoint), and its capacity.
        public var logBytesInUse: Int
        public var logCapacity: Int
    }

    /// Storage mode: the write-ahead log's statistics; nil in memory mode.
    public var storageStatistics: StorageStatistics? {
        guard let storage else { return nil }
        let counts = storage.log.statistics
        return StorageStatistics(logRecords: counts.records, logSyncs: counts.syncs, checkpoints: storage.checkpointCount,
                                 logBytesInUse: storage.log.used, logCapacity: storage.log.capacity)
    }

    /// Storage mode: writes every page changed since the last checkpoint to the pool file and
    /// moves the log's replay point past them (a checkpoint also runs by itself whenever half the
    /// log is in use, and at close). Memory mode: does nothing.
    public func checkpoint() throws(HeapError) {
        guard !isClosed, let storage else { return }
        do { try storage.checkpoint() } catch {
            throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
        }
    }

    // MARK: Thread contexts and log slots

    /// The calling thread's context, if it has one (never creates one).
    @inline(__always)
    func existingContext() -> TransactionContext? {
        ThreadValueKeys.value(key, of: contextPool, as: TransactionContext.self)
    }

    @inline(__always)
    func context() -> TransactionContext {
        if let existing = existingContext() { return existing }
        return attachContext()
    }

    /// Gives the calling thread a context: one an exited thread left, or a new one.
    @inline(never)
    private func attachContext() -> TransactionContext {
        // Its key may belong to another heap now: never touch the slot.
        precondition(!isClosed, "a closed heap was used: its objects and proxies must not be used after close()")
        return ThreadValueKeys.attach(key, from: contextPool) {
            let context = TransactionContext(heap: self)
            contextsLock.withLock { contexts.append(context) }
            return context
        }
    }

    func logSlot(_ slot: Int) -> RedoLog {
        RedoLog(slot: mapping.durable + layout.logSlotOffset(slot), capacity: layout.logSlotSize)
    }

    // MARK: Transactions

    /// Runs `body` as a failure-atomic transaction and returns its result.
    ///
    /// Every write to a persistent object, allocation and free made in `body` takes effect
    /// entirely or not at all, across process crashes (and power loss on DAX). When `body` returns,
    /// the transaction is committed and durable. When it throws, every change is rolled back and
    /// the error is rethrown.
    ///
    /// Transactions nest by flattening: an inner `transaction` joins the outermost one, which
    /// alone commits. If an inner transaction throws, the whole outermost transaction is rolled
    /// back when it ends, even if the error was caught (it then throws
    /// ``HeapError/transactionAborted``).
    ///
    /// Cost: one ordered persist point (one fence) per transaction that changes anything, however
    /// many objects it writes, allocates or frees; a transaction that only reads costs nothing.
    /// Its log holds the new bytes of every 8-byte word written, so a transaction is limited by the
    /// pool's `logSlotSize` (``HeapError/transactionTooLarge(logBytes:)`` beyond it).
    public func transaction<R>(_ body: () throws -> R) throws -> R {
        guard !isClosed else { throw HeapError.closed }
        let context = self.context()
        let enclosing = pthread_getspecific(currentHeapKey)
        pthread_setspecific(currentHeapKey, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(currentHeapKey, enclosing) }
        context.depth += 1
        let result: R
        do {
            result = try body()
        } catch {
            context.depth -= 1
            if context.depth == 0 { context.abort() } else if context.failure == nil { context.failure = error }
            throw error
        }
        if context.depth == 1 {
            do {
                // The depth stays 1 while committing, so that close() sees a commit in progress.
                defer { context.depth = 0 }
                try context.commit()
            }
            if !context.afterCommitActions.isEmpty {
                let actions = context.afterCommitActions
                context.afterCommitActions.removeAll()
                for action in actions { action() }
            }
        } else {
            context.depth -= 1
        }
        return result
    }

    /// Runs a transaction while holding a lock for each of `objects`, so that transactions that
    /// name the same objects run one at a time (serializable for those objects). Locks are taken
    /// in a fixed order, so two such transactions never deadlock. Locks are striped: unrelated
    /// objects occasionally share a lock.
    public func transaction<R>(locking objects: [any PersistentObject], _ body: () throws -> R) throws -> R {
        let indexes = Set(objects.map { Int(truncatingIfNeeded: ($0.reference >> 4) &* 0x9E37_79B9_7F4A_7C15 >> 54) % Self.stripeCount }).sorted()
        for index in indexes { pthread_mutex_lock(stripes + index) }
        defer { for index in indexes.reversed() { pthread_mutex_unlock(stripes + index) } }
        return try transaction(body)
    }

    /// Whether the calling thread is inside a transaction on this heap.
    public var inTransaction: Bool { existingContext()?.isActive ?? false }

    /// The heap whose transaction the calling thread is running (the innermost one when
    /// transactions of several heaps nest), or nil outside any transaction. `@Persistent`
    /// initializers allocate their objects in it.
    public static var current: Heap? {
        pthread_getspecific(currentHeapKey).map { Unmanaged<Heap>.fromOpaque($0).takeUnretainedValue() }
    }

    func activeContext(_ operation: String) throws(HeapError) -> TransactionContext {
        guard !isClosed else { throw .closed }
        let context = self.context()
        guard context.isActive else { throw .notInTransaction(operation: operation) }
        return context
    }

    /// Logs and performs a store of `bytes` into an object's fields at `offset`.
    @usableFromInline
    func store(_ bytes: UnsafeRawBufferPointer, into handle: ObjectHandle, at offset: Int) {
        precondition(!isClosed, "a persistent object of a closed heap was written")
        precondition(offset >= 0 && offset + bytes.count <= handle.size, "store outside the object's fields")
        let context = self.context()
        let implicit = !context.isActive
        if implicit { context.depth = 1 }
        let target = handle.fields + offset
        if context.prepareWrite(block: handle.reference, offset: target - base, count: bytes.count) {
            target.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count)
        }
        if implicit {
            context.depth = 0
            do { try context.commit() } catch { preconditionFailure("a single-field write could not commit: \(error)") }
        }
    }

    func payloadSize(ofBlock block: Int) -> Int {
        Int((base + block).load(fromByteOffset: 8, as: UInt64.self))
    }

    // MARK: Objects

    /// Allocates a zeroed object of type `T` in the current transaction.
    ///
    /// - Throws: ``HeapError/notInTransaction(operation:)`` outside a transaction,
    ///   ``HeapError/poolFull(requestedBytes:maximumBytes:)`` when the pool cannot grow.
    public func allocate<T: PersistentObject>(_ type: T.Type) throws(HeapError) -> T {
        let id = try ensureRecorded(T.self)
        return T(handle: try allocateBlock(typeID: id, size: T.persistentSize))
    }

    /// Registers a type and records it in the pool the first time this thread allocates one;
    /// afterwards a per-thread list answers without taking the shared types lock.
    /// Returns the type's id (computed once here: for generic types it hashes a built name).
    private func ensureRecorded(_ type: any PersistentObject.Type) throws(HeapError) -> UInt64 {
        guard !isClosed else { throw .closed }
        let context = self.context()
        let id = type.persistentTypeID
        context.refreshTypeCaches(generation: registrationGeneration.load(ordering: .acquiring))
        if context.recordedTypes.contains(id) { return id }
        _ = try ensureRegistered(type, context: context)
        try recordPoolType(type)
        context.recordedTypes.append(id)
        return id
    }

    /// Allocates a zeroed object of type `T` with `size` bytes of fields (at least
    /// `T.persistentSize`), for types whose objects vary in size, such as tables of references.
    public func allocate<T: PersistentObject>(_ type: T.Type, size: Int) throws(HeapError) -> T {
        precondition(size >= T.persistentSize, "an object needs at least persistentSize bytes")
        let id = try ensureRecorded(T.self)
        return T(handle: try allocateBlock(typeID: id, size: size))
    }

    /// Allocates a zeroed object of type `T` in the current transaction and returns its handle,
    /// without making a proxy (for initializers that make themselves the object's proxy).
    public func allocateObject<T: PersistentObject>(of type: T.Type) throws(HeapError) -> ObjectHandle {
        let id = try ensureRecorded(T.self)
        return try allocateBlock(typeID: id, size: T.persistentSize)
    }

    /// Runs `action` on this thread once its current transaction on this heap has committed
    /// (outside any transaction), or now outside a transaction. Dropped if the transaction rolls back.
    public func afterCommit(_ action: @escaping () -> Void) {
        if let context = existingContext(), context.isActive { context.afterCommitActions.append(action) } else { action() }
    }

    /// Dooms the calling thread's transaction on this heap: it rolls back when it ends, and the
    /// outermost ``transaction(_:)`` throws `error`. For accessors that cannot throw (property
    /// setters and initializers) when a write fails, say because the pool is full. Does nothing
    /// outside a transaction, or if the transaction is already doomed.
    public func failTransaction(_ error: HeapError) {
        if let context = existingContext(), context.isActive && context.failure == nil { context.failure = error }
    }

    /// Allocates `count` zeroed bytes (an untyped buffer) in the current transaction.
    public func allocateBytes(_ count: Int) throws(HeapError) -> ObjectHandle {
        try allocateBlock(typeID: TypeID.bytes, size: count)
    }

    func allocateBlock(typeID: UInt64, size: Int) throws(HeapError) -> ObjectHandle {
        let context = try activeContext("allocate")
        let offset = try context.allocate(bytes: ObjectHeader.size + size)
        let block = base + offset
        block.storeBytes(of: typeID, as: UInt64.self)
        block.storeBytes(of: UInt64(size), toByteOffset: 8, as: UInt64.self)
        (block + ObjectHeader.size).initializeMemory(as: UInt8.self, repeating: 0, count: size)
        return ObjectHandle(heap: self, reference: UInt64(offset))
    }

    /// Frees an object in the current transaction. Its memory is reused only after the
    /// transaction commits. The caller must remove every reference to it.
    /// Blocks the object owns (see ``PersistentObject/persistentWillFree(_:)``) are freed with it.
    public func free<T: PersistentObject>(_ object: T) throws(HeapError) {
        _ = try activeContext("free")
        try T.persistentWillFree(object.handle)
        try free(object.handle)
    }

    /// Frees the block behind a handle in the current transaction.
    public func free(_ handle: ObjectHandle) throws(HeapError) {
        try activeContext("free").free(block: handle.reference)
    }

    /// Checks that `reference` is the start of a live block and returns its handle.
    public func handle(at reference: UInt64) throws(HeapError) -> ObjectHandle {
        guard !isClosed else { throw .closed }
        let offset = Int(truncatingIfNeeded: reference)
        guard offset >= layout.heapOffset, offset + ObjectHeader.size <= mapping.mappedSize, offset % 16 == 0,
              allocator.isAllocated(offset) || allocator.hugeRun(at: offset) != nil || existingContext()?.newBlocks[reference] != nil else {
            throw .invalidReference(reference)
        }
        return ObjectHandle(heap: self, reference: reference)
    }

    /// Re-creates the proxy for the object at `reference`, of whatever registered type it is.
    public func object(at reference: UInt64) throws(HeapError) -> any PersistentObject {
        let handle = try self.handle(at: reference)
        guard let type = typesLock.withLock({ swiftTypes[handle.typeID] }) else {
            throw .unregisteredType(id: handle.typeID, name: typesLock.withLock { poolTypes[handle.typeID] })
        }
        return type.init(handle: handle)
    }

    /// Re-creates a proxy of type `T` for the object at `reference`.
    /// - Throws: ``HeapError/typeMismatch(reference:expected:found:)`` if it is another type.
    /// Registers `T` first if this thread has not yet (see ``register(_:)``).
    public func object<T: PersistentObject>(at reference: UInt64, as type: T.Type) throws(HeapError) -> T {
        guard !isClosed else { throw .closed }
        let id = try ensureRegistered(T.self, context: context())  // first: registering may move objects
        let handle = try self.handle(at: reference)
        guard handle.typeID == id else {
            let found = typesLock.withLock { poolTypes[handle.typeID] } ?? "type \(String(handle.typeID, radix: 16))"
            throw .typeMismatch(reference: reference, expected: T.persistentTypeName, found: found)
        }
        return T(handle: handle)
    }

    // MARK: Statistics

    /// The durable view's address and the extent a simulated medium must watch (tests).
    @_spi(Testing) public var durableView: (base: UnsafeMutableRawPointer, size: Int) {
        (mapping.durable, layout.maximumSize.roundedUp(to: 64))
    }

    /// The pool's current size in bytes, and its maximum.
    public var size: (current: Int, maximum: Int) { (mapping.mappedSize, layout.maximumSize) }

    /// Bytes of the heap's chunks that hold objects (a chunk of small blocks counts whole, however
    /// few it holds), and the size of a chunk. Costs a pass over the chunk table, not the objects.
    public var bytesInUse: (chunks: Int, chunkSize: Int) { (allocator.chunksInUse * layout.chunkSize, layout.chunkSize) }
}

/// The thread-local slot behind ``Heap/current``: the heap of the calling thread's outermost
/// running transaction (unretained).
let currentHeapKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

/// After a pool opens, a background thread maps the pages that hold data in advance (the
/// metadata before the heap and every chunk in use), both views, a slice at a time, so that the
/// first transactions after a restart do not each stop for page faults on pages nobody has
/// touched yet (a large pool's throughput otherwise ramps up over seconds). Mapping a page
/// readable changes nothing in it; `stop()` (at close) waits for the current slice.
///
/// Free chunks are left alone: mapped readable, a page of the private working view would need a
/// copy-on-write fault (with a TLB shootdown once another thread runs) on its first write; the
/// allocator has ``ChunkPrefault`` map the free chunks it is about to hand out as writes instead.
final class WarmUp: @unchecked Sendable {
    private let stopping = Atomic(false)
    private let finished = DispatchSemaphore(value: 0)
    private var started = false
    static let slice = 16 << 20

    /// Maps `ranges` (byte ranges of the pool, in order) of every view in `views`.
    func start(views: [UnsafeMutableRawPointer], ranges: [Range<Int>]) {
        guard !ranges.isEmpty else { return }
        started = true
        let addresses = views.map { UInt(bitPattern: $0) }
        Thread.detachNewThread { [self] in
            defer { finished.signal() }
            for range in ranges {
                var offset = range.lowerBound
                while offset < range.upperBound {
                    if stopping.load(ordering: .relaxed) { return }
                    let length = min(Self.slice, range.upperBound - offset)
                    for address in addresses {
                        if ferrite_populate_read(UnsafeMutableRawPointer(bitPattern: address)! + offset, length) != 0 { return }
                    }
                    offset += length
                }
            }
        }
    }

    func stop() {
        guard started else { return }
        started = false
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }
}
