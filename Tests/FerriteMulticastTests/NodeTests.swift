import FerriteMulticast
@testable import FerriteMulticastNode
import Foundation
import Testing

@Suite struct BinaryCoderTests {
    let message = MulticastMessage(id: MessageID(client: ProcessID(1_000_007), sequence: 42), destinations: [GroupID(2), GroupID(0)], payload: Array("payload".utf8))
    var proposal: Proposal { Proposal(timestamp: Timestamp(counter: 9, group: GroupID(2)), ballot: Ballot(number: 3, process: ProcessID(7))) }

    func roundTrips<T: Codable & Equatable>(_ value: T) throws -> Bool {
        try BinaryCoder.decode(T.self, from: BinaryCoder.encode(value)) == value
    }

    @Test func everyWBAmcastMessageAndRecordRoundTrips() throws {
        let accepted = AcceptedMessage(message: message, proposals: [GroupID(2): proposal, GroupID(0): proposal])
        let entry = DeliveredEntry(slot: 17, message: message, timestamp: proposal.timestamp, proposal: proposal)
        let ballot = proposal.ballot
        let wires: [WBAmcastWire] = [
            .multicast(message), .accept(message, group: GroupID(2), proposal: proposal, relayed: [GroupID(0): proposal]),
            .acceptAck(message.id, group: GroupID(0), proposal: proposal, timestamp: proposal.timestamp),
            .alreadyDelivered(message.id, timestamp: proposal.timestamp, proposal: proposal), .fetchDeliveries(from: 3), .deliver(entry, ballot: ballot),
            .heartbeat(ballot: ballot, deliveredCount: 5, collectBelow: 2), .heartbeatAck(ballot: ballot, deliveredCount: 4),
            .newLeader(ballot: ballot, deliveredCount: 1),
            .newLeaderAck(ballot: ballot, stateBallot: ballot, clock: 12, accepted: [accepted], deliveries: [entry], deliveredCount: 18),
            .newLeaderSync(ballot: ballot, clock: 12, accepted: [accepted], deliveries: []), .syncAck(ballot: ballot, deliveredCount: 9),
            .delivered(message.id),
        ]
        for wire in wires { #expect(try roundTrips(wire), "\(wire)") }
        let records: [WBAmcastRecord] = [
            .promised(ballot), .accepted(accepted, clock: 4), .adopted(ballot: ballot, accepted: [accepted], clock: 5),
            .clock(6), .delivered(entry), .collected(belowSlot: 3),
        ]
        for record in records { #expect(try roundTrips(record), "\(record)") }
    }

    @Test func everyBaselineMessageAndRecordRoundTrips() throws {
        let entries = [SkeenLogEntry(slot: 3, ballot: proposal.ballot, command: .register(message)),
                       SkeenLogEntry(slot: 4, ballot: proposal.ballot, command: .finalize(message.id, proposal.timestamp)),
                       SkeenLogEntry(slot: 5, ballot: proposal.ballot, command: .noop)]
        let wires: [SkeenWire] = entries.map { .accept($0, commitIndex: 2) } + [
            .multicast(message), .accepted(ballot: proposal.ballot, slot: 3), .heartbeat(ballot: proposal.ballot, commitIndex: 9),
            .heartbeatAck(ballot: proposal.ballot, applied: 8), .prepare(ballot: proposal.ballot, from: 1),
            .promise(ballot: proposal.ballot, entries: entries, applied: 2),
            .localTimestamp(message, group: GroupID(0), timestamp: proposal.timestamp), .delivered(message.id),
        ]
        for wire in wires { #expect(try roundTrips(wire), "\(wire)") }
        for record in [SkeenRecord.promised(proposal.ballot), .accepted(entries[0]), .applied(belowSlot: 7)] {
            #expect(try roundTrips(record))
        }
    }

    @Test func truncatedOrForeignBytesAreAnErrorNotACrash() throws {
        let bytes = try BinaryCoder.encode(WBAmcastWire.multicast(message))
        for length in 0..<bytes.count {
            #expect(throws: (any Error).self) { try BinaryCoder.decode(WBAmcastWire.self, from: Array(bytes[..<length])) }
        }
        #expect(throws: (any Error).self) { try BinaryCoder.decode(WBAmcastWire.self, from: Array("{\"json\": 1}".utf8)) }
    }
}

@Suite struct DurableLogTests {
    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("ferrite-durable-\(UUID().uuidString)").path
    }

    @Test func recordsSurviveReopeningAndATornTailIsCutOff() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let records: [WBAmcastRecord] = (1...20).map { .clock(UInt64($0)) }
        try DurableLog<WBAmcastRecord>(path: path, syncs: false).append(records)
        // A crash in the middle of the next write leaves part of a record.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([9, 0, 0, 0, 1, 2]))
        try handle.close()
        let log = try DurableLog<WBAmcastRecord>(path: path, syncs: false)
        #expect(try log.readAll() == records)
        try log.append([.clock(99)])
        #expect(try DurableLog<WBAmcastRecord>(path: path, syncs: false).readAll() == records + [.clock(99)])
    }

    @Test func aDamagedRecordWithMoreAfterItIsAnError() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try DurableLog<WBAmcastRecord>(path: path, syncs: false).append((1...5).map { .clock(UInt64($0)) })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[10] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(throws: MulticastNodeError.self) { try DurableLog<WBAmcastRecord>(path: path, syncs: false).readAll() }
    }
}

/// Real processes: `ferrite amcast local` runs 3 groups of 3 replicas on loopback, loads them,
/// SIGKILLs group 0's leader mid-run and restarts it, and checks every replica's delivery log.
@Suite(.serialized) struct RealProcessTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ferrite").path
    }

    @Test(arguments: ["wbamcast", "skeen"])
    func aClusterOfProcessesSurvivesItsLeaderBeingKilled(protocolName: String) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferrite-amcast-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["amcast", "local", "--protocols", protocolName, "--clients", "4", "--destinations", "2",
                             "--seconds", "1.5", "--kill-after", "1", "--dir", directory,
                             "--base-port", String(protocolName == "wbamcast" ? 17_400 : 17_500)]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print("amcast real processes (\(protocolName)):\n\(output)")
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.components(separatedBy: "every property holds").count == 3, "\(output)")   // Both runs.
        #expect(output.contains("SIGKILLed"))
    }
}
