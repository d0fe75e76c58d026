/// A group of replicas: the unit a message is addressed to.
public struct GroupID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (a: GroupID, b: GroupID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "g\(rawValue)" }
}

/// A process: a replica of some group, or a client. Unique across the cluster.
public struct ProcessID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (a: ProcessID, b: ProcessID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "p\(rawValue)" }
}

/// A multicast message's identity: the client that sent it and that client's sequence number.
public struct MessageID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var client: ProcessID
    public var sequence: UInt64
    public init(client: ProcessID, sequence: UInt64) {
        self.client = client
        self.sequence = sequence
    }
    public static func < (a: MessageID, b: MessageID) -> Bool {
        (a.client, a.sequence) < (b.client, b.sequence)
    }
    public var description: String { "\(client).\(sequence)" }
}

/// A timestamp: a counter and the group that proposed it, ordered lexicographically, so two
/// groups never propose equal timestamps.
public struct Timestamp: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var counter: UInt64
    public var group: GroupID
    public init(counter: UInt64, group: GroupID) {
        self.counter = counter
        self.group = group
    }
    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        (a.counter, a.group.rawValue) < (b.counter, b.group.rawValue)
    }
    public var description: String { "(\(counter),\(group))" }
}

/// A ballot: a number and the process that leads under it, ordered lexicographically. A group's
/// current ballot names its leader.
public struct Ballot: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var number: UInt64
    public var process: ProcessID
    public init(number: UInt64, process: ProcessID) {
        self.number = number
        self.process = process
    }
    public static func < (a: Ballot, b: Ballot) -> Bool {
        (a.number, a.process.rawValue) < (b.number, b.process.rawValue)
    }
    public var description: String { "b(\(number),\(process))" }
}

/// What a client multicasts: an identity, the destination groups (sorted, without duplicates)
/// and an opaque payload.
public struct MulticastMessage: Hashable, Sendable, Codable, CustomStringConvertible {
    public var id: MessageID
    public var destinations: [GroupID]
    public var payload: [UInt8]

    public init(id: MessageID, destinations: some Sequence<GroupID>, payload: [UInt8] = []) {
        self.id = id
        self.destinations = Array(Set(destinations)).sorted()
        self.payload = payload
    }

    /// Whether `group` is one of the destinations.
    public func isAddressed(to group: GroupID) -> Bool { destinations.contains(group) }

    public var description: String { "\(id)->\(destinations.map(\.description).joined(separator: ","))" }
}

/// One delivery by a replica: the message and its final (global) timestamp.
public struct Delivery: Hashable, Sendable, Codable {
    public var message: MulticastMessage
    public var timestamp: Timestamp
    public init(message: MulticastMessage, timestamp: Timestamp) {
        self.message = message
        self.timestamp = timestamp
    }
}

// MARK: Compact encodings
//
// The identifiers are in every message and record: they encode as plain numbers and short
// arrays rather than keyed containers (a keyed container costs a key string per field in any
// encoder).

extension GroupID {
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(Int.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension ProcessID {
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(Int.self) }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

extension MessageID {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        client = ProcessID(try container.decode(Int.self))
        sequence = try container.decode(UInt64.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(client.rawValue)
        try container.encode(sequence)
    }
}

extension Timestamp {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        counter = try container.decode(UInt64.self)
        group = GroupID(try container.decode(Int.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(counter)
        try container.encode(group.rawValue)
    }
}

extension Ballot {
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        number = try container.decode(UInt64.self)
        process = ProcessID(try container.decode(Int.self))
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(number)
        try container.encode(process.rawValue)
    }
}
