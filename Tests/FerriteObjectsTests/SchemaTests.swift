import Foundation
import Testing
import FerriteObjects
import FerriteTestSupport

/// A pool written by one version of a program, opened by the next: layouts are recorded, checked
/// and upgraded.
@Suite struct PersistentSchemaTests {
    /// Makes a pool holding `count` version-1 `Tests.Moving` objects, referred to from a root, from
    /// a holder's field, from a persistent array and from each other's holders.
    func makeVersionOnePool(_ path: String, count: Int) throws {
        let heap = try openPool(path, maximumSize: 64 << 20)
        defer { heap.close() }
        let holder = try heap.transaction {
            let holder = try MovingHolderV1()
            holder.items = try PersistentArray<MovingV1>.make(in: heap)
            try heap.setRoot("holder", to: holder)
            try heap.setRoot("plain", to: try GrowingV1())
            return holder
        }
        for start in stride(from: 0, to: count, by: 100) {
            try heap.transaction {
                for index in start..<min(count, start + 100) {
                    let item = try MovingV1(count: index, name: "item \(index)")
                    try holder.items!.append(item)
                    if index == 0 { holder.item = item; try heap.setRoot("first", to: item) }
                }
            }
        }
    }

    @Test func theLayoutIsRecordedInThePool() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("schema.pool")
        try makeVersionOnePool(path, count: 1)
        let heap = try openPool(path)
        defer { heap.close() }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Moving", in: heap) == "size=16;count:Swift.Int@0+8;name:String@8+8")
    }

    @Test func addedPropertiesGetTheirDefaultsAndEveryReferenceFollowsMovedObjects() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("upgrade.pool")
        let count = 3_000  // several upgrade transactions
        try makeVersionOnePool(path, count: count)
        do {
            let heap = try openPool(path, maximumSize: 64 << 20)
            defer { heap.close() }
            try heap.register(MovingHolderV2.self)  // registers and upgrades Tests.Moving too
            let holder = try #require(try heap.root("holder", as: MovingHolderV2.self))
            let items = try #require(holder.items)
            #expect(items.count == count)
            for (index, item) in items.enumerated() {
                #expect(item.count == index && item.name == "item \(index)" && item.added == 42 && item.label == "new")
            }
            let first = try #require(try heap.root("first", as: MovingV2.self))
            #expect(first.reference == holder.item?.reference && first.reference == items[0].reference)
            try heap.transaction { first.added = 7; first.label = "changed" }
            #expect(holder.item?.added == 7 && items[0].label == "changed")
            let report = heap.verify()
            #expect(report.isValid && report.unreachableBlocks.isEmpty, "\(report)")
            #expect(try PersistentSchema.recordedSignature(of: "Tests.Moving", in: heap)
                    == "size=32;count:Swift.Int@0+8;name:String@8+8;added:Swift.Int@16+8;label:String@24+8")
        }
        // Reopened: nothing left to upgrade, the values stay.
        let heap = try openPool(path, maximumSize: 64 << 20)
        defer { heap.close() }
        let first = try #require(try heap.root("first", as: MovingV2.self))
        #expect(first.added == 7 && first.label == "changed" && first.name == "item 0")
    }

    @Test func objectsWhoseBlockHasRoomGrowInPlace() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("grow.pool")
        try makeVersionOnePool(path, count: 1)
        let heap = try openPool(path)
        defer { heap.close() }
        let before = try #require(try heap.rootReference("plain"))
        let plain = try #require(try heap.root("plain", as: GrowingV2.self))
        #expect(plain.reference == before)
        #expect(plain.a == 1 && plain.b == 2 && plain.c == 3 && plain.d == 4)
        #expect(heap.verify().isValid)
    }

    @Test func anIncompatibleLayoutIsAClearErrorAndChangesNothing() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("mismatch.pool")
        try makeVersionOnePool(path, count: 2)
        let heap = try openPool(path)
        defer { heap.close() }
        let cases: [(any PersistentModel.Type, String)] = [
            (MovingRetyped.self, "property 'name' is String in the pool but Swift.Int in the program"),
            (MovingShrunk.self, "the pool's objects have a property 'name' (String) that the program's type no longer declares"),
            (MovingWithoutDefault.self, "new property 'added' has no default value for the objects already in the pool (give it one)"),
            (MovingReordered.self, "property 'count' moved from +0+8 to +8+8 (declare new properties after the existing ones)"),
        ]
        for (type, difference) in cases {
            #expect(throws: HeapError.schemaMismatch(type: "Tests.Moving", difference: difference)) { try heap.register(type) }
        }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Moving", in: heap) == "size=16;count:Swift.Int@0+8;name:String@8+8")
        // The compatible version still opens it afterwards.
        try heap.register(MovingHolderV2.self)
        #expect(try heap.root("first", as: MovingV2.self)?.added == 42)
    }

    @Test func anUpgradeThatCannotFindEveryReferenceIsRefused() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("blocked.pool")
        try makeVersionOnePool(path, count: 2)
        let heap = try openPool(path)
        defer { heap.close() }
        // The holder's layout is recorded, but not the persistent array's, whose type is not
        // registered: the references inside it cannot be found.
        #expect(throws: HeapError.migrationBlocked(type: "Tests.Moving", unregistered: ["Ferrite.Array<@Tests.Moving>"])) {
            try heap.register(MovingV2.self)
        }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Moving", in: heap) == "size=16;count:Swift.Int@0+8;name:String@8+8")
        try heap.register(MovingHolderV2.self)
        #expect(try heap.root("holder", as: MovingHolderV2.self)?.item?.added == 42)
    }

    @Test func aTypedReadOfAnObjectThatTheUpgradeMovesGetsTheMovedObject() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("solo.pool")
        do {
            let heap = try openPool(path)
            try heap.transaction { try heap.setRoot("solo", to: try MovingV1(count: 5, name: "solo")) }
            heap.close()
        }
        let heap = try openPool(path)
        defer { heap.close() }
        let before = try #require(try heap.rootReference("solo"))
        // No explicit registration: the typed read registers (and upgrades) first, then reads.
        let solo = try #require(try heap.root("solo", as: MovingV2.self))
        let after = try heap.rootReference("solo")
        #expect(solo.reference != before && solo.reference == after)
        #expect(solo.count == 5 && solo.name == "solo" && solo.added == 42)
        try heap.transaction { solo.added = 1 }
        let report = heap.verify()
        #expect(report.isValid && report.unreachableBlocks.isEmpty, "\(report)")
    }

    @Test func anUpgradeCannotRunInsideATransaction() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("nested.pool")
        try makeVersionOnePool(path, count: 2)
        let heap = try openPool(path)
        defer { heap.close() }
        #expect(throws: HeapError.upgradeInTransaction(type: "Tests.Moving")) {
            try heap.transaction { _ = try heap.root("holder", as: MovingHolderV2.self) }
        }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Moving", in: heap) == "size=16;count:Swift.Int@0+8;name:String@8+8")
        try heap.register(MovingHolderV2.self)
        #expect(try heap.root("first", as: MovingV2.self)?.added == 42)
    }

    @Test func aTypeFirstUsedInATransactionIsRecordedOnceItCommitsAndForgottenIfItRollsBack() throws {
        let directory = TemporaryDirectory()
        let heap = try openPool(directory.file("first-use.pool"))
        defer { heap.close() }
        struct Cancelled: Error {}
        #expect(throws: Cancelled.self) {
            try heap.transaction {
                _ = try Branch(name: "rolled back")
                #expect(try PersistentSchema.recordedSignature(of: "Tests.Branch", in: heap) == nil)
                throw Cancelled()
            }
        }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Branch", in: heap) == nil)
        try heap.transaction { try heap.setRoot("branch", to: try Branch(name: "kept")) }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Branch", in: heap) == "size=16;name:String@0+8;balance:Swift.Int@8+8")
        // A transaction that only reads keeps what it registered, and records its first layout.
        try heap.transaction { _ = try heap.root("absent", as: Account.self) }
        #expect(try PersistentSchema.recordedSignature(of: "Tests.Account", in: heap) != nil)
        #expect(heap.verify().isValid)
    }
}
