/// A closed-loop client: one message outstanding at a time, sent to its guess of each
/// destination group's leader, and sent again to the next replica of every destination group
/// when no leader has answered within `retryTimeout` (a replica that does not lead forwards it to
/// the one it follows). Done when any destination leader replies that it delivered the message.
public struct MulticastClient<Wire: MulticastWire> {
    public let id: ProcessID
    public let configuration: ClusterConfiguration
    public var retryTimeout: Microseconds

    /// The message in flight, when it was first sent and when it was last sent.
    public private(set) var outstanding: (message: MulticastMessage, firstSent: Microseconds, lastSent: Microseconds)?
    /// The next sequence number.
    public private(set) var nextSequence: UInt64 = 1
    /// Which replica of each group this client sends to (an index into its members).
    private var leaderGuess: [GroupID: Int] = [:]

    public init(id: ProcessID, configuration: ClusterConfiguration, retryTimeout: Microseconds) {
        precondition(configuration.group(of: id) == nil, "a client is not a replica")
        self.id = id
        self.configuration = configuration
        self.retryTimeout = retryTimeout
    }

    /// Starts multicasting `payload` to `destinations`; returns the message and what to send.
    public mutating func multicast(_ payload: [UInt8], to destinations: some Sequence<GroupID>, now: Microseconds) -> (MulticastMessage, [(to: ProcessID, message: Wire)]) {
        precondition(outstanding == nil, "a closed-loop client has one message outstanding at a time")
        let message = MulticastMessage(id: MessageID(client: id, sequence: nextSequence), destinations: destinations, payload: payload)
        nextSequence += 1
        outstanding = (message, now, now)
        return (message, sends(for: message))
    }

    /// Handles a replica's message; returns the identity of the message it completes, if any.
    public mutating func receive(_ wire: Wire, from sender: ProcessID) -> MessageID? {
        guard let done = wire.completedMessage, let current = outstanding, current.message.id == done else { return nil }
        if let group = configuration.group(of: sender), let index = configuration.members(of: group).firstIndex(of: sender) {
            leaderGuess[group] = index   // Whoever replied leads (or led) its group.
        }
        outstanding = nil
        return done
    }

    /// Retries with the next replica of each destination group once `retryTimeout` has passed.
    public mutating func tick(now: Microseconds) -> [(to: ProcessID, message: Wire)] {
        guard let current = outstanding, now >= current.lastSent + retryTimeout else { return [] }
        for group in current.message.destinations {
            leaderGuess[group] = ((leaderGuess[group] ?? 0) + 1) % configuration.members(of: group).count
        }
        outstanding = (current.message, current.firstSent, now)
        return sends(for: current.message)
    }

    private func sends(for message: MulticastMessage) -> [(to: ProcessID, message: Wire)] {
        message.destinations.map { group in
            (configuration.members(of: group)[leaderGuess[group] ?? 0], Wire.multicast(message))
        }
    }
}
