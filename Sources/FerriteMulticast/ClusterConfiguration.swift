/// The cluster's membership: disjoint groups of 2f+1 replicas each. Fixed for the life of the
/// cluster (no reconfiguration).
public struct ClusterConfiguration: Hashable, Sendable, Codable {
    /// One group: its identity and its replicas, in rank order (the first is the initial leader).
    public struct Group: Hashable, Sendable, Codable {
        public var id: GroupID
        public var members: [ProcessID]
        public init(id: GroupID, members: [ProcessID]) {
            self.id = id
            self.members = members
        }
    }

    /// The groups, in increasing identity order.
    public private(set) var groups: [Group]
    private var groupOfProcess: [ProcessID: GroupID]
    private var groupIndex: [GroupID: Int]

    /// Builds a configuration. Group identities and processes must be unique.
    public init(groups: [Group]) {
        self.groups = groups.sorted { $0.id < $1.id }
        groupOfProcess = [:]
        groupIndex = [:]
        for (index, group) in self.groups.enumerated() {
            precondition(groupIndex[group.id] == nil, "group \(group.id) appears twice")
            precondition(!group.members.isEmpty, "group \(group.id) has no members")
            groupIndex[group.id] = index
            for member in group.members {
                precondition(groupOfProcess[member] == nil, "process \(member) is in two groups")
                groupOfProcess[member] = group.id
            }
        }
    }

    /// `groups` groups of `replicas` replicas each, numbered from 0: group g holds processes
    /// g*replicas ..< (g+1)*replicas.
    public static func uniform(groups: Int, replicas: Int) -> ClusterConfiguration {
        ClusterConfiguration(groups: (0..<groups).map { g in
            Group(id: GroupID(g), members: (0..<replicas).map { ProcessID(g * replicas + $0) })
        })
    }

    public var groupIDs: [GroupID] { groups.map(\.id) }

    /// Every replica of every group.
    public var replicas: [ProcessID] { groups.flatMap(\.members) }

    /// The group `process` is a replica of, or nil for a client.
    public func group(of process: ProcessID) -> GroupID? { groupOfProcess[process] }

    /// The replicas of `group`, in rank order.
    public func members(of group: GroupID) -> [ProcessID] {
        guard let index = groupIndex[group] else { preconditionFailure("unknown group \(group)") }
        return groups[index].members
    }

    /// The smallest number of replicas of `group` that is a majority.
    public func majority(of group: GroupID) -> Int { members(of: group).count / 2 + 1 }

    /// The leader of `group` under its first ballot.
    public func initialLeader(of group: GroupID) -> ProcessID { members(of: group)[0] }

    /// The ballot a group starts with.
    public func initialBallot(of group: GroupID) -> Ballot { Ballot(number: 0, process: initialLeader(of: group)) }

    /// Whether `group` exists.
    public func contains(_ group: GroupID) -> Bool { groupIndex[group] != nil }
}
