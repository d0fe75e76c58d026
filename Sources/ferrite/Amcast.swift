import ArgumentParser
import FerriteMulticast
import FerriteMulticastNode
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// `ferrite amcast`: genuine atomic multicast (WB-amcast, and the baseline it is measured
/// against) as real processes, a load generator, a checker and a simulator.
struct Amcast: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Genuine atomic multicast: run replicas, load them, check their delivery logs, simulate.",
        subcommands: [Node.self, Bench.self, Check.self, Simulate.self, Local.self]
    )

    enum ProtocolName: String, ExpressibleByArgument, CaseIterable, Codable {
        case wbamcast, skeen
        /// The properties this protocol promises (the classic baseline does not promise
        /// real-time order).
        var properties: Set<MulticastProperty> {
            self == .wbamcast ? Set(MulticastProperty.allCases) : Set(MulticastProperty.allCases).subtracting([.realTimeOrder])
        }
    }

    static let timing = ProtocolTiming(heartbeatInterval: 30_000, failureTimeout: 150_000, retransmitInterval: 100_000)

    struct Node: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one replica of a cluster (until killed).")
        @Option(help: "The cluster file (JSON: groups, replicas, addresses).") var cluster: String
        @Option(help: "This replica's id in the cluster file.") var id: Int
        @Option(name: .customLong("protocol"), help: "wbamcast or skeen.") var protocolName: ProtocolName = .wbamcast
        @Option(help: "Where the durable and delivery logs go.") var dir: String = "amcast-data"
        @Flag(help: "fdatasync the durable log before anything leaves (survives power loss, not just crashes).") var fsync = false
        @Option(help: "Emulated network delay added to every message sent, in microseconds (as netem would).") var networkDelay: Int64 = 0

        func run() throws {
            let file = try ClusterFile.load(from: cluster)
            let loop = MultiThreadedEventLoopGroup.singleton.any()
            switch protocolName {
            case .wbamcast: try runNode(WBAmcastReplica.self, file: file, loop: loop)
            case .skeen: try runNode(SkeenReplica.self, file: file, loop: loop)
            }
        }

        func runNode<Replica: MulticastReplica>(_: Replica.Type, file: ClusterFile, loop: any EventLoop) throws {
            let node = try MulticastNode<Replica>(id: ProcessID(id), cluster: file, directory: dir, timing: Amcast.timing, syncs: fsync, loop: loop)
            node.networkDelay = .microseconds(networkDelay)
            try node.start()
            print("amcast \(protocolName.rawValue) replica \(id) of group \(file.configuration.group(of: ProcessID(id))!) listening; logs in \(dir)")
            try node.wait()
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Load a running cluster with closed-loop clients.")
        @Option(help: "The cluster file.") var cluster: String
        @Option(name: .customLong("protocol"), help: "wbamcast or skeen (what the cluster runs).") var protocolName: ProtocolName = .wbamcast
        @Option(help: "Client counts to run, one level after the other.") var clients: String = "1,8,32"
        @Option(help: "Destination groups per message.") var destinations: Int = 2
        @Option(help: "Seconds per level.") var seconds: Double = 5
        @Option(help: "The multicast log to write (for `ferrite amcast check`).") var log: String = "amcast-data/bench.multicasts"

        func run() throws {
            let file = try ClusterFile.load(from: cluster)
            let levels = try parseList(clients)
            for result in try Amcast.load(protocolName, cluster: file, log: log, levels: levels, destinations: destinations, seconds: seconds, networkDelay: 0) {
                print(String(format: "%@ %d groups, %4d clients: %8.0f msg/s, median %6.2f ms, p99 %7.2f ms", protocolName.rawValue, destinations, result.clients, result.throughput, Double(result.medianLatencyMicroseconds) / 1000, Double(result.p99LatencyMicroseconds) / 1000))
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check a run's delivery and multicast logs.")
        @Option(help: "The cluster file.") var cluster: String
        @Option(help: "The directory holding the logs.") var dir: String = "amcast-data"
        @Option(name: .customLong("protocol"), help: "Which protocol's promises to check.") var protocolName: ProtocolName = .wbamcast

        func run() throws {
            let configuration = try ClusterFile.load(from: cluster).configuration
            let violations = DeliveryChecker.check(try ExecutionLogs.read(directory: dir, configuration: configuration), properties: protocolName.properties)
            if violations.isEmpty {
                print("every property holds")
            } else {
                for violation in violations { print(violation) }
                throw ExitCode.failure
            }
        }
    }

    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Seeded simulation runs with faults, checked (a failing seed replays exactly).")
        @Option(name: .customLong("protocol"), help: "wbamcast or skeen.") var protocolName: ProtocolName = .wbamcast
        @Option(help: "First seed.") var first: UInt64 = 1
        @Option(help: "Number of seeds.") var count: UInt64 = 10_000
        @Option(help: "Groups.") var groups: Int = 3
        @Option(help: "Replicas per group.") var replicas: Int = 3
        @Option(help: "Clients per run.") var clients: Int = 3
        @Option(help: "Messages per client.") var messages: Int = 4
        @Option(help: "Fault window, seconds of simulated time.") var faultSeconds: Double = 1.5
        @Option(help: "Probability a message is lost.") var loss: Double = 0.02
        @Flag(help: "Print the trace of every failing seed.") var trace = false

        func run() throws {
            var failures = 0, crashes = 0, partitions = 0, leaderChanges = 0
            let start = Date()
            for seed in first..<(first + count) {
                var options = SimulationOptions.faulty(seed: seed)
                options.groups = groups
                options.replicasPerGroup = replicas
                options.clients = clients
                options.messagesPerClient = messages
                options.faultWindow = Microseconds(faultSeconds * 1_000_000)
                options.lossRate = loss
                options.trace = trace
                let result = protocolName == .wbamcast ? Simulator<WBAmcastReplica>(options: options).running() : Simulator<SkeenReplica>(options: options).running()
                crashes += result.crashes
                partitions += result.partitions
                leaderChanges += result.leaderChanges
                let violations = DeliveryChecker.check(result.record, properties: protocolName.properties)
                if !result.finished || !violations.isEmpty {
                    failures += 1
                    print("seed \(seed): \(result.finished ? "" : "did not finish; ")\(violations)")
                    if trace { result.trace.forEach { print("  \($0)") } }
                }
            }
            print("\(protocolName.rawValue): \(count) runs from seed \(first), \(failures) failing; \(crashes) crashes, \(partitions) partitions, \(leaderChanges) leader changes; \(Int(Date().timeIntervalSince(start))) s")
            if failures > 0 { throw ExitCode.failure }
        }
    }

    struct Local: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a loopback cluster as real processes, load it until saturation, optionally SIGKILL a leader, and check the logs.")
        @Option(help: "Protocols to run, side by side.") var protocols: String = "wbamcast,skeen"
        @Option(help: "Groups.") var groups: Int = 3
        @Option(help: "Replicas per group.") var replicas: Int = 3
        @Option(help: "Client counts (levels).") var clients: String = "1,4,16,64"
        @Option(help: "Destination group counts to run.") var destinations: String = "1,2,3"
        @Option(help: "Seconds per level.") var seconds: Double = 4
        @Option(help: "Also run a leader-kill experiment: SIGKILL group 0's leader this many seconds into a run (0: no).") var killAfter: Double = 0
        @Option(help: "Where logs go.") var dir: String = ".ferrite-amcast"
        @Option(help: "First port.") var basePort: Int = 7400
        @Option(help: "Write the results as JSON here.") var json: String?
        @Option(help: "Emulated network delay added to every message, in microseconds (the kernel here has no netem).") var networkDelay: Int64 = 0

        func run() throws {
            let protocolList = try protocols.split(separator: ",").map { name in
                guard let value = ProtocolName(rawValue: String(name)) else { throw ValidationError("unknown protocol \(name)") }
                return value
            }
            var report = LocalReport()
            var port = basePort
            for destinationCount in try parseList(destinations) {
                for name in protocolList {
                    let run = try LocalCluster(protocolName: name, groups: groups, replicas: replicas, directory: "\(dir)/\(name.rawValue)-\(destinationCount)", basePort: port, networkDelay: networkDelay)
                    port += groups * replicas + 5
                    let levels = try run.measure(levels: try parseList(clients), destinations: destinationCount, seconds: seconds, killAfter: nil)
                    report.runs.append(levels)
                    printRun(levels)
                }
            }
            if killAfter > 0 {
                for name in protocolList {
                    let run = try LocalCluster(protocolName: name, groups: groups, replicas: replicas, directory: "\(dir)/\(name.rawValue)-kill", basePort: port, networkDelay: networkDelay)
                    port += groups * replicas + 5
                    let levels = try run.measure(levels: [16], destinations: 2, seconds: max(seconds, killAfter + 4), killAfter: killAfter)
                    report.runs.append(levels)
                    printRun(levels)
                }
            }
            if let json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            }
            if report.runs.contains(where: { !$0.violations.isEmpty }) { throw ExitCode.failure }
        }

        func printRun(_ run: LocalRun) {
            for level in run.levels {
                print(String(format: "%-8@ %d groups %4d clients: %8.0f msg/s  median %6.2f ms  p99 %7.2f ms", run.protocolName.rawValue, run.destinations, level.clients, level.throughput, Double(level.medianLatencyMicroseconds) / 1000, Double(level.p99LatencyMicroseconds) / 1000))
            }
            if let stall = run.longestStallAfterKillMilliseconds {
                print("  leader of g0 SIGKILLed: g0's survivors stopped delivering for at most \(stall) ms; the killed replica restarted and rejoined")
            }
            print(String(format: "  replicas' CPU per multicast: %.0f µs", run.replicaCPUMicrosecondsPerMessage))
            print("  checker: \(run.violations.isEmpty ? "every property holds" : run.violations.joined(separator: "; ")) (\(run.deliveries) deliveries)")
        }
    }

    /// Runs load levels against a cluster described by `cluster`.
    static func load(_ name: ProtocolName, cluster: ClusterFile, log: String, levels: [Int], destinations: Int, seconds: Double, networkDelay: Int64) throws -> [LoadLevelResult] {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        func run<Wire: MulticastWire>(_: Wire.Type) throws -> [LoadLevelResult] {
            let generator = try LoadGenerator<Wire>(cluster: cluster, logPath: log, firstClientID: 1_000_000, retryTimeout: 300_000, loop: loop)
            generator.networkDelay = .microseconds(networkDelay)
            try generator.connectAll()
            var results: [LoadLevelResult] = []
            for clients in levels {
                results.append(try generator.run(clients: clients, destinations: destinations, seconds: seconds))
            }
            // Let what is in flight finish, so that every multicast can be checked.
            for _ in 0..<60 where try generator.outstanding() > 0 { Thread.sleep(forTimeInterval: 0.1) }
            return results
        }
        switch name {
        case .wbamcast: return try run(WBAmcastWire.self)
        case .skeen: return try run(SkeenWire.self)
        }
    }
}

func parseList(_ text: String) throws -> [Int] {
    try text.split(separator: ",").map {
        guard let value = Int($0.trimmingCharacters(in: .whitespaces)), value > 0 else { throw ValidationError("\(text) is not a list of positive numbers") }
        return value
    }
}

extension Simulator {
    /// Runs a copy of this simulator (for use in expressions).
    func running() -> SimulationResult {
        var copy = self
        return copy.run()
    }
}

struct LocalReport: Codable {
    var runs: [LocalRun] = []
}

struct LocalRun: Codable {
    var protocolName: Amcast.ProtocolName
    var destinations: Int
    var levels: [LoadLevelResult]
    var longestStallAfterKillMilliseconds: UInt64?
    var deliveries: Int
    /// CPU time all replicas spent (user + system), per multicast message the clients sent.
    var replicaCPUMicrosecondsPerMessage: Double
    var violations: [String]
}

/// A loopback cluster of real `ferrite amcast node` processes.
struct LocalCluster {
    let protocolName: Amcast.ProtocolName
    let file: ClusterFile
    let directory: String
    let clusterPath: String
    let networkDelay: Int64

    init(protocolName: Amcast.ProtocolName, groups: Int, replicas: Int, directory: String, basePort: Int, networkDelay: Int64) throws {
        self.protocolName = protocolName
        self.networkDelay = networkDelay
        self.directory = directory
        file = ClusterFile.loopback(groups: groups, replicas: replicas, basePort: basePort)
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        clusterPath = "\(directory)/cluster.json"
        try file.save(to: clusterPath)
    }

    func startNode(_ id: Int) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["amcast", "node", "--cluster", clusterPath, "--id", String(id), "--protocol", protocolName.rawValue, "--dir", directory, "--network-delay", String(networkDelay)]
        let path = "\(directory)/replica-\(id).out"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try output.seekToEnd()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return process
    }

    func measure(levels: [Int], destinations: Int, seconds: Double, killAfter: Double?) throws -> LocalRun {
        let configuration = file.configuration
        let cpuBefore = childrenCPUMicroseconds()
        var nodes = try configuration.replicas.map { try startNode($0.rawValue) }
        // Replicas are stopped with SIGKILL: they have nothing to clean up (every log write is
        // done before anything leaves), and SIGTERM may be blocked in a spawned process.
        func stop(_ node: Process) {
            if node.isRunning { kill(node.processIdentifier, SIGKILL) }
            node.waitUntilExit()
        }
        defer { nodes.forEach(stop) }
        Thread.sleep(forTimeInterval: 0.5)
        let killTime = NIOLockedValueBox<UInt64?>(nil)
        if let killAfter {
            let victim = nodes[0].processIdentifier
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: killAfter)
                kill(victim, SIGKILL)
                killTime.withLockedValue { $0 = wallClockMicroseconds() }
            }
        }
        let results = try Amcast.load(protocolName, cluster: file, log: "\(directory)/bench.multicasts", levels: levels, destinations: destinations, seconds: seconds, networkDelay: networkDelay)
        let killedAt = killTime.withLockedValue { $0 }
        if killAfter != nil {
            nodes[0].waitUntilExit()
            nodes[0] = try startNode(0)   // Restarted from its durable log: it must rejoin.
            Thread.sleep(forTimeInterval: 2)
        }
        // Let the replicas finish (followers deliver after their leader; a restarted replica
        // catches up): wait until, in every group, every replica has delivered as many messages
        // as its peers, twice in a row (at most 60 s).
        func deliveredCounts() -> [Int] {
            configuration.replicas.map { replica in
                guard let data = FileManager.default.contents(atPath: "\(directory)/replica-\(replica.rawValue).deliveries") else { return 0 }
                return data.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
            }
        }
        var previous: [Int] = []
        for _ in 0..<240 {
            Thread.sleep(forTimeInterval: 0.25)
            let counts = deliveredCounts()
            let groupsAgree = configuration.groups.allSatisfy { group in
                Set(group.members.map { counts[configuration.replicas.firstIndex(of: $0)!] }).count == 1
            }
            if groupsAgree, counts == previous { break }
            previous = counts
        }
        nodes.forEach(stop)
        let cpu = childrenCPUMicroseconds() - cpuBefore
        let record = try ExecutionLogs.read(directory: directory, configuration: configuration)
        let violations = DeliveryChecker.check(record, properties: protocolName.properties).map(\.description)
        var stall: UInt64?
        if let killedAt {
            // The longest pause in group 0's deliveries at its surviving replicas after the kill.
            for survivor in configuration.members(of: GroupID(0)).dropFirst() {
                let times = (record.deliveries[survivor] ?? []).map(\.at).filter { $0 >= killedAt - 1_000_000 }
                var previous = killedAt
                for time in times where time >= killedAt {
                    stall = max(stall ?? 0, (time - previous) / 1000)
                    previous = time
                    if time > killedAt + 3_000_000 { break }
                }
            }
        }
        return LocalRun(protocolName: protocolName, destinations: destinations, levels: results, longestStallAfterKillMilliseconds: stall,
                        deliveries: record.deliveries.values.map(\.count).reduce(0, +),
                        replicaCPUMicrosecondsPerMessage: Double(cpu) / Double(max(record.multicasts.count, 1)), violations: violations)
    }
}

/// User plus system CPU time of every reaped child process, in microseconds.
func childrenCPUMicroseconds() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_CHILDREN.rawValue, &usage)
    return UInt64(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1_000_000 + UInt64(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}
