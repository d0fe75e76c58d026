import FerriteHeap

/// A randomized transactional workload over one ``Table`` and its cells, with a model of what
/// the table must hold after each committed transaction. Crash tests run it against a pool and
/// compare what recovery leaves with the model.
public struct TableModel: Equatable, CustomStringConvertible, Sendable {
    public struct CellValue: Equatable, Sendable {
        public var a = 0, b = 0, c = 0, d = 0
        public init(a: Int = 0, b: Int = 0, c: Int = 0, d: Int = 0) { self.a = a; self.b = b; self.c = c; self.d = d }
    }
    public var counter = 0
    public var slots: [CellValue?] = Array(repeating: nil, count: Table.slots)
    public var blob: (size: Int, tag: Int)? = nil

    public static func == (l: TableModel, r: TableModel) -> Bool {
        l.counter == r.counter && l.slots == r.slots && l.blob?.size == r.blob?.size && l.blob?.tag == r.blob?.tag
    }
    public var description: String { "counter \(counter), \(slots.compactMap { $0 }.count) cells, blob \(String(describing: blob))" }

    /// Reads the model back from a pool.
    public init(reading table: Table) throws {
        counter = table.counter
        for slot in 0..<Table.slots {
            if let cell = try table.handle.object(at: 8 + 8 * slot, as: Cell.self) {
                slots[slot] = CellValue(a: cell.a, b: cell.b, c: cell.c, d: cell.d)
            }
        }
        let blobReference = table.handle[UInt64.self, at: Table.blobOffset]
        if blobReference != 0 {
            let handle = try table.handle.heap.handle(at: blobReference)
            let first = handle.fields.load(as: Int.self)
            let last = handle.fields.load(fromByteOffset: handle.size / 8 * 8 - 8, as: Int.self)
            blob = (handle.size, first == last ? first : -1)
        }
    }
    public init() {}
}

public enum WorkloadOp: Sendable {
    case update(slot: Int, fields: [Int: Int])
    case insert(slot: Int, TableModel.CellValue)
    case remove(slot: Int)
    case setBlob(size: Int, tag: Int)
    case removeBlob
    case nested([WorkloadOp])
}

public struct PlannedTransaction: Sendable {
    public var ops: [WorkloadOp]
    public var aborts: Bool
    /// The model after this transaction, if it commits.
    public var result: TableModel
}

/// The error a planned transaction throws to abort itself.
public struct WorkloadAbort: Error {}

public enum Workload {
    public static let blobSizes = [24, 200, 1500, 3000, 20_000, 40_000]

    /// Plans a random transaction from the current model.
    public static func plan(from model: TableModel, rng: inout SeededGenerator) -> PlannedTransaction {
        var next = model
        func randomOp() -> WorkloadOp {
            let slot = Int.random(in: 0..<Table.slots, using: &rng)
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<4 where next.slots[slot] != nil:
                var fields: [Int: Int] = [:]
                for _ in 0..<Int.random(in: 1...4, using: &rng) { fields[Int.random(in: 0..<4, using: &rng)] = Int.random(in: 1...1_000_000, using: &rng) }
                for (field, value) in fields {
                    switch field { case 0: next.slots[slot]!.a = value; case 1: next.slots[slot]!.b = value; case 2: next.slots[slot]!.c = value; default: next.slots[slot]!.d = value }
                }
                return .update(slot: slot, fields: fields)
            case 4..<6 where next.slots[slot] != nil:
                next.slots[slot] = nil
                return .remove(slot: slot)
            case 6 where next.blob != nil:
                next.blob = nil
                return .removeBlob
            case 7:
                let size = blobSizes.randomElement(using: &rng)!
                let tag = Int.random(in: 1...1_000_000, using: &rng)
                next.blob = (size, tag)
                return .setBlob(size: size, tag: tag)
            default:
                let value = TableModel.CellValue(a: Int.random(in: 1...9999, using: &rng), b: slot, c: 7, d: Int.random(in: 1...9999, using: &rng))
                next.slots[slot] = value
                return .insert(slot: slot, value)
            }
        }
        var ops: [WorkloadOp] = []
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            if Int.random(in: 0..<6, using: &rng) == 0 {
                ops.append(.nested((0..<Int.random(in: 1...3, using: &rng)).map { _ in randomOp() }))
            } else {
                ops.append(randomOp())
            }
        }
        next.counter += 1
        let aborts = Int.random(in: 0..<7, using: &rng) == 0
        return PlannedTransaction(ops: ops, aborts: aborts, result: aborts ? model : next)
    }

    /// Registers the test types and makes an empty table under root `name`, in a transaction.
    public static func makeTable(_ name: String, in heap: Heap) throws -> Table {
        try heap.register(Cell.self)
        try heap.register(Table.self)
        return try heap.transaction {
            let table = try heap.allocate(Table.self)
            try heap.setRoot(name, to: table)
            return table
        }
    }

    /// Plans and runs `count` transactions from `model` on `table`; returns the model after them.
    @discardableResult
    public static func run(_ count: Int, seed: UInt64, from model: TableModel = TableModel(), on table: Table, heap: Heap) throws -> TableModel {
        var rng = SeededGenerator(seed: seed)
        var model = model
        for _ in 0..<count {
            let planned = plan(from: model, rng: &rng)
            try run(planned, on: table, heap: heap)
            model = planned.result
        }
        return model
    }

    /// Runs a planned transaction; returns whether it committed.
    @discardableResult
    /// With `shared`, the transaction also increments `shared.a`, holding its lock.
    public static func run(_ planned: PlannedTransaction, on table: Table, heap: Heap, shared: Cell? = nil) throws -> Bool {
        do {
            try heap.transaction(locking: shared.map { [$0] } ?? []) {
                for op in planned.ops { try apply(op, table: table, heap: heap) }
                table.counter += 1
                if let shared { shared.a += 1 }
                if planned.aborts { throw WorkloadAbort() }
            }
            return true
        } catch is WorkloadAbort {
            return false
        }
    }

    public static func apply(_ op: WorkloadOp, table: Table, heap: Heap) throws {
        switch op {
        case .update(let slot, let fields):
            let cell = table[slot]!
            for (field, value) in fields {
                switch field { case 0: cell.a = value; case 1: cell.b = value; case 2: cell.c = value; default: cell.d = value }
            }
        case .insert(let slot, let value):
            if let old = table[slot] { try heap.free(old) }
            let cell = try heap.allocate(Cell.self)
            cell.a = value.a; cell.b = value.b; cell.c = value.c; cell.d = value.d
            table[slot] = cell
        case .remove(let slot):
            try heap.free(table[slot]!)
            table[slot] = nil
        case .setBlob(let size, let tag):
            if let old = table.blob { try heap.free(old) }
            let blob = try heap.allocateBytes(size)
            blob[Int.self, at: 0] = tag
            blob[Int.self, at: size / 8 * 8 - 8] = tag
            table.blob = blob
        case .removeBlob:
            try heap.free(table.blob!)
            table.blob = nil
        case .nested(let inner):
            try heap.transaction { for op in inner { try apply(op, table: table, heap: heap) } }
        }
    }
}

extension TableModel {
    /// A one-line text form, used by the crash worker to report states to its parent.
    public var line: String {
        let cells = slots.map { $0.map { "\($0.a),\($0.b),\($0.c),\($0.d)" } ?? "-" }.joined(separator: ";")
        let blobText = blob.map { "\($0.size),\($0.tag)" } ?? "-"
        return "\(counter) \(cells) \(blobText)"
    }

    /// Parses ``line``.
    public init?(line: Substring) {
        let parts = line.split(separator: " ")
        guard parts.count == 3, let counter = Int(parts[0]) else { return nil }
        self.counter = counter
        let cells = parts[1].split(separator: ";", omittingEmptySubsequences: false)
        guard cells.count == Table.slots else { return nil }
        for (i, cell) in cells.enumerated() where cell != "-" {
            let v = cell.split(separator: ",").compactMap { Int($0) }
            guard v.count == 4 else { return nil }
            slots[i] = CellValue(a: v[0], b: v[1], c: v[2], d: v[3])
        }
        if parts[2] != "-" {
            let v = parts[2].split(separator: ",").compactMap { Int($0) }
            guard v.count == 2 else { return nil }
            blob = (v[0], v[1])
        }
    }
}
