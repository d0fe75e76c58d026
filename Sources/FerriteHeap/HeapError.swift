/// Everything that can go wrong opening or using a ``Heap``.
///
/// Each case says what happened and, through ``description``, what to do about it. A failed open
/// never modifies the pool file.
public enum HeapError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file exists but is not a Ferrite pool (wrong magic number, or empty).
    case notAPool(path: String)
    /// The file is shorter than its header says: it was cut short by a copy or a full disk.
    case truncated(path: String, expectedBytes: Int, actualBytes: Int)
    /// The pool was written by a newer format version than this build understands.
    case unsupportedFormatVersion(path: String, found: UInt32, supported: UInt32)
    /// The header's checksum or one of its fields is wrong.
    case corruptHeader(path: String, reason: String)
    /// The pool uses a durability mode this build cannot open.
    case unsupportedDurability(path: String, mode: UInt32)
    /// A storage-mode pool's write-ahead log (`<pool>-wal`) is missing.
    case missingLog(path: String)
    /// A storage-mode pool's write-ahead log is damaged or belongs to another pool.
    case corruptLog(path: String, reason: String)
    /// Another process (or another `Heap` in this process) has the pool open.
    case poolLocked(path: String)
    /// The pool has reached its maximum size and has no free space of the size asked for.
    case poolFull(requestedBytes: Int, maximumBytes: Int)
    /// A system call failed.
    case systemError(operation: String, path: String, errno: Int32)
    /// The options given are inconsistent.
    case invalidOptions(String)
    /// An operation that must run inside `transaction { }` was called outside one.
    case notInTransaction(operation: String)
    /// A transaction's redo log does not fit in a log slot.
    case transactionTooLarge(logBytes: Int)
    /// The transaction was aborted earlier (an inner transaction threw) and can no longer be used.
    case transactionAborted
    /// A reference does not point at the start of a live object in this pool.
    case invalidReference(UInt64)
    /// An object's stored type id has no Swift type registered with this heap.
    case unregisteredType(id: UInt64, name: String?)
    /// An object is not of the type it was asked for.
    case typeMismatch(reference: UInt64, expected: String, found: String)
    /// Two type names hash to the same stable type id.
    case typeIDCollision(id: UInt64, existing: String, new: String)
    /// The pool's type table or root table is full.
    case tableFull(String)
    /// A root name is empty or longer than 55 bytes of UTF-8.
    case invalidRootName(String)
    /// A block was freed twice, or was not allocated.
    case invalidFree(UInt64)
    /// Objects of a type in this pool were made with a layout the program's type cannot read
    /// (a field removed, retyped or moved).
    case schemaMismatch(type: String, difference: String)
    /// Upgrading a type's objects to a new layout needs to find every reference to them, and the
    /// pool holds objects of types this process has not registered.
    case migrationBlocked(type: String, unregistered: [String])
    /// A type's objects need an upgrade to a new layout, which cannot run inside a transaction.
    case upgradeInTransaction(type: String)
    /// The heap has been closed.
    case closed

    public var description: String {
        switch self {
        case .notAPool(let path):
            "\(path) is not a Ferrite pool (no pool header found). Check the path; Ferrite will not overwrite an existing file."
        case .truncated(let path, let expected, let actual):
            "\(path) is truncated: its header needs \(expected) bytes but the file has \(actual). Restore the pool from a backup or a complete copy."
        case .unsupportedFormatVersion(let path, let found, let supported):
            "\(path) uses pool format version \(found), newer than this build supports (\(supported)). Open it with a newer Ferrite."
        case .corruptHeader(let path, let reason):
            "\(path) has a corrupt pool header (\(reason)). The file was not modified; restore it from a backup."
        case .unsupportedDurability(let path, let mode):
            "\(path) uses durability mode \(mode), which this build cannot open."
        case .missingLog(let path):
            "\(path) is missing: a storage-mode pool cannot be opened without its write-ahead log, which holds its latest commits. Restore the log next to the pool (it is named after the pool, with -wal added)."
        case .corruptLog(let path, let reason):
            "\(path) is not this pool's write-ahead log (\(reason)). Nothing was modified; restore the pool and its log together from a backup."
        case .poolLocked(let path):
            "\(path) is already open in another process or Heap. Close it there first; a pool has one owner at a time."
        case .poolFull(let requested, let maximum):
            "The pool is full: no room for \(requested) bytes within its maximum size of \(maximum) bytes. Free objects, or create the pool with a larger maximumSize."
        case .systemError(let operation, let path, let code):
            "\(operation) failed for \(path): errno \(code)."
        case .invalidOptions(let reason):
            "Invalid heap options: \(reason)."
        case .notInTransaction(let operation):
            "\(operation) must be called inside heap.transaction { }."
        case .transactionTooLarge(let bytes):
            "The transaction needs more than \(bytes) bytes of redo log. Split it into smaller transactions, or create the pool with a larger logSlotSize."
        case .transactionAborted:
            "The transaction was aborted by an inner transaction's error; it has been rolled back."
        case .invalidReference(let reference):
            "Reference \(reference) does not point at a live object in this pool."
        case .unregisteredType(let id, let name):
            "An object has type id \(String(id, radix: 16))\(name.map { " (\($0))" } ?? "") but no Swift type is registered for it. Call heap.register(_:) with that type before reading such objects."
        case .typeMismatch(let reference, let expected, let found):
            "Object \(reference) is a \(found), not a \(expected)."
        case .typeIDCollision(let id, let existing, let new):
            "Type names '\(existing)' and '\(new)' share the type id \(String(id, radix: 16)). Rename one of the types' persistentTypeName."
        case .tableFull(let table):
            "The pool's \(table) is full."
        case .invalidRootName(let name):
            "Root name '\(name)' must be 1 to 55 bytes of UTF-8."
        case .invalidFree(let reference):
            "Cannot free \(reference): it is not a live object (double free?)."
        case .schemaMismatch(let type, let difference):
            "The pool's \(type) objects have a different layout than the program's \(type): \(difference). Only new fields (with default values) can be added to a persistent type; restore the old declaration, or give the changed type a new persistent type name."
        case .migrationBlocked(let type, let unregistered):
            "Upgrading the pool's \(type) objects to the program's new layout must find every reference to them, but the pool holds objects of types not registered in this process: \(unregistered.joined(separator: ", ")). Register those types (heap.register(_:)) before \(type); nothing was changed."
        case .upgradeInTransaction(let type):
            "The pool's \(type) objects must be upgraded to the program's new layout, which cannot happen inside a transaction. Call heap.register(_:) with \(type) (or a type that refers to it) before the first transaction that uses it."
        case .closed:
            "The heap is closed."
        }
    }
}
