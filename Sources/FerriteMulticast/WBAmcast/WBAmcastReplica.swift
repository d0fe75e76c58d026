/// One replica of White-Box Atomic Multicast (Gotsman, Lefort and Chockler, DSN 2019) as a
/// deterministic state machine.
///
/// Failure-free path: a destination leader gives a new message a local timestamp (its clock plus
/// one) and sends ACCEPT to every replica of every destination group, which is both its group's
/// replication step and its proposal to the other groups. A replica holding every destination's
/// proposal computes the global timestamp (the largest local one), raises its clock to it, and
/// acknowledges to every destination leader. A leader commits once a majority of every
/// destination group, including that group's proposing leader, acknowledged the same ballots; it
/// delivers committed messages in global-timestamp order once no pending message of its group
/// has a smaller local timestamp, and streams its delivery sequence to its followers.
///
/// Leader recovery: a follower that stops hearing from its leader becomes a candidate with a
/// higher ballot, gathers a majority's accepted state, adopts it (keeping only own-group
/// proposals at least as recent as the newest leader state any of them holds, so that nothing an
/// intermediate leader skipped comes back with an old timestamp), derives its clock from it, has
/// a majority adopt it too, then re-proposes under its ballot what is still undelivered.
///
/// Durability: the records of a step must be stable before its messages leave (see
/// ``ReplicaOutput``). A restarted replica rebuilds its promise, accepted messages, clock and
/// delivery sequence from them.
public struct WBAmcastReplica: MulticastReplica {
    public typealias Wire = WBAmcastWire
    public typealias Durable = WBAmcastDurableState
    typealias Output = ReplicaOutput<WBAmcastWire, WBAmcastRecord>

    /// A message this replica has seen and not yet delivered.
    struct Pending {
        var accepted: AcceptedMessage
        /// At a leader: the global timestamp once the message is committed.
        var committed: Timestamp?
        /// At a leader: each replica's last acknowledgement (its group's proposal, the global
        /// timestamp it computed).
        var acks: [ProcessID: (proposal: Proposal, timestamp: Timestamp)] = [:]
        /// At a leader: destination groups that answered they already delivered the message,
        /// and the timestamp they delivered it at.
        var deliveredIn: Set<GroupID> = []
        var deliveredAt: Timestamp?
        /// At a leader: when the group's proposal was last sent (0: never), and how many times
        /// it was sent again since (each doubles the wait before the next, up to 16x: under
        /// load, eager retransmissions would only add load).
        var lastSent: Microseconds = 0
        var retransmissions = 0
    }

    enum Role {
        case follower
        /// Gathering NEWLEADER acknowledgements.
        case candidate(since: Microseconds, answers: [ProcessID: CandidateAnswer])
        /// Waiting for a majority to adopt the state gathered.
        case synchronizing(since: Microseconds, acks: Set<ProcessID>)
        case leader
    }

    struct CandidateAnswer {
        var stateBallot: Ballot
        var clock: UInt64
        var accepted: [AcceptedMessage]
        var deliveries: [DeliveredEntry]
        var deliveredCount: UInt64
    }

    public let id: ProcessID
    public let group: GroupID
    let configuration: ClusterConfiguration
    let timing: ProtocolTiming
    let members: [ProcessID]
    let rank: Int

    /// The ballot this replica has joined: it accepts nothing from its group under a lower one.
    private(set) var ballot: Ballot
    /// The ballot of the leader state this replica holds (see `WBAmcastRecord.adopted`).
    private(set) var stateBallot: Ballot
    private(set) var role: Role
    private(set) var clock: UInt64
    /// The newest ballot seen from each other group (whose replica leads it).
    private var knownBallots: [GroupID: Ballot] = [:]
    private var pending: [MessageID: Pending] = [:]

    /// The delivery sequence: slots below `collectedBelow` are collected; `log` holds the rest.
    private var log: [DeliveredEntry]
    private var collectedBelow: UInt64
    private var deliveredTimestamps: [MessageID: Timestamp]
    private var deliveredProposals: [MessageID: Proposal]
    private var deliveredCount: UInt64 { collectedBelow + UInt64(log.count) }
    /// Deliveries received ahead of a gap.
    private var early: [UInt64: DeliveredEntry] = [:]

    private var lastHeardFromLeader: Microseconds
    /// Elections seen (stood for or joined) since an established leader was last heard: each
    /// one doubles the patience before the next (up to 16x), so that overloaded replicas whose
    /// heartbeats run late do not start election after election.
    private var elections = 0
    private var lastHeartbeat: Microseconds = 0
    /// At a leader: how far each follower has delivered.
    private var memberDelivered: [ProcessID: UInt64] = [:]
    /// Messages to this replica itself, handled within the same step.
    private var loopback: [WBAmcastWire] = []

    public var isLeader: Bool {
        if case .leader = role { return true }
        return false
    }

    public init(id: ProcessID, configuration: ClusterConfiguration, timing: ProtocolTiming, durable: WBAmcastDurableState, now: Microseconds) {
        guard let group = configuration.group(of: id) else { preconditionFailure("\(id) is not a replica") }
        self.id = id
        self.group = group
        self.configuration = configuration
        self.timing = timing
        members = configuration.members(of: group)
        rank = members.firstIndex(of: id)!
        let initial = configuration.initialBallot(of: group)
        ballot = durable.ballot ?? initial
        stateBallot = durable.stateBallot ?? initial
        log = durable.deliveries
        collectedBelow = durable.collectedBelow
        deliveredTimestamps = durable.deliveredTimestamps
        deliveredProposals = durable.deliveredProposals
        // A safe clock derived from what survived: at least every timestamp accepted or
        // delivered here (the recorded clock covers the clock rule's raises).
        var clock = durable.clock
        for accepted in durable.accepted.values {
            clock = max(clock, accepted.largestCounter)
            pending[accepted.message.id] = Pending(accepted: accepted)
        }
        for entry in log { clock = max(clock, entry.timestamp.counter) }
        self.clock = clock
        lastHeardFromLeader = now
        role = .follower
        if durable.ballot == nil, durable.deliveredCount == 0, durable.accepted.isEmpty, id == initial.process {
            role = .leader   // First start: the group's first leader leads its (empty) initial state.
        }
    }

    // MARK: Events

    public mutating func receive(_ message: WBAmcastWire, from sender: ProcessID, now: Microseconds) -> ReplicaOutput<WBAmcastWire, WBAmcastRecord> {
        var output = Output()
        handle(message, from: sender, now: now, into: &output)
        drainLoopback(now: now, into: &output)
        return output
    }

    public mutating func tick(now: Microseconds) -> ReplicaOutput<WBAmcastWire, WBAmcastRecord> {
        var output = Output()
        switch role {
        case .leader:
            leaderTick(now: now, into: &output)
        case .follower:
            // A follower whose leader went quiet stands for election. Replicas further from the leader in rank order wait longer, so that one usually
            // stands alone.
            // A restarted former leader waits like anyone else: another may lead by now.
            let patience = timing.followerPatience(rank: rank, leaderRank: members.firstIndex(of: ballot.process)!, size: members.count, elections: elections)
            if now >= lastHeardFromLeader + patience { standForElection(now: now, into: &output) }
        case .candidate(let since, _), .synchronizing(let since, _):
            if now >= since + electionTimeout { standForElection(now: now, into: &output) }
        }
        drainLoopback(now: now, into: &output)
        return output
    }

    private mutating func handle(_ message: WBAmcastWire, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        switch message {
        case .multicast(let m):
            onMulticast(m, from: sender, now: now, into: &output)
        case .accept(let m, let proposer, let proposal, let relayed):
            onAccept(m, from: proposer, proposal: proposal, relayed: relayed, sender: sender, now: now, into: &output)
        case .acceptAck(let id, let ackGroup, let proposal, let timestamp):
            onAcceptAck(id, group: ackGroup, proposal: proposal, timestamp: timestamp, from: sender, now: now, into: &output)
        case .alreadyDelivered(let id, let timestamp, let proposal):
            onAlreadyDelivered(id, timestamp: timestamp, proposal: proposal, from: sender, now: now, into: &output)
        case .fetchDeliveries(let slot):
            resendDeliveries(to: sender, from: slot, into: &output)
        case .deliver(let entry, let leaderBallot):
            hearFromGroup(leaderBallot, sender: sender, now: now, into: &output)
            receiveDelivery(entry, now: now, into: &output)
        case .heartbeat(let leaderBallot, _, let collectBelow):
            hearFromGroup(leaderBallot, sender: sender, now: now, into: &output)
            if leaderBallot == ballot, sender == ballot.process {
                collect(below: min(collectBelow, deliveredCount), into: &output)
                send(.heartbeatAck(ballot: ballot, deliveredCount: deliveredCount), to: sender, into: &output)
            }
        case .heartbeatAck(let followerBallot, let count):
            guard isLeader, followerBallot == ballot else { return }
            memberDelivered[sender] = max(memberDelivered[sender] ?? 0, count)
            resendDeliveries(to: sender, from: count, into: &output)
            // A follower can be ahead of a new leader (it got the old leader's last deliveries).
            if count > deliveredCount { send(.fetchDeliveries(from: deliveredCount), to: sender, into: &output) }
        case .newLeader(let candidateBallot, let candidateCount):
            onNewLeader(candidateBallot, candidateCount: candidateCount, from: sender, now: now, into: &output)
        case .newLeaderAck(let b, let memberStateBallot, let memberClock, let accepted, let deliveries, let count):
            onNewLeaderAck(b, answer: CandidateAnswer(stateBallot: memberStateBallot, clock: memberClock, accepted: accepted, deliveries: deliveries, deliveredCount: count), from: sender, now: now, into: &output)
        case .newLeaderSync(let b, let leaderClock, let accepted, let deliveries):
            onNewLeaderSync(b, clock: leaderClock, accepted: accepted, deliveries: deliveries, from: sender, now: now, into: &output)
        case .syncAck(let b, let count):
            onSyncAck(b, deliveredCount: count, from: sender, now: now, into: &output)
        case .delivered:
            break   // Replies are for clients.
        }
    }

    // MARK: Failure-free path

    private mutating func onMulticast(_ m: MulticastMessage, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard m.isAddressed(to: group), m.destinations.allSatisfy(configuration.contains) else { return }
        if deliveredTimestamps[m.id] != nil {
            if isLeader { send(.delivered(m.id), to: m.id.client, into: &output) }
            return
        }
        guard isLeader else {
            // A client guessed wrong: pass it on to the leader this replica follows (once).
            if configuration.group(of: sender) != group, ballot.process != id {
                send(.multicast(m), to: ballot.process, into: &output)
            }
            return
        }
        if pending[m.id]?.accepted.proposals[group]?.ballot == ballot { return }   // Already proposed.
        propose(m, now: now, into: &output)
    }

    /// Sends this group's proposal for `m` to every destination replica: the timestamp it already
    /// has (recovered, or sent before) under the current ballot, else a fresh one. A proposal sent
    /// again relays the other groups' proposals this leader holds.
    private mutating func propose(_ m: MulticastMessage, now: Microseconds, onlyTo targets: Set<ProcessID>? = nil, into output: inout Output) {
        var entry = pending[m.id] ?? Pending(accepted: AcceptedMessage(message: m))
        let timestamp: Timestamp
        if let existing = entry.accepted.proposals[group] {
            timestamp = existing.timestamp
        } else {
            clock += 1
            timestamp = Timestamp(counter: clock, group: group)
        }
        var relayed: [GroupID: Proposal] = [:]
        if entry.lastSent != 0 {
            relayed = entry.accepted.proposals
            relayed[group] = nil
        }
        entry.lastSent = now
        pending[m.id] = entry
        let proposal = Proposal(timestamp: timestamp, ballot: ballot)
        for destination in m.destinations {
            for member in configuration.members(of: destination) where targets?.contains(member) ?? true {
                send(.accept(m, group: group, proposal: proposal, relayed: relayed), to: member, into: &output)
            }
        }
    }

    private mutating func onAccept(_ m: MulticastMessage, from proposer: GroupID, proposal: Proposal, relayed: [GroupID: Proposal], sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard m.isAddressed(to: group), m.isAddressed(to: proposer) else { return }
        if let timestamp = deliveredTimestamps[m.id] {
            send(.alreadyDelivered(m.id, timestamp: timestamp, proposal: deliveredProposals[m.id]), to: sender, into: &output)
            return
        }
        if proposer == group {
            if proposal.ballot < ballot { return }
            if proposal.ballot > ballot { join(proposal.ballot, now: now, into: &output) }
            if sender == ballot.process {
                lastHeardFromLeader = now
                elections = 0
            }
        } else {
            if proposal.ballot < knownBallot(of: proposer) { return }
            knownBallots[proposer] = proposal.ballot
        }
        var proposals = relayed.filter { $0.key != group && $0.key != proposer && m.isAddressed(to: $0.key) }
        proposals[proposer] = proposal
        hold(proposals, for: m, into: &output)
        let entry = pending[m.id]!
        if isLeader, entry.accepted.proposals[group] == nil {
            propose(m, now: now, into: &output)   // First seen through another group's proposal.
        }
        // Acknowledge once every destination has proposed, this group under the current ballot.
        guard let global = entry.accepted.globalTimestamp, let own = entry.accepted.proposals[group], own.ballot == ballot else { return }
        // The clock rule holds before any acknowledgement leaves, whatever completed the set
        // (an ACCEPT, or a leader state adopted since).
        if global.counter > clock {
            clock = global.counter
            output.records.append(.clock(clock))
        }
        for destination in m.destinations {
            send(.acceptAck(m.id, group: group, proposal: own, timestamp: global), to: leader(of: destination), into: &output)
        }
    }

    /// Accepts `proposals` for `m` where they are newer than what this replica holds, applying the
    /// clock rule, and records the result.
    private mutating func hold(_ proposals: [GroupID: Proposal], for m: MulticastMessage, into output: inout Output) {
        var entry = pending[m.id] ?? Pending(accepted: AcceptedMessage(message: m))
        var changed = false
        for (proposer, proposal) in proposals {
            if let held = entry.accepted.proposals[proposer], held.ballot >= proposal.ballot { continue }
            entry.accepted.proposals[proposer] = proposal
            changed = true
            if proposer == group { clock = max(clock, proposal.timestamp.counter) }
        }
        if changed {
            // The clock rule, at every replica: never propose below a global timestamp held.
            if let global = entry.accepted.globalTimestamp { clock = max(clock, global.counter) }
            output.records.append(.accepted(entry.accepted, clock: clock))
        }
        pending[m.id] = entry
    }

    private mutating func onAcceptAck(_ id: MessageID, group ackGroup: GroupID, proposal: Proposal, timestamp: Timestamp, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard isLeader, let entry = pending[id], entry.committed == nil,
              configuration.group(of: sender) == ackGroup, entry.accepted.message.isAddressed(to: ackGroup)
        else { return }
        if ackGroup != group, entry.accepted.proposals[ackGroup].map({ $0.ballot < proposal.ballot }) ?? true {
            hold([ackGroup: proposal], for: entry.accepted.message, into: &output)   // A newer proposal of that group.
        }
        pending[id]!.acks[sender] = (proposal, timestamp)
        commitIfChosen(id, now: now, into: &output)
    }

    private mutating func onAlreadyDelivered(_ id: MessageID, timestamp: Timestamp, proposal: Proposal?, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard isLeader, let senderGroup = configuration.group(of: sender) else { return }
        if senderGroup == group {
            // A follower delivered it, this leader has not: catch up from the follower.
            send(.fetchDeliveries(from: deliveredCount), to: sender, into: &output)
            return
        }
        guard let held = pending[id], held.committed == nil, held.accepted.message.isAddressed(to: senderGroup) else { return }
        // That group's chosen proposal replaces a stale one this leader may hold (the chosen one
        // is always under a higher ballot: later leaders of that group re-propose it).
        if let proposal { hold([senderGroup: proposal], for: held.accepted.message, into: &output) }
        var entry = pending[id]!
        if let global = entry.accepted.globalTimestamp, global != timestamp { return }
        if let known = entry.deliveredAt, known != timestamp { return }
        entry.deliveredIn.insert(senderGroup)
        entry.deliveredAt = timestamp
        pending[id] = entry
        commitIfChosen(id, now: now, into: &output)
    }

    /// Commits `id` once every destination group's proposal is chosen and a majority of every
    /// destination group holds a clock at least the global timestamp: for each group, a
    /// majority acknowledged the proposal this leader holds for it (under the same ballot) with
    /// the same global timestamp, among them the leader that proposed it (its clock is then past
    /// the global timestamp, so nothing it proposes later can be ordered before this message: real-
    /// time order). Another group that already delivered the message stands for its acks; this
    /// leader's own group never does (a deposed leader must not deliver).
    private mutating func commitIfChosen(_ id: MessageID, now: Microseconds, into output: inout Output) {
        guard let entry = pending[id], entry.committed == nil,
              let own = entry.accepted.proposals[group], own.ballot == ballot
        else { return }
        let timestamp: Timestamp
        if let deliveredAt = entry.deliveredAt {
            // Another group delivered it at `deliveredAt`: commit at exactly that, or not at all.
            if let global = entry.accepted.globalTimestamp, global != deliveredAt { return }
            timestamp = deliveredAt
        } else if let global = entry.accepted.globalTimestamp {
            timestamp = global
        } else {
            return
        }
        for destination in entry.accepted.message.destinations {
            if destination != group, entry.deliveredIn.contains(destination) { continue }
            guard let view = entry.accepted.proposals[destination] else { return }
            var acks = 0
            var proposerAcked = false
            for member in configuration.members(of: destination) {
                guard let ack = entry.acks[member], ack.proposal == view, ack.timestamp == timestamp else { continue }
                acks += 1
                if member == view.ballot.process { proposerAcked = true }
            }
            guard acks >= configuration.majority(of: destination), proposerAcked else { return }
        }
        pending[id]!.committed = timestamp
        if timestamp.counter > clock {
            clock = timestamp.counter
            output.records.append(.clock(clock))
        }
        deliverCommitted(now: now, into: &output)
    }

    /// The delivery rule: the committed message with the smallest global timestamp goes first,
    /// once no uncommitted message of this group has a smaller local timestamp (its global one
    /// can only be larger than its local one, and what is proposed later gets a larger one).
    private mutating func deliverCommitted(now: Microseconds, into output: inout Output) {
        while true {
            var next: (id: MessageID, timestamp: Timestamp)?
            var smallestUncommitted: Timestamp?
            for (id, entry) in pending {
                if let committed = entry.committed {
                    if next.map({ committed < $0.timestamp }) ?? true { next = (id, committed) }
                } else if let local = entry.accepted.proposals[group]?.timestamp {
                    if smallestUncommitted.map({ local < $0 }) ?? true { smallestUncommitted = local }
                }
            }
            guard let next, smallestUncommitted.map({ next.timestamp < $0 }) ?? true else { return }
            let message = pending[next.id]!.accepted.message
            let entry = DeliveredEntry(slot: deliveredCount, message: message, timestamp: next.timestamp, proposal: pending[next.id]!.accepted.proposals[group])
            applyDelivery(entry, into: &output)
            for member in members where member != id {
                send(.deliver(entry, ballot: ballot), to: member, into: &output)
            }
            send(.delivered(message.id), to: message.id.client, into: &output)
        }
    }

    private mutating func receiveDelivery(_ entry: DeliveredEntry, now: Microseconds, into output: inout Output) {
        guard entry.slot >= deliveredCount else { return }
        early[entry.slot] = entry
        var applied = false
        while let next = early.removeValue(forKey: deliveredCount) {
            applyDelivery(next, into: &output)
            applied = true
        }
        // A leader catching up from a follower may have just removed what blocked its own
        // committed messages.
        if applied, isLeader { deliverCommitted(now: now, into: &output) }
    }

    private mutating func applyDelivery(_ entry: DeliveredEntry, into output: inout Output) {
        precondition(entry.slot == deliveredCount)
        output.records.append(.delivered(entry))
        output.deliveries.append(Delivery(message: entry.message, timestamp: entry.timestamp))
        log.append(entry)
        pending[entry.message.id] = nil
        deliveredTimestamps[entry.message.id] = entry.timestamp
        deliveredProposals[entry.message.id] = entry.proposal
        clock = max(clock, entry.timestamp.counter)
        early.removeValue(forKey: entry.slot)
    }

    private mutating func leaderTick(now: Microseconds, into output: inout Output) {
        if now >= lastHeartbeat + timing.heartbeatInterval {
            lastHeartbeat = now
            let collectBelow = members.filter { $0 != id }.map { memberDelivered[$0] ?? 0 }.min() ?? deliveredCount
            collect(below: min(collectBelow, deliveredCount), into: &output)
            for member in members where member != id {
                send(.heartbeat(ballot: ballot, deliveredCount: deliveredCount, collectBelow: collectedBelow), to: member, into: &output)
            }
        }
        // Retransmit proposals that have not committed: messages get lost, and a destination
        // may have changed leader since.
        let overdue = pending.filter { $0.value.committed == nil && now >= $0.value.lastSent + timing.retransmitInterval << min($0.value.retransmissions, 4) }
        for (id, entry) in overdue.sorted(by: { $0.key < $1.key }) {
            // Only to the replicas that have not acknowledged this proposal yet (all of them if
            // this group has not proposed under the current ballot).
            var targets: Set<ProcessID>?
            if let own = entry.accepted.proposals[group], own.ballot == ballot, let global = entry.accepted.globalTimestamp {
                targets = []
                for destination in entry.accepted.message.destinations {
                    let view = entry.accepted.proposals[destination]
                    for member in configuration.members(of: destination) {
                        let counted = entry.acks[member].map { $0.proposal == view && $0.timestamp == global } ?? false
                        if !counted { targets!.insert(member) }
                    }
                }
            }
            pending[id]!.retransmissions += 1
            propose(entry.accepted.message, now: now, onlyTo: targets, into: &output)
        }
    }

    private mutating func resendDeliveries(to member: ProcessID, from slot: UInt64, into output: inout Output) {
        guard slot < deliveredCount, slot >= collectedBelow else { return }
        let start = Int(slot - collectedBelow)
        for entry in log[start..<min(start + 512, log.count)] {
            send(.deliver(entry, ballot: ballot), to: member, into: &output)
        }
    }

    /// Drops delivered payloads every replica of the group has delivered.
    private mutating func collect(below slot: UInt64, into output: inout Output) {
        guard slot > collectedBelow else { return }
        log.removeFirst(Int(slot - collectedBelow))
        collectedBelow = slot
        output.records.append(.collected(belowSlot: slot))
    }

    // MARK: Leader recovery

    /// A message from this group's leader (or a would-be leader) under `leaderBallot`.
    private mutating func hearFromGroup(_ leaderBallot: Ballot, sender: ProcessID, now: Microseconds, into output: inout Output) {
        if leaderBallot > ballot { join(leaderBallot, now: now, into: &output) }
        if leaderBallot == ballot, sender == ballot.process {
            lastHeardFromLeader = now
            elections = 0
        }
    }

    /// Promises `newBallot`: this replica now follows its leader.
    private mutating func join(_ newBallot: Ballot, now: Microseconds, into output: inout Output) {
        precondition(newBallot > ballot)
        ballot = newBallot
        role = .follower
        lastHeardFromLeader = now
        output.records.append(.promised(newBallot))
    }

    private mutating func standForElection(now: Microseconds, into output: inout Output) {
        elections += 1
        let candidacy = Ballot(number: ballot.number + 1, process: id)
        ballot = candidacy
        output.records.append(.promised(candidacy))
        role = .candidate(since: now, answers: [:])
        for member in members {
            send(.newLeader(ballot: candidacy, deliveredCount: deliveredCount), to: member, into: &output)
        }
    }

    private mutating func onNewLeader(_ candidacy: Ballot, candidateCount: UInt64, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        if candidacy > ballot {
            join(candidacy, now: now, into: &output)
            elections += 1
        }
        guard candidacy == ballot else { return }
        var deliveries: [DeliveredEntry] = []
        if candidateCount < deliveredCount, candidateCount >= collectedBelow {
            deliveries = Array(log[Int(candidateCount - collectedBelow)...])
        }
        let accepted = pending.values.map(\.accepted).sorted { $0.message.id < $1.message.id }
        send(.newLeaderAck(ballot: candidacy, stateBallot: stateBallot, clock: clock, accepted: accepted, deliveries: deliveries, deliveredCount: deliveredCount), to: sender, into: &output)
    }

    private mutating func onNewLeaderAck(_ candidacy: Ballot, answer: CandidateAnswer, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard candidacy == ballot, case .candidate(let since, var answers) = role else { return }
        answers[sender] = answer
        role = .candidate(since: since, answers: answers)
        guard answers.count >= configuration.majority(of: group) else { return }

        // Catch up on what any of them delivered (the group's sequence is unique).
        for entry in answers.values.flatMap(\.deliveries).sorted(by: { $0.slot < $1.slot }) where entry.slot == deliveredCount {
            applyDelivery(entry, into: &output)
        }
        while let next = early.removeValue(forKey: deliveredCount) { applyDelivery(next, into: &output) }
        early = early.filter { $0.key >= deliveredCount }
        // Adopt, per message, each group's proposal from the highest ballot; but only own-group
        // proposals no older than the newest leader state among the answers: anything older was
        // not chosen, and that state's leader may have delivered past its timestamp.
        let newestState = answers.values.map(\.stateBallot).max()!
        var adopted: [MessageID: AcceptedMessage] = [:]
        var newClock = clock
        for answer in answers.values {
            newClock = max(newClock, answer.clock)
            for var accepted in answer.accepted where deliveredTimestamps[accepted.message.id] == nil {
                if let own = accepted.proposals[group], own.ballot < newestState { accepted.proposals[group] = nil }
                adopted[accepted.message.id, default: AcceptedMessage(message: accepted.message)].merge(accepted)
            }
        }
        for (id, var accepted) in adopted {
            if let own = accepted.proposals[group] {
                accepted.proposals[group] = Proposal(timestamp: own.timestamp, ballot: candidacy)
                newClock = max(newClock, own.timestamp.counter)
            }
            if let global = accepted.globalTimestamp { newClock = max(newClock, global.counter) }
            adopted[id] = accepted
        }
        clock = newClock
        adopt(candidacy, accepted: adopted, into: &output)
        role = .synchronizing(since: now, acks: [id])
        memberDelivered = answers.mapValues(\.deliveredCount)
        let state = adopted.values.sorted { $0.message.id < $1.message.id }
        for member in members where member != id {
            let from = answers[member]?.deliveredCount ?? collectedBelow
            let missing = from >= collectedBelow && from < deliveredCount ? Array(log[Int(from - collectedBelow)...]) : []
            send(.newLeaderSync(ballot: candidacy, clock: clock, accepted: state, deliveries: missing), to: member, into: &output)
        }
        onSyncAck(candidacy, deliveredCount: deliveredCount, from: id, now: now, into: &output)
    }

    /// Replaces this replica's accepted state with a leader's.
    private mutating func adopt(_ leaderBallot: Ballot, accepted: [MessageID: AcceptedMessage], into output: inout Output) {
        var state: [MessageID: AcceptedMessage] = [:]
        // Own-group proposals from older ballots that the new state leaves out were not chosen:
        // drop them. Keep the ones this leader already proposed under its own ballot (its
        // ACCEPTs can overtake its NEWLEADER_SYNC), and what other groups proposed (without an
        // own-group proposal, a message this group has still to propose).
        for (id, entry) in pending {
            var kept = entry.accepted
            if let own = kept.proposals[group], own.ballot < leaderBallot { kept.proposals[group] = nil }
            if !kept.proposals.isEmpty { state[id] = kept }
        }
        for (id, entry) in accepted { state[id, default: entry].merge(entry) }
        // The clock rule over the adopted state: merging can complete a message's proposals.
        for entry in state.values {
            clock = max(clock, entry.globalTimestamp?.counter ?? 0)
            if let own = entry.proposals[group] { clock = max(clock, own.timestamp.counter) }
        }
        pending = state.mapValues { Pending(accepted: $0) }
        stateBallot = leaderBallot
        output.records.append(.adopted(ballot: leaderBallot, accepted: state.values.sorted { $0.message.id < $1.message.id }, clock: clock))
    }

    private mutating func onNewLeaderSync(_ leaderBallot: Ballot, clock leaderClock: UInt64, accepted: [AcceptedMessage], deliveries: [DeliveredEntry], from sender: ProcessID, now: Microseconds, into output: inout Output) {
        if leaderBallot > ballot { join(leaderBallot, now: now, into: &output) }
        guard leaderBallot == ballot, sender == leaderBallot.process else { return }
        lastHeardFromLeader = now
        if stateBallot == leaderBallot {
            // A duplicate: this state was adopted already, and what was accepted since must stay.
            send(.syncAck(ballot: leaderBallot, deliveredCount: deliveredCount), to: sender, into: &output)
            return
        }
        for entry in deliveries { receiveDelivery(entry, now: now, into: &output) }
        clock = max(clock, leaderClock)
        var state: [MessageID: AcceptedMessage] = [:]
        for entry in accepted where deliveredTimestamps[entry.message.id] == nil { state[entry.message.id] = entry }
        adopt(leaderBallot, accepted: state, into: &output)
        send(.syncAck(ballot: leaderBallot, deliveredCount: deliveredCount), to: sender, into: &output)
    }

    private mutating func onSyncAck(_ leaderBallot: Ballot, deliveredCount count: UInt64, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard leaderBallot == ballot, case .synchronizing(let since, var acks) = role else { return }
        acks.insert(sender)
        if sender != id { memberDelivered[sender] = max(memberDelivered[sender] ?? 0, count) }
        role = .synchronizing(since: since, acks: acks)
        guard acks.count >= configuration.majority(of: group) else { return }
        // A majority holds the state: lead. Re-propose what is undelivered under this ballot, so
        // that every destination acknowledges it again (and propose what this group never did).
        role = .leader
        elections = 0
        lastHeartbeat = 0
        for (_, entry) in pending.sorted(by: { $0.key < $1.key }) {
            propose(entry.accepted.message, now: now, into: &output)
        }
        leaderTick(now: now, into: &output)
    }

    public var stateSummary: String {
        let roleName = switch role {
        case .follower: "follower"
        case .candidate: "candidate"
        case .synchronizing: "synchronizing"
        case .leader: "leader"
        }
        let messages = pending.sorted { $0.key < $1.key }.map { id, entry in
            let proposals = entry.accepted.proposals.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value.timestamp.counter)/\($0.value.ballot)" }
            return "\(id)[\(proposals.joined(separator: " "))\(entry.committed.map { " committed \($0)" } ?? "") acks \(entry.acks.count)]"
        }
        return "\(id) \(roleName) \(ballot) state \(stateBallot) clock \(clock) delivered \(deliveredCount) known \(knownBallots.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }) pending \(messages.joined(separator: " "))"
    }

    private var electionTimeout: Microseconds { timing.electionTimeout(afterElections: elections) }

    // MARK: Plumbing

    private func knownBallot(of other: GroupID) -> Ballot {
        knownBallots[other] ?? configuration.initialBallot(of: other)
    }

    /// The replica this one believes leads `destination`.
    private func leader(of destination: GroupID) -> ProcessID {
        destination == group ? ballot.process : knownBallot(of: destination).process
    }

    private mutating func send(_ message: WBAmcastWire, to destination: ProcessID, into output: inout Output) {
        if destination == id {
            loopback.append(message)
        } else {
            output.sends.append((destination, message))
        }
    }

    private mutating func drainLoopback(now: Microseconds, into output: inout Output) {
        while !loopback.isEmpty {
            let message = loopback.removeFirst()
            handle(message, from: id, now: now, into: &output)
        }
    }
}
