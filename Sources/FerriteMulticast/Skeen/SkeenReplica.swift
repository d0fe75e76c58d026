/// The baseline: Skeen's protocol layered over a Multi-Paxos log in each group, as a
/// deterministic state machine per replica.
///
/// A destination leader appends `register(m)` to its group's log (Paxos phase 2: two delays);
/// once it is chosen and applied, the message has the group's local timestamp, which the leader
/// sends to the other destinations' leaders (one delay). A leader holding every destination's
/// local timestamp appends `finalize(m, largest)` (two more delays); every replica delivers, in
/// global-timestamp order, what no waiting message can still precede. Six message delays in
/// all (client included), against WB-amcast's three; a message to one group is final when
/// registered (three).
///
/// The log is kept whole (no snapshots): fine for benchmarks and simulations, not for a server
/// that runs for months.
public struct SkeenReplica: MulticastReplica {
    public typealias Wire = SkeenWire
    public typealias Durable = SkeenDurableState
    typealias Output = ReplicaOutput<SkeenWire, SkeenRecord>

    enum Role {
        case follower
        case candidate(since: Microseconds, promises: [ProcessID: (entries: [SkeenLogEntry], applied: UInt64)])
        case leader
    }

    public let id: ProcessID
    public let group: GroupID
    let configuration: ClusterConfiguration
    let timing: ProtocolTiming
    let members: [ProcessID]
    let rank: Int

    private(set) var ballot: Ballot
    private(set) var role: Role
    private var log: [UInt64: SkeenLogEntry]
    /// Slots below `applied` are applied to `machine`; slots below `commitIndex` are chosen.
    private var applied: UInt64
    private var commitIndex: UInt64
    private var machine: SkeenStateMachine

    // Leader state (volatile).
    private var nextSlot: UInt64
    private var acceptedBy: [UInt64: Set<ProcessID>] = [:]
    private var registering: Set<MessageID> = []
    private var finalizing: Set<MessageID> = []
    private var lastRetransmit: Microseconds = 0
    private var lastHeartbeat: Microseconds = 0
    // Other groups' local timestamps (kept by followers too, for when they lead).
    private var remote: [MessageID: [GroupID: Timestamp]] = [:]
    /// When each waiting message's local timestamp was last announced again, and how often
    /// (each doubles the wait before the next, up to 16x).
    private var reannounced: [MessageID: (at: Microseconds, count: Int)] = [:]
    private var knownLeaders: [GroupID: ProcessID] = [:]

    private var lastHeardFromLeader: Microseconds
    /// Elections seen (stood for or joined) since an established leader was last heard: each
    /// one doubles the patience before the next (up to 16x), so that overloaded replicas whose
    /// heartbeats run late do not start election after election.
    private var elections = 0
    private var loopback: [SkeenWire] = []

    public var isLeader: Bool {
        if case .leader = role { return true }
        return false
    }

    public init(id: ProcessID, configuration: ClusterConfiguration, timing: ProtocolTiming, durable: SkeenDurableState, now: Microseconds) {
        guard let group = configuration.group(of: id) else { preconditionFailure("\(id) is not a replica") }
        self.id = id
        self.group = group
        self.configuration = configuration
        self.timing = timing
        members = configuration.members(of: group)
        rank = members.firstIndex(of: id)!
        let initial = configuration.initialBallot(of: group)
        ballot = durable.ballot ?? initial
        log = durable.log
        machine = SkeenStateMachine(group: group)
        // Rebuild the state machine from the applied prefix (its deliveries happened already).
        for slot in 0..<durable.applied { _ = machine.apply(durable.log[slot]!.command) }
        applied = durable.applied
        commitIndex = durable.applied
        nextSlot = durable.log.keys.max().map { $0 + 1 } ?? 0
        lastHeardFromLeader = now
        role = .follower
        if durable.ballot == nil, durable.log.isEmpty, id == initial.process { role = .leader }
    }

    public mutating func receive(_ message: SkeenWire, from sender: ProcessID, now: Microseconds) -> ReplicaOutput<SkeenWire, SkeenRecord> {
        var output = Output()
        handle(message, from: sender, now: now, into: &output)
        drainLoopback(now: now, into: &output)
        return output
    }

    public mutating func tick(now: Microseconds) -> ReplicaOutput<SkeenWire, SkeenRecord> {
        var output = Output()
        switch role {
        case .leader:
            leaderTick(now: now, into: &output)
        case .follower:
            // A restarted former leader waits like anyone else: another may lead by now.
            let patience = timing.followerPatience(rank: rank, leaderRank: members.firstIndex(of: ballot.process)!, size: members.count, elections: elections)
            if now >= lastHeardFromLeader + patience { standForElection(now: now, into: &output) }
        case .candidate(let since, _):
            if now >= since + electionTimeout { standForElection(now: now, into: &output) }
        }
        drainLoopback(now: now, into: &output)
        return output
    }

    private mutating func handle(_ message: SkeenWire, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        switch message {
        case .multicast(let m):
            onMulticast(m, from: sender, now: now, into: &output)
        case .accept(let entry, let leaderCommit):
            onAccept(entry, commitIndex: leaderCommit, from: sender, now: now, into: &output)
        case .accepted(let b, let slot):
            onAccepted(b, slot: slot, from: sender, now: now, into: &output)
        case .heartbeat(let b, let leaderCommit):
            hear(b, from: sender, now: now, into: &output)
            guard b == ballot else { return }
            learnCommit(leaderCommit, now: now, into: &output)
            send(.heartbeatAck(ballot: ballot, applied: applied), to: sender, into: &output)
        case .heartbeatAck(let b, let memberApplied):
            guard isLeader, b == ballot, memberApplied < commitIndex else { return }
            // Resend what the member misses, under this ballot (the values are chosen).
            for slot in memberApplied..<min(memberApplied + 512, nextSlot) {
                guard let entry = log[slot] else { continue }
                send(.accept(SkeenLogEntry(slot: slot, ballot: ballot, command: entry.command), commitIndex: commitIndex), to: sender, into: &output)
            }
        case .prepare(let b, let from):
            if b > ballot {
                join(b, now: now, into: &output)
                elections += 1
            }
            guard b == ballot else { return }
            let entries = log.values.filter { $0.slot >= from }.sorted { $0.slot < $1.slot }
            send(.promise(ballot: b, entries: entries, applied: applied), to: sender, into: &output)
        case .promise(let b, let entries, let memberApplied):
            onPromise(b, entries: entries, applied: memberApplied, from: sender, now: now, into: &output)
        case .localTimestamp(let m, let other, let timestamp):
            onLocalTimestamp(m, group: other, timestamp: timestamp, from: sender, now: now, into: &output)
        case .delivered:
            break
        }
    }

    // MARK: Skeen

    private mutating func onMulticast(_ m: MulticastMessage, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard m.isAddressed(to: group), m.destinations.allSatisfy(configuration.contains) else { return }
        if machine.delivered.contains(m.id) {
            if isLeader { send(.delivered(m.id), to: m.id.client, into: &output) }
            return
        }
        guard isLeader else {
            if configuration.group(of: sender) != group, ballot.process != id {
                send(.multicast(m), to: ballot.process, into: &output)
            }
            return
        }
        register(m, now: now, into: &output)
    }

    private mutating func register(_ m: MulticastMessage, now: Microseconds, into output: inout Output) {
        guard !machine.isKnown(m.id), !registering.contains(m.id) else { return }
        registering.insert(m.id)
        append(.register(m), now: now, into: &output)
    }

    private mutating func onLocalTimestamp(_ m: MulticastMessage, group other: GroupID, timestamp: Timestamp, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard m.isAddressed(to: group), m.isAddressed(to: other), configuration.group(of: sender) == other else { return }
        knownLeaders[other] = sender
        if !machine.delivered.contains(m.id) { remote[m.id, default: [:]][other] = timestamp }
        guard isLeader else { return }
        if !machine.isKnown(m.id) {
            register(m, now: now, into: &output)   // First seen through another group.
        } else if machine.localTimestamp(of: m.id) == nil, let mine = machine.localTimestamps[m.id] {
            // Finalized here already: the other group may have missed this group's timestamp.
            send(.localTimestamp(m, group: group, timestamp: mine), to: sender, into: &output)
        } else {
            finalizeIfReady(m.id, now: now, into: &output)
        }
    }

    private mutating func finalizeIfReady(_ id: MessageID, now: Microseconds, into output: inout Output) {
        guard isLeader, !finalizing.contains(id), let waiting = machine.waiting[id] else { return }
        var global = waiting.local
        for destination in waiting.message.destinations where destination != group {
            guard let theirs = remote[id]?[destination] else { return }
            global = max(global, theirs)
        }
        finalizing.insert(id)
        append(.finalize(id, global), now: now, into: &output)
    }

    private mutating func announce(_ m: MulticastMessage, timestamp: Timestamp, toEveryone: Bool, into output: inout Output) {
        for destination in m.destinations where destination != group {
            let targets = toEveryone ? configuration.members(of: destination) : [knownLeaders[destination] ?? configuration.initialLeader(of: destination)]
            for target in targets { send(.localTimestamp(m, group: group, timestamp: timestamp), to: target, into: &output) }
        }
    }

    // MARK: Multi-Paxos

    private mutating func append(_ command: SkeenCommand, now: Microseconds, into output: inout Output) {
        let entry = SkeenLogEntry(slot: nextSlot, ballot: ballot, command: command)
        nextSlot += 1
        for member in members { send(.accept(entry, commitIndex: commitIndex), to: member, into: &output) }
    }

    private mutating func onAccept(_ entry: SkeenLogEntry, commitIndex leaderCommit: UInt64, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        hear(entry.ballot, from: sender, now: now, into: &output)
        guard entry.ballot == ballot else { return }
        if entry.slot >= applied, log[entry.slot] != entry {
            log[entry.slot] = entry
            output.records.append(.accepted(entry))
        }
        send(.accepted(ballot: ballot, slot: entry.slot), to: sender, into: &output)
        learnCommit(leaderCommit, now: now, into: &output)
    }

    private mutating func onAccepted(_ b: Ballot, slot: UInt64, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard isLeader, b == ballot, slot >= commitIndex else { return }
        acceptedBy[slot, default: []].insert(sender)
        var advanced = false
        while (acceptedBy[commitIndex]?.count ?? 0) >= configuration.majority(of: group) {
            acceptedBy[commitIndex] = nil
            commitIndex += 1
            advanced = true
        }
        if advanced { applyChosen(now: now, into: &output) }
    }

    private mutating func learnCommit(_ leaderCommit: UInt64, now: Microseconds, into output: inout Output) {
        commitIndex = max(commitIndex, leaderCommit)
        applyChosen(now: now, into: &output)
    }

    /// Applies chosen slots in order. A follower applies a slot only once it holds the current
    /// leader's entry for it (an entry from an older ballot may not be the chosen one).
    private mutating func applyChosen(now: Microseconds, into output: inout Output) {
        let start = applied
        while applied < commitIndex, let entry = log[applied], isLeader || entry.ballot == ballot {
            let (registered, deliveries) = machine.apply(entry.command)
            applied += 1
            output.deliveries += deliveries
            switch entry.command {
            case .register(let m): registering.remove(m.id)
            case .finalize(let id, _):
                finalizing.remove(id)
                remote[id] = nil
                reannounced[id] = nil
            case .noop: break
            }
            guard isLeader else { continue }
            for delivery in deliveries { send(.delivered(delivery.message.id), to: delivery.message.id.client, into: &output) }
            if let (m, local) = registered {
                announce(m, timestamp: local, toEveryone: false, into: &output)
                finalizeIfReady(m.id, now: now, into: &output)
            }
        }
        if applied > start { output.records.append(.applied(belowSlot: applied)) }
    }

    private mutating func leaderTick(now: Microseconds, into output: inout Output) {
        if now >= lastHeartbeat + timing.heartbeatInterval {
            lastHeartbeat = now
            for member in members where member != id {
                send(.heartbeat(ballot: ballot, commitIndex: commitIndex), to: member, into: &output)
            }
        }
        guard now >= lastRetransmit + timing.retransmitInterval else { return }
        lastRetransmit = now
        for slot in commitIndex..<nextSlot {
            guard let entry = log[slot], entry.ballot == ballot else { continue }
            for member in members where !(acceptedBy[slot]?.contains(member) ?? false) {
                send(.accept(entry, commitIndex: commitIndex), to: member, into: &output)
            }
        }
        for (id, waiting) in machine.waiting.sorted(by: { $0.key < $1.key }) {
            let last = reannounced[id] ?? (now, 0)
            if last.count == 0 || now >= last.at + timing.retransmitInterval << min(last.count, 4) {
                if last.count > 0 { announce(waiting.message, timestamp: waiting.local, toEveryone: true, into: &output) }
                reannounced[id] = (now, last.count + 1)
            }
            finalizeIfReady(id, now: now, into: &output)
        }
    }

    // MARK: Leader change

    private mutating func hear(_ b: Ballot, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        if b > ballot { join(b, now: now, into: &output) }
        if b == ballot, sender == ballot.process {
            lastHeardFromLeader = now
            elections = 0
        }
    }

    private mutating func join(_ newBallot: Ballot, now: Microseconds, into output: inout Output) {
        ballot = newBallot
        role = .follower
        lastHeardFromLeader = now
        registering = []
        finalizing = []
        acceptedBy = [:]
        output.records.append(.promised(newBallot))
    }

    private mutating func standForElection(now: Microseconds, into output: inout Output) {
        let candidacy = Ballot(number: ballot.number + 1, process: id)
        join(candidacy, now: now, into: &output)
        elections += 1
        role = .candidate(since: now, promises: [:])
        for member in members { send(.prepare(ballot: candidacy, from: applied), to: member, into: &output) }
    }

    private mutating func onPromise(_ b: Ballot, entries: [SkeenLogEntry], applied memberApplied: UInt64, from sender: ProcessID, now: Microseconds, into output: inout Output) {
        guard b == ballot, case .candidate(let since, var promises) = role else { return }
        promises[sender] = (entries, memberApplied)
        role = .candidate(since: since, promises: promises)
        guard promises.count >= configuration.majority(of: group) else { return }
        // Phase 1 done: per slot from our applied prefix on, the value of the highest ballot;
        // empty slots become no-ops. All of it is proposed again under this ballot.
        var chosen: [UInt64: SkeenLogEntry] = [:]
        for entry in promises.values.flatMap(\.entries) where entry.slot >= applied {
            if chosen[entry.slot].map({ $0.ballot < entry.ballot }) ?? true { chosen[entry.slot] = entry }
        }
        nextSlot = max(applied, chosen.keys.max().map { $0 + 1 } ?? 0)
        role = .leader
        elections = 0
        lastHeartbeat = 0
        lastRetransmit = now
        acceptedBy = [:]
        commitIndex = applied
        for slot in applied..<nextSlot {
            let entry = SkeenLogEntry(slot: slot, ballot: ballot, command: chosen[slot]?.command ?? .noop)
            switch entry.command {
            case .register(let m): registering.insert(m.id)
            case .finalize(let id, _): finalizing.insert(id)
            case .noop: break
            }
            for member in members { send(.accept(entry, commitIndex: commitIndex), to: member, into: &output) }
        }
        leaderTick(now: now, into: &output)
    }

    public var stateSummary: String {
        let roleName = switch role {
        case .follower: "follower"
        case .candidate: "candidate"
        case .leader: "leader"
        }
        return "\(id) \(roleName) \(ballot) applied \(applied) commit \(commitIndex) next \(nextSlot) clock \(machine.clock) waiting \(machine.waiting.keys.sorted()) delivered \(machine.delivered.count)"
    }

    private var electionTimeout: Microseconds { timing.electionTimeout(afterElections: elections) }

    // MARK: Plumbing

    private mutating func send(_ message: SkeenWire, to destination: ProcessID, into output: inout Output) {
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
