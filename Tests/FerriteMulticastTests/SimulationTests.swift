import FerriteMulticast
import Testing

/// Runs `Replica` in the simulator for every seed and checks every run.
func checkSimulatedRuns<Replica: MulticastReplica>(
    _: Replica.Type, seeds: ClosedRange<UInt64>, properties: Set<MulticastProperty> = Set(MulticastProperty.allCases),
    options makeOptions: (UInt64) -> SimulationOptions
) -> (runs: Int, crashes: Int, partitions: Int, leaderChanges: Int) {
    var totals = (runs: 0, crashes: 0, partitions: 0, leaderChanges: 0)
    for seed in seeds {
        var simulator = Simulator<Replica>(options: makeOptions(seed))
        let result = simulator.run()
        let violations = DeliveryChecker.check(result.record, properties: properties)
        let finished = result.finished
        #expect(finished, "seed \(seed) did not finish by \(result.endedAt) µs")
        let clean = violations.isEmpty
        #expect(clean, "seed \(seed): \(violations)")
        totals.runs += 1
        totals.crashes += result.crashes
        totals.partitions += result.partitions
        totals.leaderChanges += result.leaderChanges
    }
    return totals
}

/// The baseline does not promise real-time order (see `SkeenReplica`).
let baselineProperties = Set(MulticastProperty.allCases).subtracting([.realTimeOrder])

@Suite struct SimulationTests {
    /// 10,000 seeded runs of WB-amcast with loss, duplicates, crashes and restarts (leaders
    /// first), partitions that heal: eight batches, run in parallel.
    @Test(arguments: 0..<8)
    func wbAmcastKeepsEveryPropertyUnderFaults(batch: Int) {
        let first = UInt64(batch * 1_250 + 1)
        let totals = checkSimulatedRuns(WBAmcastReplica.self, seeds: first...(first + 1_249)) { .faulty(seed: $0) }
        #expect(totals.crashes > totals.runs && totals.leaderChanges > totals.runs && totals.partitions > totals.runs / 2)
        if batch == 0 {
            print("WB-amcast simulation: \(totals.runs) runs per batch (x8), \(totals.crashes) crashes, \(totals.partitions) partitions, \(totals.leaderChanges) leader changes in batch 0")
        }
    }

    /// Heavier runs: more clients contending, longer fault windows, more loss.
    @Test func wbAmcastKeepsEveryPropertyUnderHeavyContention() {
        _ = checkSimulatedRuns(WBAmcastReplica.self, seeds: 100_001...100_200) { seed in
            var options = SimulationOptions.faulty(seed: seed)
            options.clients = 6
            options.messagesPerClient = 10
            options.faultWindow = 4_000_000
            options.lossRate = 0.05
            return options
        }
    }

    /// Other shapes: groups of five replicas (two may be down at once), and five groups.
    @Test func wbAmcastKeepsEveryPropertyWithFiveReplicasOrFiveGroups() {
        _ = checkSimulatedRuns(WBAmcastReplica.self, seeds: 200_001...200_100) { seed in
            var options = SimulationOptions.faulty(seed: seed)
            options.replicasPerGroup = 5
            options.clients = 4
            options.messagesPerClient = 6
            return options
        }
        _ = checkSimulatedRuns(WBAmcastReplica.self, seeds: 300_001...300_100) { seed in
            var options = SimulationOptions.faulty(seed: seed)
            options.groups = 5
            options.clients = 5
            options.messagesPerClient = 5
            options.destinationCount = 1...5
            return options
        }
    }

    @Test(arguments: 0..<2)
    func baselineKeepsItsPropertiesUnderFaults(batch: Int) {
        let first = UInt64(batch * 1_000 + 1)
        _ = checkSimulatedRuns(SkeenReplica.self, seeds: first...(first + 999), properties: baselineProperties) { .faulty(seed: $0) }
    }

    @Test func failureFreeRunsKeepEveryProperty() {
        _ = checkSimulatedRuns(WBAmcastReplica.self, seeds: 1...200) { SimulationOptions(seed: $0) }
        _ = checkSimulatedRuns(SkeenReplica.self, seeds: 1...200, properties: baselineProperties) { SimulationOptions(seed: $0) }
    }

    @Test func aSeedReplaysExactly() {
        var first = Simulator<WBAmcastReplica>(options: .faulty(seed: 4242))
        var second = Simulator<WBAmcastReplica>(options: .faulty(seed: 4242))
        let a = first.run(), b = second.run()
        #expect(a.record.deliveries == b.record.deliveries)
        #expect(a.networkMessages == b.networkMessages && a.endedAt == b.endedAt && a.crashes == b.crashes)
    }

    /// The classic baseline breaks real-time order in some runs; the checker sees it, and
    /// WB-amcast (whose commit waits for each destination's proposing leader) never does.
    @Test func theCheckerCatchesTheBaselineBreakingRealTimeOrder() {
        var found: UInt64?
        for seed in UInt64(1)...3_000 where found == nil {
            var simulator = Simulator<SkeenReplica>(options: .faulty(seed: seed))
            let violations = DeliveryChecker.check(simulator.run().record)
            if violations.contains(where: { $0.property == .realTimeOrder }) { found = seed }
        }
        #expect(found != nil, "no baseline run broke real-time order in 3,000 seeds")
    }
}

@Suite struct MessageDelayTests {
    /// Failure-free, every network message takes exactly one delay, one client (no contention):
    /// how many delays from multicast to delivery at each destination leader.
    func leaderDelays<Replica: MulticastReplica>(_: Replica.Type, groups: Int) -> Set<UInt64> {
        var options = SimulationOptions(seed: 7)
        let delay: Microseconds = 10_000
        options.delay = delay...delay
        options.clients = 1
        options.messagesPerClient = 20
        options.destinationCount = groups...groups
        var simulator = Simulator<Replica>(options: options)
        let result = simulator.run()
        #expect(result.finished)
        let leaders = result.record.configuration.groupIDs.map { result.record.configuration.initialLeader(of: $0) }
        var delays: Set<UInt64> = []
        for leader in leaders {
            for event in result.record.deliveries[leader] ?? [] {
                let sent = result.record.multicasts[event.message]!.sentAt
                #expect((event.at - sent) % delay == 0)
                delays.insert((event.at - sent) / delay)
            }
        }
        return delays
    }

    @Test(arguments: 1...3)
    func wbAmcastLeadersDeliverAfterThreeDelays(groups: Int) {
        #expect(leaderDelays(WBAmcastReplica.self, groups: groups) == [3])
    }

    @Test(arguments: 2...3)
    func baselineLeadersDeliverAfterSixDelays(groups: Int) {
        #expect(leaderDelays(SkeenReplica.self, groups: groups) == [6])
    }

    @Test func baselineDeliversAMessageToOneGroupAfterThreeDelays() {
        #expect(leaderDelays(SkeenReplica.self, groups: 1) == [3])
    }
}
