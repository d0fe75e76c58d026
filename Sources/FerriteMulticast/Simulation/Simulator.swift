/// What a simulated run looks like: the cluster, the load, the network and the faults.
public struct SimulationOptions: Sendable, Hashable {
    public var seed: UInt64
    public var groups = 3
    public var replicasPerGroup = 3
    public var clients = 3
    public var messagesPerClient = 4
    /// How many groups each message goes to, chosen at random in this range (then which ones).
    public var destinationCount: ClosedRange<Int> = 1...3
    public var timing = ProtocolTiming.lan
    /// Each network message takes a delay drawn uniformly from this range.
    public var delay: ClosedRange<Microseconds> = 500...5_000
    public var lossRate = 0.0
    /// The share of messages held much longer (50 ms to 1 s): stale messages that cross leader
    /// changes.
    public var longTailRate = 0.0
    public var duplicateRate = 0.0
    /// Crash and restart replicas (at most a minority of each group down at once).
    public var crashes = false
    /// Prefer crashing leaders (so that runs change leader often).
    public var crashLeaders = true
    /// Cut the network in two for a while, then heal it.
    public var partitions = false
    /// Faults start only within this long from the start of the run; after it the network heals
    /// and every replica comes back, so that the run can finish.
    public var faultWindow: Microseconds = 1_500_000
    /// A run that has not finished by then fails validity.
    public var timeLimit: Microseconds = 120_000_000
    public var tickInterval: Microseconds = 5_000
    public var clientRetry: Microseconds = 400_000
    /// Keep a readable log of crashes, restarts, partitions, leadership and deliveries (to study
    /// a failing seed).
    public var trace = false
    /// With `trace`, also log every network message about this multicast message.
    public var traceMessage: MessageID?

    public init(seed: UInt64) { self.seed = seed }

    /// Every fault at once: loss, duplicates, crashes (leaders first), partitions.
    public static func faulty(seed: UInt64) -> SimulationOptions {
        var options = SimulationOptions(seed: seed)
        options.lossRate = 0.02
        options.duplicateRate = 0.02
        options.longTailRate = 0.01
        options.crashes = true
        options.partitions = true
        return options
    }
}

/// How a simulated run ended.
public struct SimulationResult: Sendable {
    public var record: ExecutionRecord
    /// Whether every client's messages were delivered everywhere before the time limit.
    public var finished: Bool
    /// Simulated time at the end.
    public var endedAt: Microseconds
    public var networkMessages: Int
    public var crashes: Int
    public var partitions: Int
    /// How many times a replica became leader (after the initial leaders).
    public var leaderChanges: Int
    /// The trace, when `SimulationOptions.trace` was set.
    public var trace: [String]
}

/// A deterministic, seeded simulator: the replicas of a protocol and closed-loop clients, over a
/// network with random delays, reordering, loss, duplication and partitions that heal, with
/// crashes and restarts of a minority of each group (volatile state lost, durable state kept).
/// Everything comes from one seeded generator, so a failing seed replays exactly.
public struct Simulator<Replica: MulticastReplica> {
    enum Event {
        case arrive(from: ProcessID, to: ProcessID, message: Replica.Wire)
        case tick
        case clientSends(client: Int)
        case crash
        case restart(ProcessID)
        case partition
        case heal
    }

    public let options: SimulationOptions
    let configuration: ClusterConfiguration
    var random: SimulationRandom
    var queue = EventQueue<Event>()
    var now: Microseconds = 0

    var replicas: [ProcessID: Replica] = [:]
    var durable: [ProcessID: Replica.Durable] = [:]
    var clients: [MulticastClient<Replica.Wire>] = []
    var sentByClient: [Int] = []
    var cut: Set<ProcessID>?   // One side of the current partition.
    var record: ExecutionRecord
    var expectedPerGroup: [GroupID: Int] = [:]
    var deliveredCount: [ProcessID: Int] = [:]
    var networkMessages = 0, crashCount = 0, partitionCount = 0, leaderChanges = 0
    var wasLeader: Set<ProcessID> = []
    var trace: [String] = []

    private mutating func note(_ line: String) {
        trace.append("\(now) \(line)")
    }

    public init(options: SimulationOptions) {
        self.options = options
        configuration = .uniform(groups: options.groups, replicas: options.replicasPerGroup)
        random = SimulationRandom(seed: options.seed)
        record = ExecutionRecord(configuration: configuration, recordsParticipants: true)
    }

    /// Runs the simulation to its end and returns what happened.
    public mutating func run() -> SimulationResult {
        for process in configuration.replicas {
            durable[process] = Replica.Durable()
            replicas[process] = Replica(id: process, configuration: configuration, timing: options.timing, durable: durable[process]!, now: 0)
            if replicas[process]!.isLeader { wasLeader.insert(process) }
        }
        let firstClient = configuration.replicas.count
        for index in 0..<options.clients {
            clients.append(MulticastClient(id: ProcessID(firstClient + index), configuration: configuration, retryTimeout: options.clientRetry))
            sentByClient.append(0)
            queue.schedule(.clientSends(client: index), at: Microseconds.random(in: 0...10_000, using: &random))
        }
        queue.schedule(.tick, at: options.tickInterval)
        if options.crashes { queue.schedule(.crash, at: faultDelay()) }
        if options.partitions { queue.schedule(.partition, at: faultDelay()) }

        var finished = false
        while let (time, event) = queue.next() {
            now = time
            if now > options.timeLimit { break }
            handle(event)
            if case .tick = event, isFinished() {
                finished = true
                break
            }
        }
        record.correct = Set(replicas.keys)
        if options.trace, !finished {
            for process in configuration.replicas { note(replicas[process]?.stateSummary ?? "\(process) down") }
            for client in clients where client.outstanding != nil { note("\(client.id) waits for \(client.outstanding!.message)") }
        }
        return SimulationResult(record: record, finished: finished, endedAt: now, networkMessages: networkMessages,
                                crashes: crashCount, partitions: partitionCount, leaderChanges: leaderChanges, trace: trace)
    }

    private mutating func faultDelay() -> Microseconds { Microseconds.random(in: 50_000...400_000, using: &random) }

    private mutating func handle(_ event: Event) {
        switch event {
        case .arrive(let from, let to, let message):
            if let index = clientIndex(to) {
                if let done = clients[index].receive(message, from: from) {
                    _ = done
                    queue.schedule(.clientSends(client: index), at: now + Microseconds.random(in: 0...2_000, using: &random))
                }
            } else if replicas[to] != nil {
                // Messages to a replica that is down are lost; those sent before it crashed and
                // arriving after it restarted are delivered (the harsher network).
                let output = replicas[to]!.receive(message, from: from, now: now)
                apply(output, at: to)
            }
        case .tick:
            for process in configuration.replicas where replicas[process] != nil {
                let output = replicas[process]!.tick(now: now)
                apply(output, at: process)
            }
            for index in clients.indices {
                for (to, message) in clients[index].tick(now: now) { transmit(message, from: clients[index].id, to: to) }
            }
            queue.schedule(.tick, at: now + options.tickInterval)
        case .clientSends(let index):
            guard sentByClient[index] < options.messagesPerClient else { return }
            sentByClient[index] += 1
            let count = min(Int.random(in: options.destinationCount, using: &random), options.groups)
            let destinations = configuration.groupIDs.shuffled(using: &random).prefix(count)
            let (message, sends) = clients[index].multicast(Array("m\(sentByClient[index])".utf8), to: destinations, now: now)
            record.multicasts[message.id] = .init(message: message, sentAt: now)
            for group in message.destinations { expectedPerGroup[group, default: 0] += 1 }
            for (to, wire) in sends { transmit(wire, from: clients[index].id, to: to) }
        case .crash:
            crashSomeone()
            if now < options.faultWindow { queue.schedule(.crash, at: now + faultDelay()) }
        case .restart(let process):
            guard replicas[process] == nil else { return }
            replicas[process] = Replica(id: process, configuration: configuration, timing: options.timing, durable: durable[process]!, now: now)
            if options.trace { note("restart \(process)") }
        case .partition:
            if cut == nil, now < options.faultWindow {
                let everyone = configuration.replicas
                let size = Int.random(in: 1...(everyone.count / 2), using: &random)
                cut = Set(everyone.shuffled(using: &random).prefix(size))
                partitionCount += 1
                if options.trace { note("partition \(cut!.sorted())") }
                queue.schedule(.heal, at: now + Microseconds.random(in: 100_000...600_000, using: &random))
            }
            if now < options.faultWindow { queue.schedule(.partition, at: now + faultDelay()) }
        case .heal:
            cut = nil
            if options.trace { note("heal") }
        }
    }

    private mutating func crashSomeone() {
        // Candidates: replicas whose group can lose one more and keep a majority up.
        let up = configuration.groups.map { group in group.members.filter { replicas[$0] != nil } }
        var candidates: [ProcessID] = []
        for (index, group) in configuration.groups.enumerated() where up[index].count > configuration.majority(of: group.id) {
            candidates += up[index]
        }
        guard !candidates.isEmpty else { return }
        var victim = candidates.randomElement(using: &random)!
        if options.crashLeaders, random.chance(0.6), let leader = candidates.filter({ replicas[$0]!.isLeader }).randomElement(using: &random) {
            victim = leader
        }
        replicas[victim] = nil
        if options.trace { note("crash \(victim)") }
        crashCount += 1
        let downFor = Microseconds.random(in: 50_000...700_000, using: &random)
        queue.schedule(.restart(victim), at: min(now + downFor, max(now, options.faultWindow) + 50_000))
    }

    private mutating func apply(_ output: ReplicaOutput<Replica.Wire, Replica.Durable.Record>, at process: ProcessID) {
        // The step's records are stable before anything it sends or delivers is seen.
        for item in output.records { durable[process]!.apply(item) }
        for delivery in output.deliveries {
            record.deliveries[process, default: []].append(.init(message: delivery.message.id, timestamp: delivery.timestamp, at: now))
            deliveredCount[process, default: 0] += 1
            if options.trace { note("\(process) delivers #\(deliveredCount[process]! - 1) \(delivery.message.id) at \(delivery.timestamp)") }
        }
        for (to, message) in output.sends { transmit(message, from: process, to: to) }
        if replicas[process]!.isLeader, !wasLeader.contains(process) {
            wasLeader.insert(process)
            leaderChanges += 1
            if options.trace { note("\(process) leads: \(replicas[process]!.stateSummary)") }
        } else if !replicas[process]!.isLeader {
            wasLeader.remove(process)
        }
    }

    private mutating func transmit(_ message: Replica.Wire, from: ProcessID, to: ProcessID) {
        networkMessages += 1
        let subjects = message.subjects
        if options.trace, let traced = options.traceMessage, subjects.contains(traced) { note("\(from) -> \(to): \(message)") }
        record.noteParticipation(of: from, in: subjects)
        record.noteParticipation(of: to, in: subjects)
        if let cut, configuration.group(of: from) != nil, configuration.group(of: to) != nil, cut.contains(from) != cut.contains(to) {
            return
        }
        if random.chance(options.lossRate) { return }
        let copies = random.chance(options.duplicateRate) ? 2 : 1
        for _ in 0..<copies {
            let delay = random.chance(options.longTailRate)
                ? Microseconds.random(in: 50_000...1_000_000, using: &random)
                : Microseconds.random(in: options.delay, using: &random)
            queue.schedule(.arrive(from: from, to: to, message: message), at: now + delay)
        }
    }

    private func clientIndex(_ process: ProcessID) -> Int? {
        let index = process.rawValue - configuration.replicas.count
        return index >= 0 && index < clients.count ? index : nil
    }

    /// Every client has had all its messages delivered, and every replica (all up) delivered
    /// every message addressed to its group.
    private func isFinished() -> Bool {
        guard sentByClient.allSatisfy({ $0 == options.messagesPerClient }), clients.allSatisfy({ $0.outstanding == nil }) else { return false }
        guard replicas.count == configuration.replicas.count else { return false }
        for group in configuration.groups {
            let expected = expectedPerGroup[group.id] ?? 0
            for member in group.members where (deliveredCount[member] ?? 0) < expected { return false }
        }
        return true
    }
}
