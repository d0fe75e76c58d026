import Foundation

/// The on-disk layout of a pool, format version 1. `docs/pool-format.md` describes every byte;
/// keep the two in step.
struct PoolLayout: Equatable {
    static let magic: UInt64 = 0x4C4F_4F50_5252_4546  // "FERRPOOL", little-endian
    static let formatVersion: UInt32 = 1
    static let headerSize = 4096
    static let durabilityMemory: UInt32 = 1
    static let durabilityStorage: UInt32 = 2

    // Immutable header fields (bytes 0..<128, checksummed).
    static let offMagic = 0, offVersion = 8, offHeaderSize = 12, offUUID = 16, offDurability = 32
    static let offChunkSize = 40, offMaxChunks = 48, offLogSlotCount = 56, offLogSlotSize = 64
    static let offRootTable = 72, offTypeTable = 80, offLog = 88, offChunkTable = 96, offHeap = 104
    static let offHeaderChecksum = 120
    // Mutable header fields (line at 128).
    static let offChunkCount = 128
    static let offTypeCount = 136
    /// The applied watermark: every transaction with a commit number up to it is durably applied.
    static let offAppliedSeq = 144

    static let rootCapacity = 64, rootEntrySize = 64, rootNameCapacity = 55
    static let typeCapacity = 256, typeEntrySize = 64, typeNameCapacity = 48
    static let logSlotHeaderSize = 8

    let chunkSize: Int
    let maxChunks: Int
    let logSlotCount: Int
    let logSlotSize: Int

    var rootTableOffset: Int { Self.headerSize }
    var typeTableOffset: Int { rootTableOffset + Self.rootCapacity * Self.rootEntrySize }
    var logOffset: Int { typeTableOffset + Self.typeCapacity * Self.typeEntrySize }
    var chunkTableOffset: Int { logOffset + logSlotCount * logSlotSize }
    var heapOffset: Int { (chunkTableOffset + maxChunks * 8).roundedUp(to: 4096) }
    var maximumSize: Int { heapOffset + maxChunks * chunkSize }
    func fileSize(chunks: Int) -> Int { heapOffset + chunks * chunkSize }
    func logSlotOffset(_ slot: Int) -> Int { logOffset + slot * logSlotSize }

    /// Checks the parameters of a layout, from options or from a header.
    func validate() -> String? {
        if chunkSize < 16 * 1024 || chunkSize & (chunkSize - 1) != 0 { return "chunk size \(chunkSize) must be a power of two of at least 16 KiB" }
        if maxChunks < 1 || maxChunks > 1 << 24 { return "maximum chunk count \(maxChunks) out of range" }
        if logSlotCount < 1 || logSlotCount > 1024 { return "log slot count \(logSlotCount) out of range" }
        if logSlotSize < 4096 || logSlotSize % 4096 != 0 || logSlotSize > 1 << 30 { return "log slot size \(logSlotSize) must be a multiple of 4096" }
        return nil
    }
}

extension Int {
    @inline(__always) func roundedUp(to alignment: Int) -> Int { (self + alignment - 1) / alignment * alignment }
}

/// The fixed part of a pool header, as read from disk before anything is mapped.
struct PoolHeader {
    var layout: PoolLayout
    var uuid: UUID
    var chunkCount: Int
    var durability: Durability = .memory

    /// Encodes a fresh header (4096 bytes).
    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: PoolLayout.headerSize)
        bytes.withUnsafeMutableBytes { raw in
            let p = raw.baseAddress!
            p.storeBytes(of: PoolLayout.magic, toByteOffset: PoolLayout.offMagic, as: UInt64.self)
            p.storeBytes(of: PoolLayout.formatVersion, toByteOffset: PoolLayout.offVersion, as: UInt32.self)
            p.storeBytes(of: UInt32(PoolLayout.headerSize), toByteOffset: PoolLayout.offHeaderSize, as: UInt32.self)
            withUnsafeBytes(of: uuid.uuid) { (p + PoolLayout.offUUID).copyMemory(from: $0.baseAddress!, byteCount: 16) }
            p.storeBytes(of: durability == .storage ? PoolLayout.durabilityStorage : PoolLayout.durabilityMemory, toByteOffset: PoolLayout.offDurability, as: UInt32.self)
            p.storeBytes(of: UInt64(layout.chunkSize), toByteOffset: PoolLayout.offChunkSize, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.maxChunks), toByteOffset: PoolLayout.offMaxChunks, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.logSlotCount), toByteOffset: PoolLayout.offLogSlotCount, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.logSlotSize), toByteOffset: PoolLayout.offLogSlotSize, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.rootTableOffset), toByteOffset: PoolLayout.offRootTable, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.typeTableOffset), toByteOffset: PoolLayout.offTypeTable, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.logOffset), toByteOffset: PoolLayout.offLog, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.chunkTableOffset), toByteOffset: PoolLayout.offChunkTable, as: UInt64.self)
            p.storeBytes(of: UInt64(layout.heapOffset), toByteOffset: PoolLayout.offHeap, as: UInt64.self)
            let sum = Checksum.hash(p, count: PoolLayout.offHeaderChecksum, seed: 0)
            p.storeBytes(of: sum, toByteOffset: PoolLayout.offHeaderChecksum, as: UInt64.self)
            p.storeBytes(of: UInt64(chunkCount), toByteOffset: PoolLayout.offChunkCount, as: UInt64.self)
        }
        return bytes
    }

    /// Decodes and checks a header. `fileSize` is the size of the file it came from. A storage-mode
    /// pool's size is checked against its log instead (growth since the last checkpoint may not
    /// have reached the file yet).
    static func decode(_ bytes: UnsafeRawBufferPointer, fileSize: Int, path: String) throws(HeapError) -> PoolHeader {
        guard bytes.count >= 8, fileSize >= 8 else { throw .notAPool(path: path) }
        let p = bytes.baseAddress!
        guard p.loadUnaligned(fromByteOffset: PoolLayout.offMagic, as: UInt64.self) == PoolLayout.magic else {
            throw .notAPool(path: path)
        }
        guard bytes.count >= PoolLayout.headerSize else {
            throw .truncated(path: path, expectedBytes: PoolLayout.headerSize, actualBytes: fileSize)
        }
        let version = p.loadUnaligned(fromByteOffset: PoolLayout.offVersion, as: UInt32.self)
        let sum = Checksum.hash(p, count: PoolLayout.offHeaderChecksum, seed: 0)
        if version > PoolLayout.formatVersion && version < 1000 {
            throw .unsupportedFormatVersion(path: path, found: version, supported: PoolLayout.formatVersion)
        }
        guard sum == p.loadUnaligned(fromByteOffset: PoolLayout.offHeaderChecksum, as: UInt64.self) else {
            throw .corruptHeader(path: path, reason: "header checksum mismatch")
        }
        guard version == PoolLayout.formatVersion else {
            throw .corruptHeader(path: path, reason: "format version \(version)")
        }
        let durability = p.loadUnaligned(fromByteOffset: PoolLayout.offDurability, as: UInt32.self)
        guard durability == PoolLayout.durabilityMemory || durability == PoolLayout.durabilityStorage else {
            throw .unsupportedDurability(path: path, mode: durability)
        }
        let mode: Durability = durability == PoolLayout.durabilityStorage ? .storage : .memory
        func field(_ offset: Int) -> Int { Int(truncatingIfNeeded: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
        let layout = PoolLayout(chunkSize: field(PoolLayout.offChunkSize), maxChunks: field(PoolLayout.offMaxChunks),
                                logSlotCount: field(PoolLayout.offLogSlotCount), logSlotSize: field(PoolLayout.offLogSlotSize))
        if let problem = layout.validate() { throw .corruptHeader(path: path, reason: problem) }
        guard field(PoolLayout.offRootTable) == layout.rootTableOffset, field(PoolLayout.offTypeTable) == layout.typeTableOffset,
              field(PoolLayout.offLog) == layout.logOffset, field(PoolLayout.offChunkTable) == layout.chunkTableOffset,
              field(PoolLayout.offHeap) == layout.heapOffset else {
            throw .corruptHeader(path: path, reason: "region offsets disagree with the layout")
        }
        let chunkCount = field(PoolLayout.offChunkCount)
        guard chunkCount >= 1, chunkCount <= layout.maxChunks else {
            throw .corruptHeader(path: path, reason: "chunk count \(chunkCount) outside 1...\(layout.maxChunks)")
        }
        let typeCount = field(PoolLayout.offTypeCount)
        guard typeCount >= 0, typeCount <= PoolLayout.typeCapacity else {
            throw .corruptHeader(path: path, reason: "type count \(typeCount) out of range")
        }
        let needed = layout.fileSize(chunks: chunkCount)
        guard fileSize >= needed || mode == .storage else { throw .truncated(path: path, expectedBytes: needed, actualBytes: fileSize) }
        var raw = uuid_t(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &raw) { $0.copyMemory(from: UnsafeRawBufferPointer(start: p + PoolLayout.offUUID, count: 16)) }
        return PoolHeader(layout: layout, uuid: UUID(uuid: raw), chunkCount: chunkCount, durability: mode)
    }
}
