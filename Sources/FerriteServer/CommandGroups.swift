import FerriteHeap

/// Running the requests of many connections as one heap transaction.
///
/// An event loop collects, in one iteration, the requests of every connection that was ready.
/// Their replies wait for the same sync anyway, so their write commands can share one commit:
/// one redo log, one fence, one write-ahead log record, instead of one of each per command. Each
/// command stays atomic (the group commits whole or not at all, across crashes too) and
/// isolated (the group runs under the keyspace's exclusive lock, command after command).
///
/// A command that fails with its own error (a wrong type, a bad argument) must change nothing:
/// commands check before they change anything, as MULTI/EXEC already requires. A heap error (a
/// full pool) rolls the whole group back; its requests then run again one by one, so that only
/// the commands that cannot fit fail.
extension CommandEngine {
    /// Runs `batches` (each one connection's requests, in order, with its session) and returns
    /// their replies; a connection's requests after its QUIT do not run.
    func executeGroup(_ batches: [[[[UInt8]]]], sessions: inout [Session]) -> [[RESPReply]] {
        let mayWrite = batches.contains { batch in
            batch.contains { request in
                guard !request.isEmpty, let spec = CommandSpec.table[CommandSpec.name(of: request)] else { return false }
                return spec.access == .write || spec.name == "exec"
            }
        }
        guard mayWrite, batches.count > 1 || batches.first.map({ $0.count > 1 }) == true else {
            return one(by: batches, &sessions)
        }
        heap.makeLogRoomIfNeeded()
        let saved = sessions
        var replies: [[RESPReply]] = []
        var writes = 0
        let (committed, trashGrew) = lock.withWriteLock { () -> (Bool, Bool) in
            do {
                try heap.transaction {
                    replies.removeAll()
                    writes = 0
                    for index in batches.indices {
                        var out: [RESPReply] = []
                        out.reserveCapacity(batches[index].count)
                        for request in batches[index] where !sessions[index].wantsClose {  // nothing after QUIT
                            let (reply, wrote) = try executeLocked(request, &sessions[index])
                            out.append(reply)
                            if wrote { writes += 1 }
                        }
                        replies.append(out)
                    }
                }
                return (true, keyspace.trashGrew)
            } catch {
                keyspace.reloadRoots()
                return (false, keyspace.trashGrew)
            }
        }
        if trashGrew { trashSignal.signal() }
        guard committed else {
            // Rolled back whole: run the requests one by one, from the sessions as they were.
            sessions = saved
            return one(by: batches, &sessions)
        }
        statistics.writes.add(writes, ordering: .relaxed)
        return replies
    }

    /// Each request on its own, as ``execute(_:session:)`` runs it.
    private func one(by batches: [[[[UInt8]]]], _ sessions: inout [Session]) -> [[RESPReply]] {
        batches.indices.map { index in
            var replies: [RESPReply] = []
            for request in batches[index] where !sessions[index].wantsClose { replies.append(execute(request, session: &sessions[index])) }
            return replies
        }
    }

    /// Runs one request inside the group's transaction, the exclusive lock held: command errors
    /// become replies, heap errors are thrown (they roll the group back). Returns the reply and
    /// whether the request changed data (a write command that succeeded, or an EXEC).
    private func executeLocked(_ request: [[UInt8]], _ session: inout Session) throws -> (RESPReply, Bool) {
        let name: String, spec: CommandSpec
        switch admit(request, &session) {
        case .reply(let reply): return (reply, false)
        case .run(let admittedName, let admittedSpec): (name, spec) = (admittedName, admittedSpec)
        }
        switch spec.access {
        case .none:
            guard name == "exec" else { return (runControl(name, request, &session), false) }
            guard let queued = session.queued else { return (.error("ERR EXEC without MULTI"), false) }
            session.queued = nil
            if session.queueFailed {
                session.queueFailed = false
                return (.error("EXECABORT Transaction discarded because of previous errors."), false)
            }
            return (try runQueued(queued, &session), !queued.isEmpty)
        case .read, .write:
            do {
                return (try runData(name, request, session), spec.access == .write)
            } catch let error as CommandError {
                return (.error(error.message), false)
            }
        }
    }
}
