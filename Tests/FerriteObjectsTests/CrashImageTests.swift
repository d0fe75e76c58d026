import Foundation
import Synchronization
import Testing
import FerriteObjects
@_spi(Testing) import FerriteHeap
import FerriteMedium
import FerriteTestSupport

/// The bank as the tests expect it: accounts (owner, balance, branch id) and branches (name).
struct BankModel: Equatable, Sendable, CustomStringConvertible {
    var accounts: [Int: Entry] = [:]
    var branches: [Int: String] = [:]
    struct Entry: Equatable, Sendable {
        var owner: String
        var balance: Int
        var branch: Int?
    }
    var description: String { "\(accounts.count) accounts, \(branches.count) branches, total \(accounts.values.reduce(0) { $0 + $1.balance })" }

    static func read(from heap: Heap) throws -> BankModel {
        var model = BankModel()
        guard let accounts = try heap.root("accounts", as: PersistentDictionary<Int, Account>.self),
              let branches = try heap.root("branches", as: PersistentDictionary<Int, Branch>.self) else { return model }
        var branchIDs: [UInt64: Int] = [:]
        for (id, branch) in branches {
            model.branches[id] = branch.name
            branchIDs[branch.reference] = id
        }
        for (id, account) in accounts {
            model.accounts[id] = Entry(owner: account.owner, balance: account.balance, branch: account.branch.flatMap { branchIDs[$0.reference] })
        }
        return model
    }
}

/// Random bank transactions over `@Persistent` objects that refer to each other, applied to the
/// pool and to the model alike.
struct BankWorkload {
    var rng: SeededGenerator
    var nextID = 0

    mutating func step(_ heap: Heap, _ model: inout BankModel) throws {
        let accounts = try heap.root("accounts", as: PersistentDictionary<Int, Account>.self)!
        let branches = try heap.root("branches", as: PersistentDictionary<Int, Branch>.self)!
        let ids = model.accounts.keys.sorted()
        switch Int.random(in: 0..<10, using: &rng) {
        case 0, 1:  // open an account at a branch
            nextID += 1
            let id = nextID
            let branchID = model.branches.keys.sorted().randomElement(using: &rng)
            let owner = "owner \(id) " + String(repeating: "x", count: Int.random(in: 0..<40, using: &rng))
            let account = try Account(id: id, owner: owner, balance: 100)
            if let branchID { account.branch = branches[branchID] }
            try accounts.updateValue(account, forKey: id)
            model.accounts[id] = .init(owner: owner, balance: 100, branch: branchID)
        case 2:  // open a branch
            nextID += 1
            try branches.updateValue(try Branch(name: "branch \(nextID)"), forKey: nextID)
            model.branches[nextID] = "branch \(nextID)"
        case 3:  // rename an owner (the old string is freed)
            guard let id = ids.randomElement(using: &rng) else { return }
            let owner = "renamed \(Int.random(in: 0..<1_000, using: &rng))"
            accounts[id]!.owner = owner
            model.accounts[id]!.owner = owner
        case 4:  // close an account
            guard let id = ids.randomElement(using: &rng) else { return }
            let account = try accounts.removeValue(forKey: id)!
            try heap.free(account)
            model.accounts[id] = nil
        case 5:  // move an account to another branch, or to none
            guard let id = ids.randomElement(using: &rng) else { return }
            let branchID = model.branches.keys.sorted().randomElement(using: &rng)
            accounts[id]!.branch = branchID.flatMap { branches[$0] }
            model.accounts[id]!.branch = branchID
        default:  // transfer
            guard let from = ids.randomElement(using: &rng), let to = ids.randomElement(using: &rng) else { return }
            let amount = Int.random(in: 1...50, using: &rng)
            accounts[from]!.balance -= amount
            accounts[to]!.balance += amount
            model.accounts[from]!.balance -= amount
            model.accounts[to]!.balance += amount
        }
    }
}

/// Simulated power failures (failure-models.md) at every fence: each crash image (persisted state
/// plus none, all or a random subset of the unpersisted words) is recovered and must hold exactly
/// the committed transactions, with a valid heap and nothing leaked.
@Suite struct PersistentCrashImageTests {
    struct Progress: Sendable {
        var committed = BankModel()
        var pending: BankModel?
    }

    static func check(_ image: [UInt8], _ progress: Progress) -> String? {
        do {
            let heap = try openImage(image)
            defer { heap.close() }
            let found = try BankModel.read(from: heap)
            if found != progress.committed && found != progress.pending {
                return "recovered \(found); committed \(progress.committed); pending \(progress.pending.map(\.description) ?? "none")"
            }
            let report = heap.verify()
            return report.isValid ? nil : "verifier: \(report)"
        } catch {
            return "recovery failed: \(error)"
        }
    }

    @Test("crash images at every fence of bank transactions over @Persistent objects recover to exactly the committed ones",
          arguments: [11, 12] as [UInt64])
    func persistentObjectsRecoverFromEveryCrashImage(seed: UInt64) throws {
        let (heap, medium) = try makeSimulatedHeap(maximumSize: 4 << 20)
        defer { heap.close() }
        try heap.transaction {
            try heap.setRoot("accounts", to: try PersistentDictionary<Int, Account>.make(in: heap))
            try heap.setRoot("branches", to: try PersistentDictionary<Int, Branch>.make(in: heap))
        }
        let progress = Mutex(Progress())
        var workload = BankWorkload(rng: SeededGenerator(seed: seed))
        var model = BankModel()
        var rng = SeededGenerator(seed: seed ^ 0x5EED)
        let outcome = try checkCrashImagesAtEveryFence(of: medium, seed: seed, check: { image in Self.check(image, progress.withLock { $0 }) }) {
            for _ in 0..<400 {
                var next = model
                let operations = Int.random(in: 1...3, using: &rng)
                let aborts = Int.random(in: 0..<8, using: &rng) == 0
                do {
                    try heap.transaction {
                        for _ in 0..<operations { try workload.step(heap, &next) }
                        if aborts { throw CancellationError() }
                        let planned = next
                        progress.withLock { $0.pending = planned }
                    }
                    model = next
                } catch is CancellationError {}
                let committed = model
                progress.withLock { $0.committed = committed; $0.pending = nil }
            }
        }
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 1_000, "only \(outcome.images) crash images")
        #expect(try BankModel.read(from: heap) == model)
        print("@Persistent crash images checked (seed \(seed)): \(outcome.images)")
    }

    @Test("a layout upgrade interrupted at any fence finishes when the pool is next opened, losing nothing")
    func interruptedUpgradeFinishesAtTheNextOpen() throws {
        let (heap, medium) = try makeSimulatedHeap(maximumSize: 4 << 20)
        let count = 300
        let holder = try heap.transaction {
            let holder = try MovingHolderV1()
            holder.items = try PersistentArray<MovingV1>.make(in: heap)
            try heap.setRoot("holder", to: holder)
            return holder
        }
        for start in stride(from: 0, to: count, by: 50) {
            try heap.transaction {
                for index in start..<start + 50 {
                    let item = try MovingV1(count: index, name: "item \(index)")
                    try holder.items!.append(item)
                    if index == 0 { holder.item = item; try heap.setRoot("first", to: item) }
                }
            }
        }
        // Each image: open it with version 2, which upgrades whatever the crash left undone.
        let check: @Sendable ([UInt8]) -> String? = { image in
            do {
                let heap = try openImage(image)
                defer { heap.close() }
                try heap.register(MovingHolderV2.self)
                guard let holder = try heap.root("holder", as: MovingHolderV2.self), let items = holder.items, items.count == count else {
                    return "the holder or its items are missing"
                }
                for (index, item) in items.enumerated() where item.count != index || item.name != "item \(index)" || item.added != 42 || item.label != "new" {
                    return "item \(index) reads \(item.count) \(item.name) \(item.added) \(item.label)"
                }
                guard let first = try heap.root("first", as: MovingV2.self), first.reference == items[0].reference,
                      first.reference == holder.item?.reference else { return "the references to the first item disagree" }
                let report = heap.verify()
                return report.isValid && report.unreachableBlocks.isEmpty ? nil : "verifier: \(report)"
            } catch {
                return "reopening failed: \(error)"
            }
        }
        // Version 2 opens the pool (a new heap on a new simulated medium: this one knows version 1).
        let image = medium.crashImage(.all)
        heap.close()
        let upgraded = SimulatedMedium()
        let next = try openImage(image, medium: upgraded)
        defer { next.close() }
        upgraded.watch(next.durableView.base, size: next.durableView.size)
        let outcome = try checkCrashImagesAtEveryFence(of: upgraded, seed: 5, check: check) {
            try next.register(MovingHolderV2.self)
        }
        #expect(try next.root("first", as: MovingV2.self)?.added == 42)
        #expect(outcome.failures.isEmpty, "\(outcome.failures)")
        #expect(outcome.images >= 24, "only \(outcome.images) crash images")
        print("layout upgrade crash images checked: \(outcome.images)")
    }
}
