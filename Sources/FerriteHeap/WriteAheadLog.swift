import CFerriteShim
import FerriteMedium
import Foundation

/// The write-ahead log of a storage-mode pool (`<pool>-wal`; docs/pool-format.md, "Storage mode").
///
/// A 4 KiB header (identity, then two checkpoint records in sectors of their own) followed by a
/// ring of `capacity` bytes. Records are addressed by their *log sequence number* (LSN): the byte
/// position in an endless stream, stored at `4096 + lsn % capacity`. The live part of the ring
/// runs from the checkpoint's LSN to the end of the appended records; appending waits (or runs a
/// checkpoint) when it would overwrite the live part.
///
/// Group commit: a thread that needs its record durable either finds a sync under way, and sleeps
/// until the batch that covers it is synced, or becomes the leader: it writes every record
/// appended so far with one or two `pwrite`s and issues one `fdatasync` for all of them. A leader
/// that finds more records appended meanwhile hands on to the log's writer thread, which syncs
/// batch after batch while commits keep coming, so that no sync waits for a thread to wake up.
/// Waiters sleep on a futex word of their batch (by parity): a sync wakes only those it covers,
/// all at once.
final class WriteAheadLog: @unchecked Sendable {
    static let magic: UInt64 = 0x314C_4157_5252_4546  // "FERRWAL1", little-endian
    static let formatVersion: UInt32 = 1
    static let headerSize = 4096
    /// Where the two checkpoint records live: sectors of their own, written alternately.
    static let checkpointOffsets = [512, 1024]
    static let recordHeaderSize = 24
    static let lineEntrySize = 72

    /// A checkpoint: every effect of records below `lsn` is in the pool file, which was
    /// `poolFileSize` bytes long and synced. Records from `lsn` on, of `generation`, are replayed.
    struct Checkpoint: Equatable {
        var counter: UInt64
        var lsn: UInt64
        var generation: UInt64
        var poolFileSize: UInt64
    }

    let file: any StorageFile
    let capacity: Int
    /// Mixed into every checksum, so that a log of another pool never validates.
    let salt: UInt64
    /// The largest record: a fence with more lines is split into several records.
    var maximumRecordSize: Int { capacity / 4 }

    /// Mirror of the ring: records are built here and written to the file from here.
    private let ring: UnsafeMutableRawPointer
    private let state = ConditionLock(conditions: 1)
    /// The writer thread's condition.
    private static let writerCondition = 0
    /// `synced`, readable without the lock.
    private let syncedWord: UnsafeMutablePointer<UInt64>
    /// Futex words of the waiters of even and odd batches.
    private let batchWords: UnsafeMutablePointer<UInt32>
    // Guarded by `state`:
    @exclusivity(unchecked) private(set) var appended: UInt64
    @exclusivity(unchecked) private(set) var written: UInt64
    @exclusivity(unchecked) private(set) var synced: UInt64
    @exclusivity(unchecked) private(set) var checkpointLSN: UInt64
    /// Whether a thread (a leader or the writer) is syncing, or the writer is about to.
    @exclusivity(unchecked) private var busy = false
    /// The batch being synced (or last synced) and its end.
    @exclusivity(unchecked) private var batch: UInt64 = 0
    @exclusivity(unchecked) private var batchEnd: UInt64 = 0
    /// In `.normal` mode records are written as they are appended (`writeThrough`).
    @exclusivity(unchecked) var writeThrough = false
    @exclusivity(unchecked) private var writerRunning = false
    @exclusivity(unchecked) private var writerWanted = false
    /// `recordCount`, readable without the lock (the writer's gather watches it).
    private let recordCountWord: UnsafeMutablePointer<UInt64>
    /// `appended`, readable without the lock (a line of its own, next to `recordCountWord`'s).
    private var appendedWord: UnsafeMutablePointer<UInt64> { recordCountWord + 8 }
    /// `checkpointLSN`, readable without the lock (same line).
    private var checkpointWord: UnsafeMutablePointer<UInt64> { recordCountWord + 9 }
    /// The longest the writer waits for them (measured: 50 us carried the most commits per
    /// second with 16 threads; none, 25 and 200 us fewer).
    static let gatherNanoseconds = 50_000
    /// How long a waiter yields before it sleeps.
    static let spinNanoseconds = 1_000_000
    @exclusivity(unchecked) private var writerStopping = false
    private let writerDone = DispatchSemaphore(value: 0)
    @exclusivity(unchecked) private(set) var syncCount = 0
    @exclusivity(unchecked) private(set) var recordCount = 0
    /// Recovery: the ring is read from the file up to this LSN.
    @exclusivity(unchecked) private var loadedThrough: UInt64 = 0
    /// Threads that blocked behind a sync under way since the last batch started, and how many
    /// the last batch found: the writer pauses between batches for such threads only.
    @exclusivity(unchecked) private var blockedWaitCount = 0
    @exclusivity(unchecked) private var blockedWaiters = 0
    /// Callbacks of ``waitDurable(through:unlessBusy:)`` waiting for a sync past their LSN.
    @exclusivity(unchecked) private var notifications: [(lsn: UInt64, notify: @Sendable () -> Void)] = []
    /// Records covered by the batches synced so far.
    @exclusivity(unchecked) private var recordsSynced = 0

    private init(file: any StorageFile, capacity: Int, salt: UInt64, start: UInt64) {
        self.file = file
        self.capacity = capacity
        self.salt = salt
        ring = .allocate(byteCount: capacity, alignment: 4096)
        appended = start
        written = start
        synced = start
        checkpointLSN = start
        loadedThrough = start
        // Lines of their own: every commit reads them.
        syncedWord = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: UInt64.self, capacity: 16)
        syncedWord.initialize(repeating: start, count: 16)
        recordCountWord = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 128).bindMemory(to: UInt64.self, capacity: 16)
        recordCountWord.initialize(repeating: 0, count: 16)
        (recordCountWord + 8).initialize(to: start)
        (recordCountWord + 9).initialize(to: start)
        batchWords = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 128).bindMemory(to: UInt32.self, capacity: 64)
        batchWords.initialize(repeating: 0, count: 64)
    }

    /// Frees the ring once the log is no longer used (``close()``).
    @exclusivity(unchecked) private var ringReleased = false

    /// Stops the writer and frees the ring: nothing may append afterwards. (A thread that used
    /// the closed heap may keep this object alive for a while; it then holds no large buffer.)
    func close() {
        stopWriter()
        guard !ringReleased else { return }
        ringReleased = true
        ring.deallocate()
    }

    deinit {
        if !ringReleased { ring.deallocate() }
        UnsafeMutableRawPointer(syncedWord).deallocate()
        UnsafeMutableRawPointer(recordCountWord).deallocate()
        UnsafeMutableRawPointer(batchWords).deallocate()
    }

    static func salt(of uuid: UUID) -> UInt64 {
        withUnsafeBytes(of: uuid.uuid) { $0.load(as: UInt64.self) ^ $0.load(fromByteOffset: 8, as: UInt64.self).byteSwapped }
    }

    // MARK: Header and checkpoint records

    /// Creates a log for pool `uuid` in an empty file: header, first checkpoint record, and a
    /// zero-filled ring (so that later syncs overwrite allocated blocks and change no metadata).
    static func create(file: any StorageFile, uuid: UUID, capacity: Int, poolFileSize: Int) throws(FileError) {
        var header = [UInt8](repeating: 0, count: headerSize)
        header.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            p.storeBytes(of: magic, as: UInt64.self)
            p.storeBytes(of: formatVersion, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: UInt32(headerSize), toByteOffset: 12, as: UInt32.self)
            withUnsafeBytes(of: uuid.uuid) { (p + 16).copyMemory(from: $0.baseAddress!, byteCount: 16) }
            p.storeBytes(of: UInt64(capacity), toByteOffset: 32, as: UInt64.self)
            p.storeBytes(of: Checksum.hash(p, count: 56, seed: 0), toByteOffset: 56, as: UInt64.self)
            encode(Checkpoint(counter: 1, lsn: 0, generation: 1, poolFileSize: UInt64(poolFileSize)), salt: salt(of: uuid),
                   into: p + checkpointOffsets[1])
        }
        try file.write(header, at: 0)
        let zeros = [UInt8](repeating: 0, count: min(capacity, 1 << 20))
        var offset = 0
        while offset < capacity {
            try file.write(zeros, at: headerSize + offset)
            offset += zeros.count
        }
        try file.sync()
    }

    private static func encode(_ checkpoint: Checkpoint, salt: UInt64, into p: UnsafeMutableRawPointer) {
        p.storeBytes(of: checkpoint.counter, as: UInt64.self)
        p.storeBytes(of: checkpoint.lsn, toByteOffset: 8, as: UInt64.self)
        p.storeBytes(of: checkpoint.generation, toByteOffset: 16, as: UInt64.self)
        p.storeBytes(of: checkpoint.poolFileSize, toByteOffset: 24, as: UInt64.self)
        p.storeBytes(of: Checksum.hash(p, count: 32, seed: salt), toByteOffset: 32, as: UInt64.self)
    }

    private static func decodeCheckpoint(_ p: UnsafeRawPointer, salt: UInt64) -> Checkpoint? {
        guard Checksum.hash(p, count: 32, seed: salt) == p.load(fromByteOffset: 32, as: UInt64.self) else { return nil }
        let checkpoint = Checkpoint(counter: p.load(as: UInt64.self), lsn: p.load(fromByteOffset: 8, as: UInt64.self),
                                    generation: p.load(fromByteOffset: 16, as: UInt64.self),
                                    poolFileSize: p.load(fromByteOffset: 24, as: UInt64.self))
        return checkpoint.counter == 0 ? nil : checkpoint
    }

    /// Opens the log of pool `uuid`: checks its header and finds the latest checkpoint. Writes
    /// nothing; ``replay(generation:through:line:)`` reads the records.
    static func open(file: any StorageFile, uuid: UUID) throws(HeapError) -> (WriteAheadLog, Checkpoint) {
        let path = file.path
        func io<R>(_ body: () throws(FileError) -> R) throws(HeapError) -> R {
            do { return try body() } catch { throw .systemError(operation: error.operation, path: error.path, errno: error.errno) }
        }
        let size = try io { () throws(FileError) in try file.size() }
        let header = try io { () throws(FileError) in try file.read(count: headerSize, at: 0) }
        let got = header.count
        return try header.withUnsafeBytes { raw in Result { () throws(HeapError) -> (WriteAheadLog, Checkpoint) in
            let p = raw.baseAddress!
            guard got == headerSize, p.load(as: UInt64.self) == magic else { throw .corruptLog(path: path, reason: "no log header") }
            guard p.load(fromByteOffset: 8, as: UInt32.self) == formatVersion,
                  Checksum.hash(p, count: 56, seed: 0) == p.load(fromByteOffset: 56, as: UInt64.self) else {
                throw .corruptLog(path: path, reason: "log header damaged or of an unknown version")
            }
            var raw = uuid_t(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(start: p + 16, count: 16)) }
            guard UUID(uuid: raw) == uuid else { throw .corruptLog(path: path, reason: "it belongs to pool \(UUID(uuid: raw))") }
            let capacity = Int(p.load(fromByteOffset: 32, as: UInt64.self))
            guard capacity >= 64 << 10, capacity % 4096 == 0, capacity <= 1 << 36 else {
                throw .corruptLog(path: path, reason: "ring capacity \(capacity)")
            }
            guard size >= headerSize + capacity else {
                throw .corruptLog(path: path, reason: "the file has \(size) bytes, its header needs \(headerSize + capacity)")
            }
            let salt = salt(of: uuid)
            let checkpoints = checkpointOffsets.compactMap { decodeCheckpoint(p + $0, salt: salt) }
            guard let latest = checkpoints.max(by: { $0.counter < $1.counter }) else {
                throw .corruptLog(path: path, reason: "no valid checkpoint record")
            }
            return (WriteAheadLog(file: file, capacity: capacity, salt: salt, start: latest.lsn), latest)
        } }.get()
    }

    /// Makes `checkpoint` durable in the slot its counter picks (the other keeps the previous
    /// one, so a torn write never leaves the log without a valid checkpoint), then frees the ring
    /// below its LSN.
    func writeCheckpoint(_ checkpoint: Checkpoint) throws(FileError) {
        var sector = [UInt8](repeating: 0, count: 512)
        sector.withUnsafeMutableBytes { Self.encode(checkpoint, salt: salt, into: $0.baseAddress!) }
        try file.write(sector, at: Self.checkpointOffsets[Int(checkpoint.counter % 2)])
        // This sync shares the log's descriptor with group commits: once it failed, a later sync
        // may succeed without the records it failed to write (Linux reports a writeback error
        // once), so commits could no longer be promised durable.
        do { try file.sync() } catch { stop(error) }
        state.withLock {
            // Records below the checkpoint may be overwritten from now on: they must be synced
            // (which also means no leader is writing them).
            precondition(checkpoint.lsn <= synced, "a checkpoint passed the synced end of the log")
            if checkpoint.lsn > checkpointLSN {
                checkpointLSN = checkpoint.lsn
                ferrite_atomic_store_u64(checkpointWord, checkpoint.lsn)
            }
        }
    }

    // MARK: Records

    static func recordSize(lines: Int) -> Int { recordHeaderSize + lines * lineEntrySize + 8 }

    private func seed(lsn: UInt64, generation: UInt64) -> UInt64 {
        Checksum.mix(lsn ^ salt, generation &+ 0x9E37_79B9_7F4A_7C15)
    }

    /// Fills in a record's header and checksum; its line entries are already at `record + 24`.
    func seal(_ record: UnsafeMutableRawPointer, lines: Int, lsn: UInt64, generation: UInt64) {
        record.storeBytes(of: lsn, as: UInt64.self)
        record.storeBytes(of: generation, toByteOffset: 8, as: UInt64.self)
        record.storeBytes(of: UInt32(lines), toByteOffset: 16, as: UInt32.self)
        record.storeBytes(of: UInt32(0), toByteOffset: 20, as: UInt32.self)
        let body = Self.recordHeaderSize + lines * Self.lineEntrySize
        record.storeBytes(of: Checksum.hash(record, count: body, seed: seed(lsn: lsn, generation: generation)), toByteOffset: body, as: UInt64.self)
    }

    /// Appends a record of `size` bytes, which `build` writes (given its LSN) into a buffer of its
    /// own and returns, while the log is locked: records are in the order their contents were
    /// taken. `makeRoom` is called, unlocked, while the ring has no room for it. Returns the end
    /// LSN of the record.
    func append(size: Int, makeRoom: () -> Void, build: (UInt64) -> UnsafeRawPointer) -> UInt64 {
        precondition(size <= maximumRecordSize)
        state.lock()
        while appended + UInt64(size) - checkpointLSN > UInt64(capacity) {
            state.unlock()
            makeRoom()
            state.lock()
        }
        let lsn = appended
        let record = build(lsn)
        copyIntoRing(record, count: size, at: lsn)
        appended = lsn + UInt64(size)
        recordCount += 1
        ferrite_atomic_store_u64(recordCountWord, UInt64(recordCount))
        ferrite_atomic_store_u64(appendedWord, appended)
        if writeThrough {
            // Written before the fence returns, in LSN order: a process crash loses nothing.
            do { try writeRing(from: written, to: appended) } catch { stop(error) }
            written = appended
        }
        state.unlock()
        return lsn + UInt64(size)
    }

    private func copyIntoRing(_ source: UnsafeRawPointer, count: Int, at lsn: UInt64) {
        let start = Int(lsn % UInt64(capacity))
        let first = min(count, capacity - start)
        (ring + start).copyMemory(from: source, byteCount: first)
        if first < count { ring.copyMemory(from: source + first, byteCount: count - first) }
    }

    private func copyFromRing(_ target: UnsafeMutableRawPointer, count: Int, at lsn: UInt64) {
        let start = Int(lsn % UInt64(capacity))
        let first = min(count, capacity - start)
        target.copyMemory(from: ring + start, byteCount: first)
        if first < count { (target + first).copyMemory(from: ring, byteCount: count - first) }
    }

    /// Runs `body`, given the end of the appended records, with the log locked: nothing is
    /// appended meanwhile.
    func withAppendLock<R>(_ body: (UInt64) -> R) -> R {
        state.lock()
        defer { state.unlock() }
        return body(appended)
    }

    /// Bytes of the ring in use (appended since the last checkpoint).
    var used: Int { state.withLock { Int(appended - checkpointLSN) } }
    /// The same, read without the lock (may lag a little).
    var usedEstimate: Int { Int(truncatingIfNeeded: ferrite_atomic_load_u64(appendedWord) &- ferrite_atomic_load_u64(checkpointWord)) }
    /// The end of the appended records.
    var end: UInt64 { state.withLock { appended } }
    /// The same, read without the lock: it covers every record appended before the caller read
    /// anything those records' commits wrote.
    var appendedEnd: UInt64 { ferrite_atomic_load_u64(appendedWord) }

    /// Whether every record up to `lsn` is synced (no lock taken).
    func isSynced(through lsn: UInt64) -> Bool { ferrite_atomic_load_u64(syncedWord) >= lsn }

    /// Returns once every record up to `lsn` is durable (written and synced): as the leader of a
    /// group commit, or covered by another thread's. Stops the process if the log cannot be
    /// written or synced: durability could then no longer be promised.
    func waitDurable(through lsn: UInt64) {
        while ferrite_atomic_load_u64(syncedWord) < lsn {
            state.lock()
            if synced >= lsn {
                state.unlock()
                return
            }
            if busy {
                blockedWaitCount += 1
                // Covered by the batch being synced, or else by the next one: sleep on its word.
                // Woken waiters check `syncedWord` without the lock, so a batch's waiters wake
                // together instead of handing the lock on one by one.
                let word = batchWord(lsn <= batchEnd ? batch : batch &+ 1)
                let seen = ferrite_atomic_load_u32(word)
                state.unlock()
                // A sync takes a fraction of a millisecond: yield for a while before sleeping,
                // since waking a sleeper costs about as much on a virtual machine.
                let deadline = ferrite_monotonic_nanoseconds() + UInt64(Self.spinNanoseconds)
                while ferrite_atomic_load_u32(word) == seen && ferrite_monotonic_nanoseconds() < deadline { ferrite_yield() }
                ferrite_futex_wait(word, seen)
                continue
            }
            busy = true
            syncBatch()
            finishLeading()
            state.unlock()
        }
    }

    /// Like ``waitDurable(through:)``, but never waits behind a sync under way: then it returns
    /// false at once, and `notify` runs (on the thread that completes the sync: keep it short)
    /// once a sync covers `lsn`. Otherwise it returns true once `lsn` is durable, having led
    /// the sync itself if one was needed (no thread to wake: the lowest latency when idle).
    func waitDurable(through lsn: UInt64, unlessBusy notify: @escaping @Sendable () -> Void) -> Bool {
        if ferrite_atomic_load_u64(syncedWord) >= lsn { return true }
        state.lock()
        if synced >= lsn {
            state.unlock()
            return true
        }
        if busy {
            // The batch under way, or the one the leader or the writer runs next (more records
            // than it synced are appended), covers it.
            notifications.append((lsn, notify))
            state.unlock()
            return false
        }
        busy = true
        syncBatch()
        finishLeading()
        state.unlock()
        return true
    }

    /// A leader's end: the writer syncs what was appended meanwhile (busy stays set), or, with
    /// no writer, the leader syncs on while notifications wait; then whoever waits for the next
    /// batch must lead it. Lock held.
    private func finishLeading() {
        while !writerRunning && appended > synced && !notifications.isEmpty { syncBatch() }
        if appended > synced && writerRunning {
            writerWanted = true
            state.signal(Self.writerCondition)
        } else {
            busy = false
            wake(batch &+ 1)
        }
    }

    /// The word the waiters of batch `number` sleep on (one per parity, a cache line each).
    private func batchWord(_ number: UInt64) -> UnsafeMutablePointer<UInt32> { batchWords + Int(number % 2) * 32 }

    /// Wakes the waiters of batch `number`. Lock held.
    private func wake(_ number: UInt64) {
        let word = batchWord(number)
        ferrite_atomic_add_u32(word, 1)
        ferrite_futex_wake_all(word)
    }

    /// Writes and syncs every record appended so far as the next batch, and wakes its waiters.
    /// Called with the lock held and `busy` set; releases the lock while writing.
    @discardableResult
    private func syncBatch() -> Int {
        blockedWaiters = blockedWaitCount
        blockedWaitCount = 0
        batch &+= 1
        batchEnd = appended
        let covered = recordCount - recordsSynced
        recordsSynced = recordCount
        let from = written, to = appended, current = batch
        state.unlock()
        do {
            try writeRing(from: from, to: to)
            try file.sync()
        } catch {
            stop(error)
        }
        state.lock()
        if to > written { written = to }
        synced = to
        ferrite_atomic_store_u64(syncedWord, to)
        syncCount += 1
        wake(current)
        if !notifications.isEmpty {
            let ready = notifications.filter { $0.lsn <= to }
            if !ready.isEmpty {
                notifications.removeAll { $0.lsn <= to }
                state.unlock()
                for notification in ready { notification.notify() }
                state.lock()
            }
        }
        return covered
    }

    /// The writer's pause between batches: until `target` records are appended, or a moment has
    /// passed. Lock held.
    private func gather(until target: Int, patience: Int = gatherNanoseconds) {
        // Only threads blocked on the disk commit again the moment a batch wakes them: for
        // committers that are told by notification (a server's event loops), which go on with
        // other work meanwhile, the pause would only take a core they need.
        guard recordCount < target, blockedWaiters > 0 else { return }
        let deadline = ferrite_monotonic_nanoseconds() + UInt64(patience)
        // Yield rather than sleep: a timed sleep here wakes far too late on virtual machines,
        // and the threads we wait for need this core more than we do.
        state.unlock()
        while ferrite_atomic_load_u64(recordCountWord) < UInt64(target) && ferrite_monotonic_nanoseconds() < deadline {
            ferrite_yield()
        }
        state.lock()
    }

    private func stop(_ error: FileError) -> Never {
        fatalError("Ferrite storage mode: \(error). Stopping: committed transactions could no longer be made durable.")
    }

    /// Starts the writer thread, which takes over group commits from leaders while they come fast.
    func startWriter() {
        state.withLock {
            precondition(!writerRunning, "the log's writer is running already")
            writerRunning = true
        }
        let thread = Thread { [self] in
            state.lock()
            while true {
                while !writerWanted && !writerStopping { state.wait(Self.writerCondition) }
                if writerStopping && !writerWanted { break }
                while true {
                    while appended > synced {
                        let covered = syncBatch()
                        // The threads this batch covered were just woken: give them a moment to
                        // commit again, so that the next sync carries them too rather than only
                        // those that appended during this one.
                        gather(until: recordCount + covered)
                    }
                    // Stay on for a moment before sleeping: while commits keep coming, the next
                    // one is seconds away for nobody, and waking this thread again is slow.
                    gather(until: recordCount + 1, patience: Self.spinNanoseconds)
                    if appended == synced { break }
                }
                writerWanted = false
                busy = false
                wake(batch &+ 1)
            }
            writerRunning = false
            state.unlock()
            writerDone.signal()
        }
        thread.name = "ferrite-log-writer"
        thread.start()
    }

    /// Stops the writer thread (after the batch it may be syncing).
    func stopWriter() {
        let running = state.withLock { () -> Bool in
            guard writerRunning else { return false }
            writerStopping = true
            state.signal(Self.writerCondition)
            return true
        }
        if running { writerDone.wait() }
    }

    private func writeRing(from: UInt64, to: UInt64) throws(FileError) {
        guard to > from else { return }
        let count = Int(to - from)
        let start = Int(from % UInt64(capacity))
        let first = min(count, capacity - start)
        try file.write(UnsafeRawBufferPointer(start: ring + start, count: first), at: Self.headerSize + start)
        if first < count { try file.write(UnsafeRawBufferPointer(start: ring, count: count - first), at: Self.headerSize) }
    }

    /// The statistics of this log since it was opened.
    var statistics: (records: Int, syncs: Int) { state.withLock { (recordCount, syncCount) } }

    // MARK: Replay

    /// Calls `line` for every line of every valid record of `generation` from the checkpoint on,
    /// in LSN order, and returns the LSN where the valid records end (a torn or stale record, or
    /// the end of what was written) and how many records there were. Records start there from now
    /// on. Must be called before anything is appended. With `through`, the end found by an earlier
    /// call, records are trusted up to it: not read from the file again nor checksummed.
    func replay(generation: UInt64, through known: UInt64? = nil,
                line: (_ offset: Int, _ content: UnsafeRawPointer) -> Void) throws(FileError) -> (end: UInt64, records: Int) {
        var lsn = checkpointLSN
        var records = 0
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: maximumRecordSize, alignment: 64)
        defer { scratch.deallocate() }
        while true {
            if let known, lsn >= known { break }
            let room = UInt64(capacity) - (lsn - checkpointLSN)
            guard room >= UInt64(Self.recordSize(lines: 0)) else { break }
            if known == nil { try load(through: lsn + UInt64(Self.recordHeaderSize)) }
            copyFromRing(scratch, count: Self.recordHeaderSize, at: lsn)
            let lines = Int(scratch.load(fromByteOffset: 16, as: UInt32.self))
            let size = Self.recordSize(lines: lines)
            guard scratch.load(as: UInt64.self) == lsn, scratch.load(fromByteOffset: 8, as: UInt64.self) == generation,
                  size <= maximumRecordSize, UInt64(size) <= room else { break }
            if known == nil { try load(through: lsn + UInt64(size)) }
            copyFromRing(scratch, count: size, at: lsn)
            let body = size - 8
            if known == nil {
                guard Checksum.hash(scratch, count: body, seed: seed(lsn: lsn, generation: generation)) == scratch.load(fromByteOffset: body, as: UInt64.self) else { break }
            }
            for i in 0..<lines {
                let entry = scratch + Self.recordHeaderSize + i * Self.lineEntrySize
                line(Int(truncatingIfNeeded: entry.load(as: UInt64.self)), entry + 8)
            }
            records += 1
            lsn += UInt64(size)
        }
        state.withLock {
            appended = lsn; written = lsn; synced = lsn
            ferrite_atomic_store_u64(syncedWord, lsn)
            ferrite_atomic_store_u64(appendedWord, lsn)
        }
        return (lsn, records)
    }

    /// Reads the ring from the file up to `lsn` (at most a whole ring past the checkpoint), in
    /// pieces of 1 MiB as recovery's scan needs them: a short log costs a short read.
    private func load(through lsn: UInt64) throws(FileError) {
        let limit = checkpointLSN + UInt64(capacity)
        while loadedThrough < min(lsn, limit) {
            let start = Int(loadedThrough % UInt64(capacity))
            let count = min(1 << 20, capacity - start, Int(limit - loadedThrough))
            // A read error stops the open (a record it hid might be committed); a short read
            // (the file ends) leaves the rest of the ring as zeros, which never validate.
            let got = try file.read(into: UnsafeMutableRawBufferPointer(start: ring + start, count: count), at: Self.headerSize + start)
            if got < count { (ring + start + got).initializeMemory(as: UInt8.self, repeating: 0, count: count - got) }
            loadedThrough += UInt64(count)
        }
    }
}
