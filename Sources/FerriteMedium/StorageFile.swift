#if canImport(Glibc)
import Glibc
#endif

/// A failed file operation: which, on what, and the `errno` it returned.
public struct FileError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) failed for \(path): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// A file that storage mode writes and syncs: the pool file and its write-ahead log.
///
/// Written bytes are durable only once ``sync()`` returns (`fdatasync`), and so is a new size.
/// Tests replace the real file with a ``SimulatedFile`` of a ``SimulatedDisk``, which computes
/// what a power failure could leave behind. Implementations must allow calls from many threads.
public protocol StorageFile: AnyObject, Sendable {
    /// The file's path, for errors and logs.
    var path: String { get }
    /// The file's current size in bytes.
    func size() throws(FileError) -> Int
    /// Reads up to `buffer.count` bytes at `offset`; returns how many were read (fewer at the end).
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileError) -> Int
    /// Writes all of `bytes` at `offset`, extending the file if needed.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileError)
    /// Sets the file's size; new bytes read as zero.
    func setSize(_ size: Int) throws(FileError)
    /// Makes every byte written so far, and the file's size, durable (`fdatasync`).
    func sync() throws(FileError)
}

/// A real file, through its descriptor.
public final class SystemFile: StorageFile {
    public let path: String
    public let descriptor: Int32
    private let owned: Bool

    /// Wraps `descriptor`; closes it on deinit when `owned`.
    public init(descriptor: Int32, path: String, owned: Bool) {
        self.descriptor = descriptor
        self.path = path
        self.owned = owned
    }

    /// Opens an existing file for reading and writing.
    public convenience init(opening path: String) throws(FileError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(operation: "open", path: path, errno: errno) }
        self.init(descriptor: fd, path: path, owned: true)
    }

    deinit { if owned { close(descriptor) } }

    public func size() throws(FileError) -> Int {
        var st = stat()
        guard fstat(descriptor, &st) == 0 else { throw FileError(operation: "fstat", path: path, errno: errno) }
        return Int(st.st_size)
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(operation: "read", path: path, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(operation: "write", path: path, errno: errno)
            }
            done += n
        }
    }

    public func setSize(_ size: Int) throws(FileError) {
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw FileError(operation: "ftruncate", path: path, errno: errno) }
    }

    public func sync() throws(FileError) {
        while fdatasync(descriptor) != 0 {
            if errno == EINTR { continue }
            throw FileError(operation: "fdatasync", path: path, errno: errno)
        }
    }
}

extension StorageFile {
    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: [UInt8], at offset: Int) throws(FileError) {
        try bytes.withUnsafeBytes { raw in
            Result { () throws(FileError) in try write(raw, at: offset) }
        }.get()
    }

    /// Reads up to `count` bytes at `offset` (fewer at the end of the file).
    public func read(count: Int, at offset: Int) throws(FileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let got = try bytes.withUnsafeMutableBytes { raw in
            Result { () throws(FileError) in try read(into: raw, at: offset) }
        }.get()
        bytes.removeLast(count - got)
        return bytes
    }
}
