import Foundation

/// A replica's durable records: an append-only file of JSON lines, replayed at start. A torn
/// last line (a crash in the middle of a write) is cut off; anything else unreadable is an error.
final class DurableLog<Record: Codable> {
    let path: String
    private let descriptor: Int32
    private let syncs: Bool
    private let encoder = JSONEncoder()

    /// Opens (or creates) the log and returns the records already in it.
    init(path: String, syncs: Bool) throws {
        self.path = path
        self.syncs = syncs
        descriptor = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    }

    func readAll() throws -> [Record] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let decoder = JSONDecoder()
        var records: [Record] = []
        var offset = 0
        var lineNumber = 0
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let end = offset + line.count
            defer { offset = end + 1 }
            if line.isEmpty { continue }
            if let record = try? decoder.decode(Record.self, from: Data(line)) {
                records.append(record)
            } else if end >= data.count {
                ftruncate(descriptor, off_t(offset))   // A torn last write.
                break
            } else {
                throw MulticastNodeError.corruptDurableLog(path: path, line: lineNumber)
            }
        }
        return records
    }

    /// Appends `records` (one write) and, when syncing, waits until they are on stable storage.
    func append(_ records: [Record]) throws {
        guard !records.isEmpty else { return }
        var bytes = Data()
        for record in records {
            bytes.append(try encoder.encode(record))
            bytes.append(UInt8(ascii: "\n"))
        }
        try writeAll(descriptor, bytes)
        if syncs { fdatasync(descriptor) }
    }

    deinit { close(descriptor) }
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
