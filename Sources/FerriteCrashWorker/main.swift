// The child process of the real-crash tests. It opens (or creates) a pool, reads the state a
// previous run left, and runs randomized transactions forever, reporting on standard output:
//   start <state>     the state it found (after recovery)
//   pending <state>   the state the next transaction will leave if it commits
//   commit <state>    the transaction returned: it is committed
// The parent SIGKILLs it at a random moment, reopens the pool and checks that the state is the
// last committed one, or the pending one. A third argument, `storage` or `storage-normal`,
// creates a storage-mode pool (with the default or the weaker sync option).
import FerriteHeap
import FerriteTestSupport
#if canImport(Glibc)
import Glibc
#endif

func report(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let n = write(1, buffer.baseAddress! + offset, buffer.count - offset)
            if n <= 0 { exit(3) }
            offset += n
        }
    }
}

let arguments = CommandLine.arguments
guard arguments.count == 3 || arguments.count == 4, let seed = UInt64(arguments[2]) else {
    report("usage: FerriteCrashWorker <pool> <seed> [storage|storage-normal]")
    exit(2)
}
do {
    var options = HeapOptions()
    options.chunkSize = 64 << 10
    options.initialSize = 1 << 20
    options.maximumSize = 64 << 20
    options.logSlotCount = 4
    options.logSlotSize = 64 << 10
    if arguments.count == 4 {
        options.durability = .storage
        options.logCapacity = 1 << 20
        options.storageSync = arguments[3] == "storage-normal" ? .normal : .full
    }
    let heap = try Heap(path: arguments[1], options: options)
    try heap.register(Cell.self)
    try heap.register(Table.self)
    let table: Table
    if let existing = try heap.root("t0", as: Table.self) {
        table = existing
    } else {
        table = try heap.transaction {
            let created = try heap.allocate(Table.self)
            try heap.setRoot("t0", to: created)
            return created
        }
    }
    var model = try TableModel(reading: table)
    report("start \(model.line)")
    var rng = SeededGenerator(seed: seed)
    for _ in 0..<10_000_000 {
        let planned = Workload.plan(from: model, rng: &rng)
        if !planned.aborts { report("pending \(planned.result.line)") }
        try Workload.run(planned, on: table, heap: heap)
        model = planned.result
        if !planned.aborts { report("commit \(model.line)") }
    }
} catch {
    report("error \(error)")
    exit(1)
}
