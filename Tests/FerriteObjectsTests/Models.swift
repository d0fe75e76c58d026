import Foundation
import FerriteObjects

enum Tier: UInt8, PersistentRawRepresentable, CaseIterable {
    case basic, gold, platinum
}

enum Rate: Double, PersistentRawRepresentable, CaseIterable {
    case low = 0.5, high = 2.5
}

@Persistent("Tests.Branch")
final class Branch {
    var name: String
    var balance: Int = 0
    init(name: String) throws {
        self.name = name
    }
}

@Persistent("Tests.Account")
final class Account {
    let id: Int
    var balance: Int = 0
    var owner: String
    var branch: Branch?
    init(id: Int, owner: String, balance: Int = 0) throws {
        self.id = id
        self.owner = owner
        self.balance = balance
    }
}

/// Every supported property type, optional or not.
@Persistent("Tests.Everything")
final class Everything {
    var int8: Int8 = -8
    var uint8: UInt8 = 8
    var int16: Int16 = -16
    var uint16: UInt16 = 16
    var int32: Int32 = -32
    var uint32: UInt32 = 32
    var int64: Int64 = -64
    var uint64: UInt64 = 64
    var int: Int = -1
    var uint: UInt = 1
    var float: Float = 1.5
    var double: Double = 2.5
    var bool: Bool = true
    var tier: Tier = .gold
    var rate: Rate = .high
    var text: String = "text"
    var bytes: [UInt8] = [1, 2, 3]
    var data: Data = Data([4, 5])
    var id: UUID = UUID(uuid: (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16))
    var date: Date = Date(timeIntervalSinceReferenceDate: 1_000)
    var branch: Branch?
    var history: PersistentArray<Int>?
    var index: PersistentDictionary<String, Account>?
    var sorted: PersistentSortedMap<Int, String>?
    var maybeInt8: Int8?
    var maybeInt: Int?
    var maybeDouble: Double?
    var maybeBool: Bool?
    var maybeTier: Tier?
    var maybeText: String?
    var maybeBytes: [UInt8]?
    var maybeData: Data?
    var maybeID: UUID?
    var maybeDate: Date?
    let created: Date
    let serial: UInt32
    let label: String
    let note: String?

    init(serial: UInt32, label: String, note: String?) throws {
        self.created = Date(timeIntervalSinceReferenceDate: 42)
        self.serial = serial
        self.label = label
        self.note = note
    }
}

/// An initializer that can fail after it has stored a string.
@Persistent("Tests.Fussy")
final class Fussy {
    var name: String
    struct Refused: Error {}
    init(name: String, refuse: Bool) throws {
        self.name = name
        if refuse { throw Refused() }
    }
}

// MARK: - Layouts across program versions (the same persistent type name)

/// Version 1 of a type whose next version cannot grow in place (32-byte blocks become 48).
@Persistent("Tests.Moving")
final class MovingV1 {
    var count: Int
    var name: String
    init(count: Int, name: String) throws {
        self.count = count
        self.name = name
    }
}

/// Version 2: two new properties with defaults.
@Persistent("Tests.Moving")
final class MovingV2 {
    var count: Int
    var name: String
    var added: Int = 42
    var label: String = "new"
    init(count: Int, name: String) throws {
        self.count = count
        self.name = name
    }
}

/// Version 1 of a type whose next version fits in the same block (24 bytes of fields, a 48-byte block).
@Persistent("Tests.Growing")
final class GrowingV1 {
    var a: Int = 1
    var b: Int = 2
    var c: Int = 3
}

/// Version 2: one more word, still a 48-byte block.
@Persistent("Tests.Growing")
final class GrowingV2 {
    var a: Int = 1
    var b: Int = 2
    var c: Int = 3
    var d: Int = 4
}

/// Incompatible versions of `Tests.Moving`.
@Persistent("Tests.Moving")
final class MovingRetyped {
    var count: Int
    var name: Int = 0
    init(count: Int) throws { self.count = count }
}

@Persistent("Tests.Moving")
final class MovingShrunk {
    var count: Int = 0
}

@Persistent("Tests.Moving")
final class MovingWithoutDefault {
    var count: Int
    var name: String
    var added: Int
    init(count: Int, name: String, added: Int) throws {
        self.count = count
        self.name = name
        self.added = added
    }
}

@Persistent("Tests.Moving")
final class MovingReordered {
    var name: String
    var count: Int
    init(count: Int, name: String) throws {
        self.count = count
        self.name = name
    }
}

/// Holders of `Tests.Moving` objects in both versions (same persistent names, same layout).
@Persistent("Tests.MovingHolder")
final class MovingHolderV1 {
    var item: MovingV1?
    var items: PersistentArray<MovingV1>?
}

@Persistent("Tests.MovingHolder")
final class MovingHolderV2 {
    var item: MovingV2?
    var items: PersistentArray<MovingV2>?
}
