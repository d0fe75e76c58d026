/// Time as the driver sees it: microseconds on a monotonic clock. State machines never read a
/// clock; the simulator and the real node pass the time in with every event.
public typealias Microseconds = UInt64

/// The timeouts a replica runs by, in microseconds of the driver's clock.
public struct ProtocolTiming: Hashable, Sendable, Codable {
    /// How often a leader tells its followers it is alive (and what they have missed).
    public var heartbeatInterval: Microseconds
    /// How long a follower waits without hearing from its leader before it tries to take over.
    /// Followers of lower rank wait longer, so that candidates rarely duel.
    public var failureTimeout: Microseconds
    /// How long a leader waits for a message to commit before it sends its proposal again
    /// (messages can be lost; destinations can change leader).
    public var retransmitInterval: Microseconds

    public init(heartbeatInterval: Microseconds, failureTimeout: Microseconds, retransmitInterval: Microseconds) {
        self.heartbeatInterval = heartbeatInterval
        self.failureTimeout = failureTimeout
        self.retransmitInterval = retransmitInterval
    }

    /// A 150 ms failure detector, 30 ms heartbeats, 60 ms retransmissions: the figures of a LAN.
    public static let lan = ProtocolTiming(heartbeatInterval: 30_000, failureTimeout: 150_000, retransmitInterval: 60_000)
}

extension ProtocolTiming {
    /// How long a replica waits for a leader (or for an election to succeed) after `elections`
    /// elections without an established leader: each doubles the wait, up to 16x, so that
    /// overloaded replicas whose heartbeats run late do not start election after election.
    func electionTimeout(afterElections elections: Int) -> Microseconds {
        failureTimeout << min(elections, 4)
    }

    /// How long a follower of rank `rank` waits before standing for election when the leader
    /// has rank `leaderRank` in a group of `size`: replicas further from the leader wait half a
    /// failure timeout more per step, so that one candidate usually stands alone.
    func followerPatience(rank: Int, leaderRank: Int, size: Int, elections: Int) -> Microseconds {
        let distance = (rank - leaderRank + size) % size
        return electionTimeout(afterElections: elections) + UInt64(max(distance - 1, 0)) * failureTimeout / 2
    }
}

/// What a protocol sends over the network: its own messages plus the two a client needs.
public protocol MulticastWire: Sendable, Codable {
    /// A client's request to order `message`.
    static func multicast(_ message: MulticastMessage) -> Self
    /// The message this one tells a client is delivered, if it is such a reply.
    var completedMessage: MessageID? { get }
    /// The multicast messages this wire message carries information about (the checker's
    /// genuineness property: only their destinations and clients may send or receive it).
    var subjects: [MessageID] { get }
}

/// A replica's durable state, rebuilt by applying its records in the order they were written.
public protocol DurableReplicaState: Sendable {
    associatedtype Record: Sendable, Codable
    /// The state of a replica that has never written anything.
    init()
    mutating func apply(_ record: Record)
}

/// What one step of a replica produced. The driver must make `records` durable before it sends
/// any of `sends` or hands `deliveries` to the application (the step's writes happen before its
/// effects are visible).
public struct ReplicaOutput<Wire: MulticastWire, Record: Sendable & Codable> {
    public var sends: [(to: ProcessID, message: Wire)] = []
    public var records: [Record] = []
    public var deliveries: [Delivery] = []
    public init() {}
    public var isEmpty: Bool { sends.isEmpty && records.isEmpty && deliveries.isEmpty }
}

/// An atomic multicast protocol, written as one deterministic state machine per replica: events
/// in (a message, the passing of time), messages to send, state to make durable and deliveries
/// out. No clocks, threads or sockets inside, so the same code runs in the simulator and for real.
public protocol MulticastReplica: SendableMetatype {
    associatedtype Wire: MulticastWire
    associatedtype Durable: DurableReplicaState

    /// Starts (or restarts) replica `id` from its durable state: `Durable()` on first start.
    init(id: ProcessID, configuration: ClusterConfiguration, timing: ProtocolTiming, durable: Durable, now: Microseconds)

    /// Handles one message from `sender`.
    mutating func receive(_ message: Wire, from sender: ProcessID, now: Microseconds) -> ReplicaOutput<Wire, Durable.Record>

    /// Lets time pass: heartbeats, failure detection, retransmissions. Call it every few
    /// milliseconds.
    mutating func tick(now: Microseconds) -> ReplicaOutput<Wire, Durable.Record>

    /// Whether this replica currently leads its group (for tests, logs and the failure injector).
    var isLeader: Bool { get }

    /// A one-paragraph description of the replica's state, for traces of failing runs.
    var stateSummary: String { get }
}
