import FerriteMulticast
import Foundation
import NIOCore

/// A cluster configuration file: the groups, their replicas, and where each replica listens.
///
///     {"groups": [{"id": 0, "replicas": [{"id": 0, "address": "127.0.0.1:7400"}, ...]}, ...]}
public struct ClusterFile: Codable, Sendable {
    public struct Replica: Codable, Sendable {
        public var id: Int
        public var address: String
    }
    public struct Group: Codable, Sendable {
        public var id: Int
        public var replicas: [Replica]
    }
    public var groups: [Group]

    /// `groups` groups of `replicas` replicas on 127.0.0.1, ports from `basePort` on.
    public static func loopback(groups: Int, replicas: Int, basePort: Int) -> ClusterFile {
        ClusterFile(groups: (0..<groups).map { g in
            Group(id: g, replicas: (0..<replicas).map { r in
                let id = g * replicas + r
                return Replica(id: id, address: "127.0.0.1:\(basePort + id)")
            })
        })
    }

    public static func load(from path: String) throws -> ClusterFile {
        do {
            return try JSONDecoder().decode(ClusterFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw MulticastNodeError.badClusterFile(path: path, reason: "\(error)")
        }
    }

    public func save(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    public var configuration: ClusterConfiguration {
        ClusterConfiguration(groups: groups.map { group in
            ClusterConfiguration.Group(id: GroupID(group.id), members: group.replicas.map { ProcessID($0.id) })
        })
    }

    /// Each replica's listening address.
    public func addresses() throws -> [ProcessID: SocketAddress] {
        var result: [ProcessID: SocketAddress] = [:]
        for replica in groups.flatMap(\.replicas) {
            let parts = replica.address.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else {
                throw MulticastNodeError.badClusterFile(path: "", reason: "address \(replica.address) is not HOST:PORT")
            }
            result[ProcessID(replica.id)] = try SocketAddress.makeAddressResolvingHost(String(parts[0]), port: port)
        }
        return result
    }
}

/// What can go wrong running a node.
public enum MulticastNodeError: Error, CustomStringConvertible {
    case badClusterFile(path: String, reason: String)
    case unknownReplica(Int)
    case corruptDurableLog(path: String, offset: Int)

    public var description: String {
        switch self {
        case .badClusterFile(let path, let reason): "cluster file \(path) is not usable: \(reason)"
        case .unknownReplica(let id): "replica \(id) is not in the cluster file: pick one of its replica ids"
        case .corruptDurableLog(let path, let offset): "durable log \(path) has a bad record at byte \(offset), with more after it (not just a torn last write): restore the file, or remove it to rejoin as a new replica (only while a majority of the group keeps its state)"
        }
    }
}
