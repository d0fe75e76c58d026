import CFerriteShim
import FerriteMedium
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The memory a pool lives in: two views of the pool file, each in a range of address space
/// reserved for the pool's maximum size, so that the pool grows in place and nothing moves.
///
/// - The *durable view* (`MAP_SHARED`, with `MAP_SYNC` on DAX) is the medium: only committed
///   data is ever stored there, by the commit protocol, and written back with cache-line flushes.
///   In storage mode it is `MAP_PRIVATE` instead: the write-ahead log makes its lines durable, and
///   checkpoints write its pages to the file.
/// - The *working view* (`MAP_PRIVATE`) is what objects are read and written through. Pages are
///   shared with the file until first written, then private to the process: a transaction's
///   stores there can never reach the file before it commits, and are lost with the process.
final class PoolMapping: @unchecked Sendable {
    let durable: UnsafeMutableRawPointer
    @exclusivity(unchecked) private(set) var working: UnsafeMutableRawPointer
    let reservedSize: Int
    @exclusivity(unchecked) private(set) var mappedSize: Int
    let path: String
    /// The file descriptor, holding the pool's exclusive lock; -1 for an anonymous mapping.
    let fd: Int32
    /// Whether the durable view is mapped with MAP_SYNC (a DAX file system).
    let isDAX: Bool
    /// Storage mode: the pool file, which only checkpoints write. The durable view is private.
    let storageFile: (any StorageFile)?
    private var workingMapped = false
    private var isClosed = false

    deinit { close() }

    /// Opens (and locks) an existing pool file and reads and checks its header. Nothing is
    /// written to the file. Returns the open descriptor, which holds the lock.
    static func lockAndReadHeader(path: String) throws(HeapError) -> (fd: Int32, header: PoolHeader, fileSize: Int) {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw .systemError(operation: "open", path: path, errno: errno) }
        var ok = false
        defer { if !ok { Glibc.close(fd) } }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            if errno == EWOULDBLOCK { throw .poolLocked(path: path) }
            throw .systemError(operation: "flock", path: path, errno: errno)
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .systemError(operation: "fstat", path: path, errno: errno) }
        let fileSize = Int(st.st_size)
        var headerBytes = [UInt8](repeating: 0, count: min(fileSize, PoolLayout.headerSize))
        let got = headerBytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard got == headerBytes.count else { throw .systemError(operation: "read header", path: path, errno: errno) }
        let header = try headerBytes.withUnsafeBytes { raw in
            Result { () throws(HeapError) in try PoolHeader.decode(raw, fileSize: fileSize, path: path) }
        }.get()
        ok = true
        return (fd, header, fileSize)
    }

    /// Maps a memory-mode pool's durable view (`MAP_SHARED`, `MAP_SYNC` on DAX). Takes over `fd`.
    static func memory(fd: Int32, path: String, header: PoolHeader) throws(HeapError) -> PoolMapping {
        do {
            return try PoolMapping(fd: fd, path: path, reserve: header.layout.maximumSize,
                                   map: header.layout.fileSize(chunks: header.chunkCount), storage: nil)
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Maps a storage-mode pool's durable view: private memory holding the file's content, which
    /// only checkpoints write back (through `file`). `fd` is the file's descriptor (taken over),
    /// or -1 for a simulated file, whose content is read into anonymous memory.
    static func storage(fd: Int32, file: any StorageFile, reserve: Int, map: Int) throws(HeapError) -> PoolMapping {
        let mapping: PoolMapping
        do {
            mapping = try PoolMapping(fd: fd, path: file.path, reserve: reserve, map: map, storage: file)
        } catch {
            if fd >= 0 { Glibc.close(fd) }
            throw error
        }
        if fd < 0 {
            do {
                _ = try file.read(into: UnsafeMutableRawBufferPointer(start: mapping.durable, count: map), at: 0)
            } catch {
                mapping.close()
                throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
            }
        }
        return mapping
    }

    /// Creates a new pool file atomically: it is written under a temporary name, synced, and
    /// linked into place only when complete, so a crash never leaves a half-made pool at `path`.
    static func createFile(path: String, header: PoolHeader) throws(HeapError) {
        let temporary = path + ".creating-\(getpid())"
        let fd = Glibc.open(temporary, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .systemError(operation: "create", path: temporary, errno: errno) }
        defer { Glibc.close(fd); unlink(temporary) }
        let size = header.layout.fileSize(chunks: header.chunkCount)
        guard ftruncate(fd, off_t(size)) == 0 else { throw .systemError(operation: "ftruncate", path: temporary, errno: errno) }
        let bytes = header.encoded()
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count else { throw .systemError(operation: "write header", path: temporary, errno: errno) }
        guard fsync(fd) == 0 else { throw .systemError(operation: "fsync", path: temporary, errno: errno) }
        guard link(temporary, path) == 0 else {
            if errno == EEXIST { throw .invalidOptions("\(path) appeared while the pool was being created") }
            throw .systemError(operation: "link", path: path, errno: errno)
        }
        syncDirectory(of: path)
    }

    /// Anonymous views holding `image` (tests open crash images this way).
    static func anonymous(image: UnsafeRawBufferPointer, reserve: Int) throws(HeapError) -> PoolMapping {
        let mapping = try PoolMapping(fd: -1, path: "<memory>", reserve: reserve, map: reserve, storage: nil)
        mapping.durable.copyMemory(from: image.baseAddress!, byteCount: image.count)
        return mapping
    }

    private init(fd: Int32, path: String, reserve: Int, map: Int, storage: (any StorageFile)?) throws(HeapError) {
        let reserveSize = reserve.roundedUp(to: 1 << 21)
        guard let durable = ferrite_reserve_address_space(reserveSize) else {
            throw .systemError(operation: "reserve address space", path: path, errno: errno)
        }
        guard let working = ferrite_reserve_address_space(reserveSize) else {
            ferrite_release_address_space(durable, reserveSize)
            throw .systemError(operation: "reserve address space", path: path, errno: errno)
        }
        self.durable = durable
        self.working = working
        self.reservedSize = reserveSize
        self.path = path
        self.fd = fd
        self.storageFile = storage
        if fd >= 0 && storage != nil {
            guard mmap(durable, map, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) != MAP_FAILED else {
                let code = errno
                ferrite_release_address_space(durable, reserveSize)
                ferrite_release_address_space(working, reserveSize)
                throw .systemError(operation: "mmap", path: path, errno: code)
            }
            self.isDAX = false
        } else if fd >= 0 {
            var synced: Int32 = 0
            let result = ferrite_map_fixed(durable, map, fd, 1, &synced)
            guard result == 0 else {
                ferrite_release_address_space(durable, reserveSize)
                ferrite_release_address_space(working, reserveSize)
                throw .systemError(operation: "mmap", path: path, errno: result)
            }
            self.isDAX = synced != 0
        } else {
            guard mprotect(durable, reserveSize, PROT_READ | PROT_WRITE) == 0,
                  mprotect(working, reserveSize, PROT_READ | PROT_WRITE) == 0 else {
                ferrite_release_address_space(durable, reserveSize)
                ferrite_release_address_space(working, reserveSize)
                throw .systemError(operation: "mprotect", path: path, errno: errno)
            }
            self.isDAX = false
        }
        self.mappedSize = map
    }

    /// Maps the working view, once recovery has finished with the durable view.
    func mapWorking() throws(HeapError) {
        precondition(!workingMapped)
        workingMapped = true
        if fd >= 0 {
            guard mmap(working, mappedSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) != MAP_FAILED else {
                throw .systemError(operation: "mmap", path: path, errno: errno)
            }
        } else {
            working.copyMemory(from: durable, byteCount: mappedSize)
        }
    }

    /// Extends the file and both views to `newSize` bytes, in place. Only the new range is mapped:
    /// remapping the working view would discard its private pages.
    func grow(to newSize: Int) throws(HeapError) {
        guard newSize > mappedSize else { return }
        precondition(newSize <= reservedSize)
        if let storageFile {
            // Storage mode: the file grows now (pages beyond its end cannot be mapped); the new
            // size becomes durable with the next checkpoint's sync, and recovery re-extends a file
            // whose growth was lost. Both views map the new range privately.
            do {
                if try storageFile.size() < newSize { try storageFile.setSize(newSize) }
            } catch {
                throw .systemError(operation: error.operation, path: error.path, errno: error.errno)
            }
            if fd >= 0 {
                let added = newSize - mappedSize
                guard mmap(durable + mappedSize, added, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off_t(mappedSize)) != MAP_FAILED else {
                    throw .systemError(operation: "mmap", path: path, errno: errno)
                }
                if workingMapped {
                    guard mmap(working + mappedSize, added, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off_t(mappedSize)) != MAP_FAILED else {
                        throw .systemError(operation: "mmap", path: path, errno: errno)
                    }
                }
            }
        } else if fd >= 0 {
            guard ftruncate(fd, off_t(newSize)) == 0 else { throw .systemError(operation: "ftruncate", path: path, errno: errno) }
            guard fsync(fd) == 0 else { throw .systemError(operation: "fsync", path: path, errno: errno) }
            let added = newSize - mappedSize
            let flags = isDAX ? ferrite_map_sync_flags() : MAP_SHARED
            guard mmap(durable + mappedSize, added, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, off_t(mappedSize)) != MAP_FAILED else {
                throw .systemError(operation: "mmap", path: path, errno: errno)
            }
            if workingMapped {
                guard mmap(working + mappedSize, added, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off_t(mappedSize)) != MAP_FAILED else {
                    throw .systemError(operation: "mmap", path: path, errno: errno)
                }
            }
        }
        mappedSize = newSize
    }

    /// Unmaps both views and closes the file (releasing its lock). Idempotent; also done when the
    /// mapping is released, so that a failed open never leaves the pool locked.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        ferrite_release_address_space(durable, reservedSize)
        ferrite_release_address_space(working, reservedSize)
        if fd >= 0 { Glibc.close(fd) }
    }
}

func syncDirectory(of path: String) {
    let directory = (path as NSString).deletingLastPathComponent
    let dfd = Glibc.open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 { fsync(dfd); Glibc.close(dfd) }
}
