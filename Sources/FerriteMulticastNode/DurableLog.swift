import Foundation

/// A replica's durable records: an append-only file of records, each a 4-byte length, a 4-byte
/// checksum (FNV-1a) and the record (``BinaryCoder``), replayed at start. A torn tail (a crash
/// in the middle of a write) is cut off; a bad record with more after it is an error (losing the
/// records after it would lose state the protocol relied on).
final class DurableLog<Record: Codable> {
    let path: String
    private let descriptor: Int32
    private let syncs: Bool

    /// Opens (or creates) the log.
    init(path: String, syncs: Bool) throws {
        self.path = path
        self.syncs = syncs
        descriptor = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    /// The records in the log, in the order they were written. Cuts off a torn tail.
    func readAll() throws -> [Record] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        var records: [Record] = []
        var offset = 0
        try data.withUnsafeBytes { raw in
            while offset + 8 <= raw.count {
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                let checksum = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                guard offset + 8 + length <= raw.count else { break }   // Torn: cut off.
                let body = UnsafeRawBufferPointer(rebasing: raw[(offset + 8)..<(offset + 8 + length)])
                guard fnv1a(body) == checksum else {
                    if offset + 8 + length == raw.count { break }   // A torn last record.
                    throw MulticastNodeError.corruptDurableLog(path: path, offset: offset)
                }
                records.append(try BinaryCoder.decode(Record.self, from: body))
                offset += 8 + length
            }
        }
        if offset < data.count { ftruncate(descriptor, off_t(offset)) }   // A torn last write.
        return records
    }

    /// Appends `records` (one write) and, when syncing, waits until they are on stable storage.
    func append(_ records: [Record]) throws {
        guard !records.isEmpty else { return }
        var bytes: [UInt8] = []
        for record in records {
            let body = try BinaryCoder.encode(record)
            bytes += withUnsafeBytes(of: UInt32(body.count).littleEndian) { Array($0) }
            bytes += withUnsafeBytes(of: body.withUnsafeBytes { fnv1a($0) }.littleEndian) { Array($0) }
            bytes += body
        }
        try writeAll(descriptor, Data(bytes))
        if syncs { fdatasync(descriptor) }
    }

    deinit { close(descriptor) }
}

/// FNV-1a, 32 bits: enough to tell a torn record from a whole one.
func fnv1a(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var hash: UInt32 = 0x811C_9DC5
    for byte in bytes {
        hash ^= UInt32(byte)
        hash = hash &* 0x0100_0193
    }
    return hash
}

/// Writes every byte of `bytes` to `descriptor`.
func writeAll(_ descriptor: Int32, _ bytes: Data) throws {
    try bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let written = write(descriptor, raw.baseAddress! + done, raw.count - done)
            if written < 0 {
                if errno == EINTR { continue }
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
            done += written
        }
    }
}
