/// A command in a group's replicated log (the baseline protocol).
public enum SkeenCommand: Hashable, Sendable, Codable {
    /// Give the message this group's next local timestamp (a message to this group alone is then
    /// final at once).
    case register(MulticastMessage)
    /// The message's global timestamp is known (the largest of its groups' local timestamps).
    case finalize(MessageID, Timestamp)
    /// Fills a slot a new leader found empty.
    case noop
}

/// One slot of a group's log as a replica accepted it.
public struct SkeenLogEntry: Hashable, Sendable, Codable {
    public var slot: UInt64
    public var ballot: Ballot
    public var command: SkeenCommand
    public init(slot: UInt64, ballot: Ballot, command: SkeenCommand) {
        self.slot = slot
        self.ballot = ballot
        self.command = command
    }
}

/// What a baseline replica writes to stable storage.
public enum SkeenRecord: Hashable, Sendable, Codable {
    case promised(Ballot)
    case accepted(SkeenLogEntry)
    /// The log's slots below `slot` are chosen and applied.
    case applied(belowSlot: UInt64)
}

/// A baseline replica's durable state: its promise, its log, and how much of it was applied.
public struct SkeenDurableState: DurableReplicaState, Hashable {
    public var ballot: Ballot?
    public var log: [UInt64: SkeenLogEntry] = [:]
    public var applied: UInt64 = 0
    public init() {}
    public mutating func apply(_ record: SkeenRecord) {
        switch record {
        case .promised(let ballot):
            if self.ballot.map({ $0 < ballot }) ?? true { self.ballot = ballot }
        case .accepted(let entry):
            log[entry.slot] = entry
        case .applied(let slot):
            applied = max(applied, slot)
        }
    }
}

/// The baseline's messages: Multi-Paxos inside each group, Skeen's timestamps between groups.
public enum SkeenWire: Hashable, Sendable, Codable, MulticastWire {
    case multicast(MulticastMessage)
    /// Phase 2a: the leader asks its group to accept a log entry; everything below
    /// `commitIndex` is chosen.
    case accept(SkeenLogEntry, commitIndex: UInt64)
    /// Phase 2b.
    case accepted(ballot: Ballot, slot: UInt64)
    case heartbeat(ballot: Ballot, commitIndex: UInt64)
    case heartbeatAck(ballot: Ballot, applied: UInt64)
    /// Phase 1a: a candidate asks for what was accepted from `from` on.
    case prepare(ballot: Ballot, from: UInt64)
    /// Phase 1b.
    case promise(ballot: Ballot, entries: [SkeenLogEntry], applied: UInt64)
    /// Skeen's exchange: a destination group's local timestamp for a message.
    case localTimestamp(MulticastMessage, group: GroupID, timestamp: Timestamp)
    case delivered(MessageID)

    public var completedMessage: MessageID? {
        if case .delivered(let id) = self { return id }
        return nil
    }

    public var subjects: [MessageID] {
        switch self {
        case .multicast(let m), .localTimestamp(let m, _, _): [m.id]
        case .delivered(let id): [id]
        case .accept(let entry, _): entry.command.subject.map { [$0] } ?? []
        case .promise(_, let entries, _): entries.compactMap(\.command.subject)
        case .accepted, .heartbeat, .heartbeatAck, .prepare: []
        }
    }
}

extension SkeenCommand {
    var subject: MessageID? {
        switch self {
        case .register(let m): m.id
        case .finalize(let id, _): id
        case .noop: nil
        }
    }
}

/// Skeen's protocol as a deterministic state machine over a group's log: every replica applies
/// the same commands in the same order, so every replica delivers the same sequence.
struct SkeenStateMachine {
    let group: GroupID
    private(set) var clock: UInt64 = 0
    /// Registered messages whose global timestamp is not yet known, with their local timestamp.
    private(set) var waiting: [MessageID: (message: MulticastMessage, local: Timestamp)] = [:]
    /// Messages whose global timestamp is known, not yet delivered.
    private var final: [MessageID: (message: MulticastMessage, global: Timestamp)] = [:]
    private(set) var delivered: Set<MessageID> = []
    /// This group's local timestamp for every message it registered.
    private(set) var localTimestamps: [MessageID: Timestamp] = [:]

    init(group: GroupID) { self.group = group }

    func isKnown(_ id: MessageID) -> Bool { waiting[id] != nil || final[id] != nil || delivered.contains(id) }

    func localTimestamp(of id: MessageID) -> Timestamp? { waiting[id]?.local }

    /// Applies one command; returns the local timestamp a register assigned (for the leader to
    /// announce) and the deliveries it made possible, in order.
    mutating func apply(_ command: SkeenCommand) -> (registered: (MulticastMessage, Timestamp)?, deliveries: [Delivery]) {
        var registered: (MulticastMessage, Timestamp)?
        switch command {
        case .noop:
            break
        case .register(let m):
            guard !isKnown(m.id) else { break }
            clock += 1
            let local = Timestamp(counter: clock, group: group)
            localTimestamps[m.id] = local
            if m.destinations == [group] {
                final[m.id] = (m, local)
            } else {
                waiting[m.id] = (m, local)
                registered = (m, local)
            }
        case .finalize(let id, let global):
            guard let entry = waiting.removeValue(forKey: id) else { break }
            final[id] = (entry.message, global)
            clock = max(clock, global.counter)
        }
        var deliveries: [Delivery] = []
        // Deliver in global-timestamp order whatever no waiting message can still precede.
        while let next = final.min(by: { $0.value.global < $1.value.global }) {
            if let smallest = waiting.values.map(\.local).min(), smallest < next.value.global { break }
            final[next.key] = nil
            delivered.insert(next.key)
            deliveries.append(Delivery(message: next.value.message, timestamp: next.value.global))
        }
        return (registered, deliveries)
    }
}
