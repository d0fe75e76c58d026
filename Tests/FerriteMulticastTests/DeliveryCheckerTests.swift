import FerriteMulticast
import Testing

/// Hand-built executions, each breaking one property, so that every check is known to bite.
@Suite struct DeliveryCheckerTests {
    let configuration = ClusterConfiguration.uniform(groups: 2, replicas: 3)
    let client = ProcessID(100)

    func message(_ sequence: UInt64, to groups: [Int]) -> MulticastMessage {
        MulticastMessage(id: MessageID(client: client, sequence: sequence), destinations: groups.map(GroupID.init))
    }

    /// m1 to both groups, m2 to group 0, m3 to group 1, all delivered correctly.
    func correctRecord() -> (ExecutionRecord, [MulticastMessage]) {
        var record = ExecutionRecord(configuration: configuration, recordsParticipants: true)
        let m1 = message(1, to: [0, 1]), m2 = message(2, to: [0]), m3 = message(3, to: [1])
        for (index, m) in [m1, m2, m3].enumerated() {
            record.multicasts[m.id] = .init(message: m, sentAt: Microseconds(index * 10))
            record.noteParticipation(of: client, in: [m.id])
        }
        func deliver(_ m: MulticastMessage, _ counter: UInt64, at time: Microseconds, by processes: [Int]) {
            for p in processes {
                record.deliveries[ProcessID(p), default: []].append(.init(message: m.id, timestamp: Timestamp(counter: counter, group: GroupID(0)), at: time))
                record.noteParticipation(of: ProcessID(p), in: [m.id])
            }
        }
        deliver(m1, 1, at: 5, by: [0, 1, 2, 3, 4, 5])
        deliver(m2, 2, at: 15, by: [0, 1, 2])
        deliver(m3, 3, at: 25, by: [3, 4, 5])
        return (record, [m1, m2, m3])
    }

    func properties(of record: ExecutionRecord) -> Set<MulticastProperty> {
        Set(DeliveryChecker.check(record).map(\.property))
    }

    @Test func aCorrectExecutionPasses() {
        #expect(DeliveryChecker.check(correctRecord().0).isEmpty)
    }

    @Test func aDuplicateOrMisaddressedDeliveryBreaksIntegrity() {
        var (record, messages) = correctRecord()
        record.deliveries[ProcessID(0)]!.append(record.deliveries[ProcessID(0)]![1])
        #expect(properties(of: record).contains(.integrity))
        (record, messages) = correctRecord()
        record.deliveries[ProcessID(3)]!.append(.init(message: messages[1].id, timestamp: Timestamp(counter: 2, group: GroupID(0)), at: 30))
        #expect(properties(of: record).contains(.integrity))
    }

    @Test func aMessageNobodyDeliversBreaksValidity() {
        var (record, _) = correctRecord()
        let lost = message(4, to: [1])
        record.multicasts[lost.id] = .init(message: lost, sentAt: 40)
        #expect(properties(of: record) == [.validity])
    }

    @Test func aMessageSomeDestinationsMissBreaksUniformAgreement() {
        var (record, _) = correctRecord()
        record.deliveries[ProcessID(5)]!.removeLast()
        #expect(properties(of: record) == [.uniformAgreement])
        // A replica that is down at the end is excused.
        record.correct.remove(ProcessID(5))
        #expect(properties(of: record).isEmpty)
    }

    @Test func differentTimestampsForOneMessageBreakUniformAgreement() {
        var (record, _) = correctRecord()
        record.deliveries[ProcessID(4)]![0].timestamp = Timestamp(counter: 9, group: GroupID(1))
        #expect(properties(of: record).contains(.uniformAgreement))
    }

    @Test func twoReplicasDisagreeingOnOrderBreakPrefixAndAcyclicOrder() {
        var (record, _) = correctRecord()
        let m4 = message(4, to: [0])
        record.multicasts[m4.id] = .init(message: m4, sentAt: 0)
        for p in 0..<3 {
            let event = ExecutionRecord.DeliveryEvent(message: m4.id, timestamp: Timestamp(counter: 4, group: GroupID(0)), at: 50)
            if p == 0 {
                record.deliveries[ProcessID(p)]!.insert(event, at: 1)   // m1 m4 m2
            } else {
                record.deliveries[ProcessID(p)]!.append(event)          // m1 m2 m4
            }
        }
        let found = properties(of: record)
        #expect(found.contains(.prefixOrder) && found.contains(.acyclicOrder))
    }

    @Test func aCycleAcrossThreeGroupsBreaksAcyclicOrderOnly() {
        // Three groups, three messages each to two of them: pairwise consistent, cyclic overall.
        let configuration = ClusterConfiguration.uniform(groups: 3, replicas: 1)
        var record = ExecutionRecord(configuration: configuration, recordsParticipants: false)
        let a = MulticastMessage(id: MessageID(client: client, sequence: 1), destinations: [GroupID(0), GroupID(1)])
        let b = MulticastMessage(id: MessageID(client: client, sequence: 2), destinations: [GroupID(1), GroupID(2)])
        let c = MulticastMessage(id: MessageID(client: client, sequence: 3), destinations: [GroupID(2), GroupID(0)])
        for m in [a, b, c] { record.multicasts[m.id] = .init(message: m, sentAt: 0) }
        func event(_ m: MulticastMessage) -> ExecutionRecord.DeliveryEvent {
            .init(message: m.id, timestamp: Timestamp(counter: m.id.sequence, group: GroupID(0)), at: 10)
        }
        record.deliveries[ProcessID(0)] = [event(a), event(c)].reversed()   // c before a
        record.deliveries[ProcessID(1)] = [event(a), event(b)]              // a before b
        record.deliveries[ProcessID(2)] = [event(b), event(c)]              // b before c
        #expect(properties(of: record) == [.acyclicOrder])
    }

    @Test func anOutsiderTakingPartBreaksGenuineness() {
        var (record, messages) = correctRecord()
        record.noteParticipation(of: ProcessID(4), in: [messages[1].id])   // group 1 hears of a group-0 message
        #expect(properties(of: record) == [.genuineness])
    }

    @Test func deliveringALaterMessageFirstBreaksRealTimeOrder() {
        var (record, _) = correctRecord()
        // m2 (group 0) is multicast at 10, after m1 was delivered at 5; a replica of group 0 that
        // delivers m2 first breaks real-time order (and prefix order with its peers).
        record.deliveries[ProcessID(0)]!.swapAt(0, 1)
        #expect(properties(of: record).contains(.realTimeOrder))
    }
}
