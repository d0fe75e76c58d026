/// A group's proposal for a message: its local timestamp and the ballot it was accepted under.
public struct Proposal: Hashable, Sendable, Codable {
    public var timestamp: Timestamp
    public var ballot: Ballot
    public init(timestamp: Timestamp, ballot: Ballot) {
        self.timestamp = timestamp
        self.ballot = ballot
    }

    // Four numbers in a row (it is in almost every message).
    public init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        timestamp = Timestamp(counter: try container.decode(UInt64.self), group: GroupID(try container.decode(Int.self)))
        ballot = Ballot(number: try container.decode(UInt64.self), process: ProcessID(try container.decode(Int.self)))
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(timestamp.counter)
        try container.encode(timestamp.group.rawValue)
        try container.encode(ballot.number)
        try container.encode(ballot.process.rawValue)
    }
}

/// What a replica has accepted about one undelivered message: the message and the proposal of
/// each destination group it has seen. Phase ACCEPTED is "a proposal from every destination".
public struct AcceptedMessage: Hashable, Sendable, Codable {
    public var message: MulticastMessage
    public var proposals: [GroupID: Proposal]

    public init(message: MulticastMessage, proposals: [GroupID: Proposal] = [:]) {
        self.message = message
        self.proposals = proposals
    }

    /// Whether every destination group's proposal is known (phase ACCEPTED or later).
    public var hasEveryProposal: Bool { proposals.count == message.destinations.count }

    /// The global timestamp: the largest local one, once every destination has proposed.
    public var globalTimestamp: Timestamp? {
        hasEveryProposal ? proposals.values.map(\.timestamp).max() : nil
    }

    /// The largest counter of any proposal held.
    var largestCounter: UInt64 { proposals.values.map(\.timestamp.counter).max() ?? 0 }

    /// Takes each group's proposal from `other` where it was accepted under a higher ballot.
    /// Returns whether anything changed.
    @discardableResult
    mutating func merge(_ other: AcceptedMessage) -> Bool {
        var changed = false
        for (group, proposal) in other.proposals where proposals[group].map({ $0.ballot < proposal.ballot }) ?? true {
            proposals[group] = proposal
            changed = true
        }
        return changed
    }
}

/// One entry of a group's delivery sequence. Every replica of the group delivers the same
/// sequence: the group's messages in global-timestamp order.
public struct DeliveredEntry: Hashable, Sendable, Codable {
    public var slot: UInt64
    public var message: MulticastMessage
    public var timestamp: Timestamp
    /// The group's chosen proposal for the message (so that a replica can tell another group's
    /// leader, whose view of this group may be stale, what it was).
    public var proposal: Proposal?
    public init(slot: UInt64, message: MulticastMessage, timestamp: Timestamp, proposal: Proposal?) {
        self.slot = slot
        self.message = message
        self.timestamp = timestamp
        self.proposal = proposal
    }
}

/// What a WB-amcast replica writes to stable storage before it lets a step's effects out.
public enum WBAmcastRecord: Hashable, Sendable, Codable {
    /// The replica joined (promised) `ballot`: it accepts nothing from a lower one.
    case promised(Ballot)
    /// The replica's accepted state for an undelivered message, and its clock after accepting.
    case accepted(AcceptedMessage, clock: UInt64)
    /// The replica adopted a new leader's state: `accepted` replaces everything it had accepted,
    /// and `ballot` is the ballot of the state it holds.
    case adopted(ballot: Ballot, accepted: [AcceptedMessage], clock: UInt64)
    /// The replica's clock rose (a commit learned a larger one).
    case clock(UInt64)
    /// The replica delivered the entry (its next slot).
    case delivered(DeliveredEntry)
    /// Every replica of the group has delivered the slots before `slot`: their payloads and
    /// protocol state can go (the identities and timestamps stay, to answer late duplicates).
    case collected(belowSlot: UInt64)
}

/// A WB-amcast replica's durable state. A restarted replica starts from it: its promise, its
/// accepted messages (with them a safe clock) and its delivery sequence.
public struct WBAmcastDurableState: DurableReplicaState, Hashable {
    public var ballot: Ballot?
    /// The ballot of the last leader state the replica adopted (nil: the initial one).
    public var stateBallot: Ballot?
    public var clock: UInt64 = 0
    public var accepted: [MessageID: AcceptedMessage] = [:]
    /// Delivered entries not yet collected, from slot `collectedBelow` on.
    public var deliveries: [DeliveredEntry] = []
    public var collectedBelow: UInt64 = 0
    /// Every delivered message's global timestamp and the group's chosen proposal (kept after
    /// collection, to answer duplicates and other groups' leaders).
    public var deliveredTimestamps: [MessageID: Timestamp] = [:]
    public var deliveredProposals: [MessageID: Proposal] = [:]

    public init() {}

    public var deliveredCount: UInt64 { collectedBelow + UInt64(deliveries.count) }

    public mutating func apply(_ record: WBAmcastRecord) {
        switch record {
        case .promised(let ballot):
            if self.ballot.map({ $0 < ballot }) ?? true { self.ballot = ballot }
        case .accepted(let message, let clock):
            if deliveredTimestamps[message.message.id] == nil { accepted[message.message.id] = message }
            self.clock = max(self.clock, clock)
        case .adopted(let ballot, let messages, let clock):
            stateBallot = ballot
            if self.ballot.map({ $0 < ballot }) ?? true { self.ballot = ballot }
            accepted = [:]
            for message in messages where deliveredTimestamps[message.message.id] == nil {
                accepted[message.message.id] = message
            }
            self.clock = max(self.clock, clock)
        case .clock(let clock):
            self.clock = max(self.clock, clock)
        case .delivered(let entry):
            guard entry.slot == deliveredCount else { return }
            deliveries.append(entry)
            accepted[entry.message.id] = nil
            deliveredTimestamps[entry.message.id] = entry.timestamp
            deliveredProposals[entry.message.id] = entry.proposal
            clock = max(clock, entry.timestamp.counter)
        case .collected(let slot):
            let drop = Int(min(slot, deliveredCount) - min(collectedBelow, slot))
            if drop > 0 {
                deliveries.removeFirst(drop)
                collectedBelow += UInt64(drop)
            }
        }
    }
}

/// WB-amcast's messages.
public enum WBAmcastWire: Hashable, Sendable, Codable, MulticastWire {
    /// MULTICAST: a client (or a follower forwarding for one) asks a destination leader to order
    /// a message.
    case multicast(MulticastMessage)
    /// ACCEPT: a destination leader's proposal, both its group's replication step and its
    /// announcement to the other destinations. Retransmissions also relay the other groups'
    /// proposals the leader holds, so that its followers can complete their view.
    case accept(MulticastMessage, group: GroupID, proposal: Proposal, relayed: [GroupID: Proposal])
    /// ACCEPT_ACK: a replica of `group` holds every destination's proposal, its own group's being
    /// `proposal` under its current ballot, and its clock is at least the global `timestamp`.
    case acceptAck(MessageID, group: GroupID, proposal: Proposal, timestamp: Timestamp)
    /// The answer to an ACCEPT for a message the replica's group has already delivered: the
    /// timestamp it was delivered at and the group's chosen proposal.
    case alreadyDelivered(MessageID, timestamp: Timestamp, proposal: Proposal?)
    /// A leader that learns a follower delivered further than itself asks for the entries.
    case fetchDeliveries(from: UInt64)
    /// DELIVER: the leader's delivery sequence, entry by entry.
    case deliver(DeliveredEntry, ballot: Ballot)
    /// The leader is alive; everything before `collectBelow` is delivered by the whole group.
    case heartbeat(ballot: Ballot, deliveredCount: UInt64, collectBelow: UInt64)
    /// A follower's answer: how far it has delivered (the leader resends what is missing).
    case heartbeatAck(ballot: Ballot, deliveredCount: UInt64)
    /// NEWLEADER: a candidate asks its group to join `ballot`; it has delivered `deliveredCount`.
    case newLeader(ballot: Ballot, deliveredCount: UInt64)
    /// A member joined: the ballot of the leader state it holds, its clock, what it has accepted,
    /// and the deliveries the candidate lacks.
    case newLeaderAck(ballot: Ballot, stateBallot: Ballot, clock: UInt64, accepted: [AcceptedMessage], deliveries: [DeliveredEntry], deliveredCount: UInt64)
    /// NEWLEADER_SYNC: the state the new leader adopted, for its members to adopt too.
    case newLeaderSync(ballot: Ballot, clock: UInt64, accepted: [AcceptedMessage], deliveries: [DeliveredEntry])
    /// A member adopted the new leader's state.
    case syncAck(ballot: Ballot, deliveredCount: UInt64)
    /// A leader's reply to the client: the message is delivered.
    case delivered(MessageID)

    public var completedMessage: MessageID? {
        if case .delivered(let id) = self { return id }
        return nil
    }

    public var subjects: [MessageID] {
        switch self {
        case .multicast(let m), .accept(let m, _, _, _): [m.id]
        case .acceptAck(let id, _, _, _), .alreadyDelivered(let id, _, _), .delivered(let id): [id]
        case .deliver(let entry, _): [entry.message.id]
        case .heartbeat, .heartbeatAck, .newLeader, .syncAck, .fetchDeliveries: []
        case .newLeaderAck(_, _, _, let accepted, let deliveries, _), .newLeaderSync(_, _, let accepted, let deliveries):
            accepted.map(\.message.id) + deliveries.map(\.message.id)
        }
    }
}
