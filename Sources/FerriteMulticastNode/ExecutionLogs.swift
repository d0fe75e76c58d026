import FerriteMulticast
import Foundation

/// Reads a run's logs (every replica's delivery log, every load generator's multicast log, all in
/// one directory) into an ``ExecutionRecord`` for the checker.
public enum ExecutionLogs {
    public static func read(directory: String, configuration: ClusterConfiguration) throws -> ExecutionRecord {
        var record = ExecutionRecord(configuration: configuration, recordsParticipants: false)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
            guard name.hasSuffix(".deliveries") || name.hasSuffix(".multicasts") else { continue }
            let text = try String(contentsOfFile: "\(directory)/\(name)", encoding: .utf8)
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.first == "D", fields.count == 7, let replica = Int(name.dropFirst("replica-".count).prefix { $0 != "." }),
                   let client = Int(fields[1]), let sequence = UInt64(fields[2]), let counter = UInt64(fields[3]),
                   let group = Int(fields[4]), let at = UInt64(fields[5]) {
                    let id = MessageID(client: ProcessID(client), sequence: sequence)
                    record.deliveries[ProcessID(replica), default: []].append(
                        .init(message: id, timestamp: Timestamp(counter: counter, group: GroupID(group)), at: at))
                } else if fields.first == "M", fields.count == 5, let client = Int(fields[1]), let sequence = UInt64(fields[2]),
                          let at = UInt64(fields[3]) {
                    let id = MessageID(client: ProcessID(client), sequence: sequence)
                    let groups = fields[4].split(separator: ",").compactMap { Int($0) }.map(GroupID.init)
                    record.multicasts[id] = .init(message: MulticastMessage(id: id, destinations: groups), sentAt: at)
                }
            }
        }
        return record
    }
}
