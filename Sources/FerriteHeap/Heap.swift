import CFerriteShim
import FerriteMedium
import Foundation
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

    public init() {}

    var layout: PoolLayout {
        PoolLayout(chunkSize: chunkSize, maxChunks: max(1, maximumSize / chunkSize),
                   logSlotCount: logSlotCount, logSlotSize: logSlotSize)
    }
}

/// A persistent heap: a pool file mapped into memory, holding objects that survive crashes.
///
/// Open one with ``init(path:options:)``. Objects are proxies (``PersistentObject``) that read
/// and write their fields in place in the mapped pool. Every change happens inside
/// ``transaction(_:)``, which is failure-atomic: after a crash, a transaction's writes,
/// allocations and frees are either all present or all absent.
///
/// ## Durability (memory mode)
/// Changes are made durable with cache-line write-backs and fences. On a DAX file system
/// (persistent memory, CXL memory), where the pool is mapped with `MAP_SYNC`, a committed
/// transaction survives power loss. On any other file system (tmpfs, ext4 without DAX) a committed
/// transaction survives the crash of the process, but not of the machine: ``isDAX`` says which.
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

    @usableFromInline let base: UnsafeMutableRawPointer
    let mapping: PoolMapping
    let layout: PoolLayout
    let allocator: Allocator
    let domain: PersistDomain
    /// What recovery did when the pool was opened.
    public private(set) var recovery = RecoveryReport()

    private var key = pthread_key_t()
    private let contextsLock = Lock()
    private var contexts: [TransactionContext] = []
    let typesLock = Lock()
    var swiftTypes: [UInt64: any PersistentObject.Type] = [:]
    var poolTypes: [UInt64: String] = [:]
    let rootLock = Lock()
    var reservedRoots: Set<Int> = []
    private let stripes: UnsafeMutablePointer<pthread_mutex_t>
    static let stripeCount = 1024
    @exclusivity(unchecked) private var isClosed = false
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
        /// Time spent opening the pool (mapping, recovery, allocator), in seconds.
        public var openSeconds = 0.0
    }

    /// Opens the pool at `path`, creating it if it does not exist (unless
    /// `options.createIfMissing` is false), and recovers it if a crash interrupted transactions.
    ///
    /// - Throws: ``HeapError`` when the file is not a pool, is truncated or corrupt, was written by
    ///   a newer format, is open elsewhere, or a system call fails. A failed open never writes to
    ///   the file.
    /// - Parameter medium: the durability medium; by default the CPU's cache-line write-back.
    public convenience init(path: String, options: HeapOptions = HeapOptions(),
                            medium: (any PersistenceMedium)? = nil) throws(HeapError) {
        let started = ferrite_monotonic_nanoseconds()
        if access(path, F_OK) != 0 {
            guard options.createIfMissing else { throw .systemError(operation: "open", path: path, errno: ENOENT) }
            let layout = options.layout
            if let problem = layout.validate() { throw .invalidOptions(problem) }
            guard options.initialSize <= options.maximumSize else { throw .invalidOptions("initialSize exceeds maximumSize") }
            let chunks = min(layout.maxChunks, max(1, (options.initialSize + layout.chunkSize - 1) / layout.chunkSize))
            try PoolMapping.createFile(path: path, header: PoolHeader(layout: layout, uuid: UUID(), chunkCount: chunks))
        }
        let (mapping, header) = try PoolMapping.openFile(path: path)
        try self.init(mapping: mapping, header: header, medium: medium ?? CPUCacheMedium(), started: started)
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

    private init(mapping: PoolMapping, header: PoolHeader, medium: any PersistenceMedium, started: UInt64) throws(HeapError) {
        self.mapping = mapping
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
        pthread_key_create(&key, nil)
        loadPoolTypes()
        report.openSeconds = Double(ferrite_monotonic_nanoseconds() - started) / 1e9
        recovery = report
    }

    deinit {
        close()
        for i in 0..<Self.stripeCount { pthread_mutex_destroy(stripes + i) }
        stripes.deallocate()
    }

    /// Closes the heap: unmaps the pool and releases its lock. Proxies of this heap must not be
    /// used afterwards. No transaction may be running. Called automatically on deinit.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        contextsLock.withLock {
            for context in contexts { precondition(!context.isActive, "Heap closed while a transaction is running") }
            contexts.removeAll()
        }
        pthread_key_delete(key)
        mapping.close()
    }

    // MARK: Thread contexts and log slots

    /// The calling thread's context, if it has one (never creates one).
    func existingContext() -> TransactionContext? {
        pthread_getspecific(key).map { Unmanaged<TransactionContext>.fromOpaque($0).takeUnretainedValue() }
    }

    func context() -> TransactionContext {
        if let existing = existingContext() { return existing }
        let context = TransactionContext(heap: self)
        contextsLock.withLock { contexts.append(context) }
        pthread_setspecific(key, Unmanaged.passUnretained(context).toOpaque())
        return context
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
        context.depth += 1
        let result: R
        do {
            result = try body()
        } catch {
            context.depth -= 1
            if context.depth == 0 { context.abort() } else if context.failure == nil { context.failure = error }
            throw error
        }
        context.depth -= 1
        if context.depth == 0 { try context.commit() }
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
    public var inTransaction: Bool { context().isActive }

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
        try ensureRecorded(T.self)
        return T(handle: try allocateBlock(typeID: T.persistentTypeID, size: T.persistentSize))
    }

    /// Registers a type and records it in the pool the first time this thread allocates one;
    /// afterwards a per-thread list answers without taking the shared types lock.
    private func ensureRecorded(_ type: any PersistentObject.Type) throws(HeapError) {
        let context = self.context()
        let id = type.persistentTypeID
        if context.recordedTypes.contains(id) { return }
        try register(type)
        try recordPoolType(type)
        context.recordedTypes.append(id)
    }

    /// Allocates a zeroed object of type `T` with `size` bytes of fields (at least
    /// `T.persistentSize`), for types whose objects vary in size, such as tables of references.
    public func allocate<T: PersistentObject>(_ type: T.Type, size: Int) throws(HeapError) -> T {
        precondition(size >= T.persistentSize, "an object needs at least persistentSize bytes")
        try ensureRecorded(T.self)
        return T(handle: try allocateBlock(typeID: T.persistentTypeID, size: size))
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
    public func free(_ object: some PersistentObject) throws(HeapError) {
        try free(object.handle)
    }

    /// Frees the block behind a handle in the current transaction.
    public func free(_ handle: ObjectHandle) throws(HeapError) {
        try activeContext("free").free(block: handle.reference)
    }

    /// Checks that `reference` is the start of a live block and returns its handle.
    public func handle(at reference: UInt64) throws(HeapError) -> ObjectHandle {
        let offset = Int(truncatingIfNeeded: reference)
        guard offset >= layout.heapOffset, offset + ObjectHeader.size <= mapping.mappedSize, offset % 16 == 0,
              allocator.isAllocated(offset) || allocator.hugeRun(at: offset) != nil || context().newBlocks[reference] != nil else {
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
    public func object<T: PersistentObject>(at reference: UInt64, as type: T.Type) throws(HeapError) -> T {
        let handle = try self.handle(at: reference)
        guard handle.typeID == T.persistentTypeID else {
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
}
