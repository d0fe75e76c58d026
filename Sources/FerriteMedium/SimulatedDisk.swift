import Synchronization

/// A disk that computes what a power failure could leave behind (failure-models.md, storage).
///
/// Each file keeps its current content and its *durable* content: what the last ``SimulatedFile/sync()``
/// covered. A crash image keeps the durable content and, for every 512-byte sector written since
/// the file's last sync, the old or the new sector; a size that was never synced may be lost.
/// Install ``onSync`` to take crash images at every sync, before it takes effect.
public final class SimulatedDisk: @unchecked Sendable {
    /// Which unsynced sectors (and sizes) a crash image keeps.
    public enum Survivors: Sendable {
        /// None: exactly what was synced.
        case none
        /// All: the files as they are now (a process crash).
        case all
        /// Each unsynced sector, and each unsynced size, independently with probability one half.
        case random(seed: UInt64)
    }

    public static let sectorSize = 512

    final class Content {
        var current: [UInt8]
        var durable: [UInt8]
        /// Sectors written since the last sync.
        var dirty: Set<Int> = []
        init(_ bytes: [UInt8]) { current = bytes; durable = bytes }
    }

    private let lock = Mutex<Void>(())
    private var files: [String: Content] = [:]
    private var inHook = false
    private var _syncCount = 0

    /// Called at the start of every sync, before it takes effect, with the disk locked; the name
    /// is the file being synced. Crash images taken here model a power failure just before the
    /// sync returns.
    public var onSync: (@Sendable (SimulatedDisk, String) -> Void)?

    /// Fails operations on demand: called with the operation (`"read"`, `"write"`, `"sync"`) and
    /// the file's name before each one; a non-nil `errno` makes it fail with nothing done.
    public var failure: (@Sendable (String, String) -> Int32?)?

    /// An empty disk.
    public init() {}

    /// A disk holding `image` (file name -> content), all of it durable.
    public init(image: [String: [UInt8]]) {
        for (name, bytes) in image { files[name] = Content(bytes) }
    }

    /// The file called `name`, created empty (and durably so) if it does not exist.
    public func file(_ name: String) -> SimulatedFile {
        lock.withLock { _ in if files[name] == nil { files[name] = Content([]) } }
        return SimulatedFile(disk: self, name: name)
    }

    /// Whether a file called `name` exists.
    public func exists(_ name: String) -> Bool { lock.withLock { _ in files[name] != nil } }

    /// How many syncs have completed.
    public var syncCount: Int { lock.withLock { _ in _syncCount } }

    /// The current content of every file.
    public var contents: [String: [UInt8]] { lock.withLock { _ in files.mapValues(\.current) } }

    /// One possible content of every file after a power failure now. Call it from ``onSync`` (the
    /// disk is then locked) or while no other thread uses the disk.
    public func crashImage(_ survivors: Survivors) -> [String: [UInt8]] {
        var state: UInt64 = 0
        if case .random(let seed) = survivors { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
        func coin() -> Bool {
            switch survivors {
            case .none: return false
            case .all: return true
            case .random:
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return (state >> 33) & 1 == 1
            }
        }
        var image: [String: [UInt8]] = [:]
        for name in files.keys.sorted() {
            let content = files[name]!
            let size = content.current.count == content.durable.count || !coin() ? content.durable.count : content.current.count
            var bytes = [UInt8](repeating: 0, count: size)
            let kept = min(size, content.durable.count)
            bytes.replaceSubrange(0..<kept, with: content.durable[0..<kept])
            for sector in content.dirty.sorted() {
                let start = sector * Self.sectorSize
                guard start < size, coin() else { continue }
                let end = min(size, start + Self.sectorSize)
                for i in start..<end { bytes[i] = i < content.current.count ? content.current[i] : 0 }
            }
            image[name] = bytes
        }
        return image
    }

    // MARK: File operations (through SimulatedFile)

    func size(_ name: String) -> Int { lock.withLock { _ in files[name]!.current.count } }

    func read(_ name: String, into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        lock.withLock { _ in
            let current = files[name]!.current
            guard offset < current.count else { return 0 }
            let n = min(buffer.count, current.count - offset)
            current.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: n) }
            return n
        }
    }

    func write(_ name: String, _ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard bytes.count > 0 else { return }
        lock.withLock { _ in
            let content = files[name]!
            if content.current.count < offset + bytes.count {
                content.current.append(contentsOf: repeatElement(0, count: offset + bytes.count - content.current.count))
            }
            content.current.withUnsafeMutableBytes { ($0.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
            for sector in offset / Self.sectorSize ... (offset + bytes.count - 1) / Self.sectorSize { content.dirty.insert(sector) }
        }
    }

    func setSize(_ name: String, _ size: Int) {
        lock.withLock { _ in
            let content = files[name]!
            let old = content.current.count
            if size > old {
                content.current.append(contentsOf: repeatElement(0, count: size - old))
            } else if size < old {
                content.current.removeLast(old - size)
                if size % Self.sectorSize != 0 { content.dirty.insert(size / Self.sectorSize) }
            }
        }
    }

    func sync(_ name: String) {
        lock.withLock { _ in
            if let hook = onSync, !inHook {
                inHook = true
                hook(self, name)
                inHook = false
            }
            let content = files[name]!
            content.durable = content.current
            content.dirty.removeAll()
            _syncCount += 1
        }
    }
}

/// A file of a ``SimulatedDisk``.
public final class SimulatedFile: StorageFile, @unchecked Sendable {
    public let disk: SimulatedDisk
    public let name: String
    public var path: String { "<simulated>/" + name }

    init(disk: SimulatedDisk, name: String) {
        self.disk = disk
        self.name = name
    }

    private func check(_ operation: String) throws(FileError) {
        if let code = disk.failure?(operation, name) { throw FileError(operation: operation, path: path, errno: code) }
    }

    public func size() throws(FileError) -> Int { disk.size(name) }
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileError) -> Int {
        try check("read")
        return disk.read(name, into: buffer, at: offset)
    }
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileError) {
        try check("write")
        disk.write(name, bytes, at: offset)
    }
    public func setSize(_ size: Int) throws(FileError) { disk.setSize(name, size) }
    public func sync() throws(FileError) {
        try check("sync")
        disk.sync(name)
    }
}
