/// The properties of atomic multicast the checker verifies.
public enum MulticastProperty: String, Sendable, CaseIterable {
    /// Each message is delivered at most once per replica, only by replicas of its destination
    /// groups, and only if some client multicast it.
    case integrity
    /// Every message is delivered by every correct replica of its destinations.
    case validity
    /// A message delivered anywhere is delivered by every correct replica of its destinations,
    /// with the same timestamp.
    case uniformAgreement
    /// The union of every replica's delivery order has no cycle.
    case acyclicOrder
    /// Any two replicas deliver the messages they have in common in the same relative order.
    case prefixOrder
    /// Only a message's destinations (and its client) send or receive anything about it.
    case genuineness
    /// A message delivered anywhere before another is multicast precedes it wherever both are
    /// delivered.
    case realTimeOrder
}

/// A property a run broke, and how.
public struct MulticastViolation: Error, Sendable, CustomStringConvertible {
    public var property: MulticastProperty
    public var detail: String
    public var description: String { "\(property.rawValue): \(detail)" }
}

/// Checks an ``ExecutionRecord`` against the properties of atomic multicast.
public enum DeliveryChecker {
    /// Every violation found (empty when the run is correct). At most a few per property, so
    /// that a broken run stays readable.
    /// `properties` limits the check (the baseline, for one, does not promise real-time order).
    public static func check(_ record: ExecutionRecord, properties: Set<MulticastProperty> = Set(MulticastProperty.allCases)) -> [MulticastViolation] {
        var violations: [MulticastViolation] = []
        var reported: [MulticastProperty: Int] = [:]
        func report(_ property: MulticastProperty, _ detail: @autoclosure () -> String) {
            guard properties.contains(property) else { return }
            reported[property, default: 0] += 1
            if reported[property]! <= 5 { violations.append(MulticastViolation(property: property, detail: detail())) }
        }
        let configuration = record.configuration

        // Integrity, and each message's global timestamp and first delivery time.
        var timestampOf: [MessageID: Timestamp] = [:]
        var firstDelivered: [MessageID: Microseconds] = [:]
        for (process, events) in record.deliveries {
            var seen = Set<MessageID>()
            for event in events {
                if !seen.insert(event.message).inserted { report(.integrity, "\(process) delivered \(event.message) twice") }
                guard let multicast = record.multicasts[event.message] else {
                    report(.integrity, "\(process) delivered \(event.message), which no client multicast")
                    continue
                }
                if let group = configuration.group(of: process), !multicast.message.isAddressed(to: group) {
                    report(.integrity, "\(process) of \(group) delivered \(multicast.message)")
                }
                if let earlier = timestampOf[event.message], earlier != event.timestamp {
                    report(.uniformAgreement, "\(event.message) delivered with timestamps \(earlier) and \(event.timestamp)")
                }
                timestampOf[event.message] = event.timestamp
                firstDelivered[event.message] = min(firstDelivered[event.message] ?? .max, event.at)
            }
        }

        // Validity and uniform agreement.
        let deliveredSets = record.deliveries.mapValues { Set($0.map(\.message)) }
        for (id, multicast) in record.multicasts.sorted(by: { $0.key < $1.key }) {
            for group in multicast.message.destinations {
                for member in configuration.members(of: group) where record.correct.contains(member) {
                    if deliveredSets[member]?.contains(id) ?? false { continue }
                    if firstDelivered[id] != nil {
                        report(.uniformAgreement, "\(id) was delivered, but not by \(member) of \(group)")
                    } else {
                        report(.validity, "\(id) (to \(multicast.message.destinations)) was never delivered by \(member)")
                    }
                }
            }
        }

        // Prefix order: pairwise, the common messages in the same relative order.
        let processes = record.deliveries.keys.sorted()
        let positions = record.deliveries.mapValues { events in
            Dictionary(events.enumerated().map { ($1.message, $0) }, uniquingKeysWith: { first, _ in first })
        }
        for (i, p) in processes.enumerated() {
            for q in processes[(i + 1)...] {
                let inP = positions[p]!
                var last = -1
                var lastID: MessageID?
                for event in record.deliveries[q]! {
                    guard let position = inP[event.message] else { continue }
                    if position < last {
                        report(.prefixOrder, "\(q) delivered \(lastID!) before \(event.message); \(p) the other way round")
                    }
                    if position > last {
                        last = position
                        lastID = event.message
                    }
                }
            }
        }

        // Acyclic order: the union of every replica's delivery order, as a graph.
        var successors: [MessageID: Set<MessageID>] = [:]
        var indegree: [MessageID: Int] = [:]
        for events in record.deliveries.values {
            for (a, b) in zip(events, events.dropFirst()) where a.message != b.message {
                indegree[a.message, default: 0] += 0
                if successors[a.message, default: []].insert(b.message).inserted { indegree[b.message, default: 0] += 1 }
            }
            if let only = events.first { indegree[only.message, default: 0] += 0 }
        }
        var ready = indegree.filter { $0.value == 0 }.map(\.key)
        var ordered = 0
        while let next = ready.popLast() {
            ordered += 1
            for successor in successors[next] ?? [] {
                indegree[successor]! -= 1
                if indegree[successor] == 0 { ready.append(successor) }
            }
        }
        if ordered < indegree.count {
            let stuck = indegree.filter { $0.value > 0 }.map(\.key).sorted().prefix(6)
            report(.acyclicOrder, "the delivery orders form a cycle through \(stuck.map(\.description).joined(separator: ", "))")
        }

        // Genuineness.
        if let participants = record.participants {
            for (id, processes) in participants.sorted(by: { $0.key < $1.key }) {
                guard let multicast = record.multicasts[id] else { continue }
                for process in processes where process != id.client {
                    guard let group = configuration.group(of: process), multicast.message.isAddressed(to: group) else {
                        report(.genuineness, "\(process) took part in ordering \(multicast.message)")
                        continue
                    }
                }
            }
        }

        // Real-time order: at each replica, a message delivered before another was multicast
        // never comes after it. Scanning a replica's sequence, a violation is a message first
        // delivered (anywhere) before some earlier message of the sequence was multicast.
        for process in processes {
            var latest: (sentAt: Microseconds, id: MessageID)?
            for event in record.deliveries[process]! {
                guard let multicast = record.multicasts[event.message] else { continue }
                if let latest, let first = firstDelivered[event.message], first < latest.sentAt {
                    report(.realTimeOrder, "\(process) delivered \(latest.id) (multicast at \(latest.sentAt) µs) before \(event.message) (delivered at \(first) µs)")
                }
                if latest.map({ multicast.sentAt > $0.sentAt }) ?? true { latest = (multicast.sentAt, event.message) }
            }
        }
        return violations
    }
}
