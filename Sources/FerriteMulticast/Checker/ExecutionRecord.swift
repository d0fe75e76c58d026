/// What a run did, as the checker needs it: every multicast (when it was first sent), every
/// delivery (by whom, in what order, when), and who exchanged anything about each message. The
/// simulator fills one in; so does merging the delivery logs of real processes.
public struct ExecutionRecord: Sendable {
    public struct Multicast: Sendable {
        public var message: MulticastMessage
        /// When the client first sent it.
        public var sentAt: Microseconds
        public init(message: MulticastMessage, sentAt: Microseconds) {
            self.message = message
            self.sentAt = sentAt
        }
    }

    public struct DeliveryEvent: Sendable, Hashable {
        public var message: MessageID
        public var timestamp: Timestamp
        public var at: Microseconds
        public init(message: MessageID, timestamp: Timestamp, at: Microseconds) {
            self.message = message
            self.timestamp = timestamp
            self.at = at
        }
    }

    public var configuration: ClusterConfiguration
    public var multicasts: [MessageID: Multicast] = [:]
    /// Each replica's deliveries, in the order it made them.
    public var deliveries: [ProcessID: [DeliveryEvent]] = [:]
    /// Every process that sent or received a protocol message about each multicast message
    /// (nil when the run did not record communication, as with real processes).
    public var participants: [MessageID: Set<ProcessID>]?
    /// The replicas that are up at the end of the run (validity concerns only them).
    public var correct: Set<ProcessID>

    public init(configuration: ClusterConfiguration, recordsParticipants: Bool) {
        self.configuration = configuration
        participants = recordsParticipants ? [:] : nil
        correct = Set(configuration.replicas)
    }

    /// Notes that `process` sent or received something about each of `messages`.
    public mutating func noteParticipation(of process: ProcessID, in messages: [MessageID]) {
        guard participants != nil else { return }
        for message in messages { participants![message, default: []].insert(process) }
    }
}
