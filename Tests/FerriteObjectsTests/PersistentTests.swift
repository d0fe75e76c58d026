import Foundation
import Testing
import FerriteObjects
import FerriteTestSupport

/// Opens (or creates) a small pool at `path`.
func openPool(_ path: String, maximumSize: Int = 8 << 20) throws -> Heap {
    try Heap(path: path, options: smallPoolOptions(maximumSize: maximumSize))
}

@Suite struct PersistentObjectTests {
    @Test func everySupportedPropertyTypeReadsBackAfterReopening() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("everything.pool")
        let uuid = UUID()
        do {
            let heap = try openPool(path)
            try heap.transaction {
                let defaults = try Everything(serial: 1, label: "defaults", note: nil)
                let set = try Everything(serial: 2, label: "set", note: "a note")
                set.int8 = .min; set.uint8 = .max; set.int16 = .min; set.uint16 = .max
                set.int32 = .min; set.uint32 = .max; set.int64 = .min; set.uint64 = .max
                set.int = .max; set.uint = .max; set.float = -0.25; set.double = .pi; set.bool = false
                set.tier = .platinum; set.rate = .low; set.text = "héllo wörld"; set.bytes = [9, 8, 7]
                set.data = Data([0xFF]); set.id = uuid; set.date = Date(timeIntervalSinceReferenceDate: -5)
                set.branch = try Branch(name: "Lyon")
                set.history = try PersistentArray<Int>.make(in: heap)
                try set.history?.append(contentsOf: [1, 2, 3])
                set.index = try PersistentDictionary<String, Account>.make(in: heap)
                try set.index?.updateValue(try Account(id: 9, owner: "Ada"), forKey: "ada")
                set.sorted = try PersistentSortedMap<Int, String>.make(in: heap)
                try set.sorted?.updateValue("one", forKey: 1)
                set.maybeInt8 = -1; set.maybeInt = 0; set.maybeDouble = 0; set.maybeBool = false; set.maybeTier = .basic
                set.maybeText = ""; set.maybeBytes = []; set.maybeData = Data(); set.maybeID = uuid; set.maybeDate = Date(timeIntervalSinceReferenceDate: 0)
                try heap.setRoot("defaults", to: defaults)
                try heap.setRoot("set", to: set)
            }
            heap.close()
        }
        let heap = try openPool(path)
        defer { heap.close() }
        let defaults = try #require(try heap.root("defaults", as: Everything.self))
        #expect(defaults.int8 == -8 && defaults.uint8 == 8 && defaults.int16 == -16 && defaults.uint16 == 16)
        #expect(defaults.int32 == -32 && defaults.uint32 == 32 && defaults.int64 == -64 && defaults.uint64 == 64)
        #expect(defaults.int == -1 && defaults.uint == 1 && defaults.float == 1.5 && defaults.double == 2.5 && defaults.bool)
        #expect(defaults.tier == .gold && defaults.rate == .high && defaults.text == "text" && defaults.bytes == [1, 2, 3])
        #expect(defaults.data == Data([4, 5]) && defaults.id.uuidString == "01020304-0506-0708-090A-0B0C0D0E0F10")
        #expect(defaults.date == Date(timeIntervalSinceReferenceDate: 1_000))
        #expect(defaults.branch == nil && defaults.history == nil && defaults.index == nil && defaults.sorted == nil)
        #expect(defaults.maybeInt8 == nil && defaults.maybeInt == nil && defaults.maybeDouble == nil && defaults.maybeBool == nil)
        #expect(defaults.maybeTier == nil && defaults.maybeText == nil && defaults.maybeBytes == nil && defaults.maybeData == nil)
        #expect(defaults.maybeID == nil && defaults.maybeDate == nil)
        #expect(defaults.created == Date(timeIntervalSinceReferenceDate: 42) && defaults.serial == 1 && defaults.label == "defaults" && defaults.note == nil)

        let set = try #require(try heap.root("set", as: Everything.self))
        #expect(set.int8 == .min && set.uint8 == .max && set.int16 == .min && set.uint16 == .max)
        #expect(set.int32 == .min && set.uint32 == .max && set.int64 == .min && set.uint64 == .max)
        #expect(set.int == .max && set.uint == .max && set.float == -0.25 && set.double == .pi && !set.bool)
        #expect(set.tier == .platinum && set.rate == .low && set.text == "héllo wörld" && set.bytes == [9, 8, 7])
        #expect(set.data == Data([0xFF]) && set.id == uuid && set.date == Date(timeIntervalSinceReferenceDate: -5))
        #expect(set.branch?.name == "Lyon" && set.history.map(Array.init) == [1, 2, 3])
        #expect(set.index?["ada"]?.owner == "Ada" && set.sorted?[1] == "one")
        #expect(set.maybeInt8 == -1 && set.maybeInt == 0 && set.maybeDouble == 0 && set.maybeBool == false && set.maybeTier == .basic)
        #expect(set.maybeText == "" && set.maybeBytes == [] && set.maybeData == Data() && set.maybeID == uuid)
        #expect(set.maybeDate == Date(timeIntervalSinceReferenceDate: 0))
        #expect(set.serial == 2 && set.label == "set" && set.note == "a note")
        let report = heap.verify()
        #expect(report.isValid, "\(report)")
    }

    @Test func settingOptionalsBackToNilFreesWhatTheyOwned() throws {
        let directory = TemporaryDirectory()
        let heap = try openPool(directory.file("nil.pool"))
        defer { heap.close() }
        let object = try heap.transaction {
            let object = try Everything(serial: 1, label: "x", note: "y")
            try heap.setRoot("object", to: object)
            return object
        }
        try heap.transaction {
            object.maybeText = "some text"; object.maybeBytes = [1]; object.maybeData = Data([2]); object.maybeInt = 5
            object.text = "replaced"; object.bytes = [7]; object.data = Data([8])
        }
        #expect(object.maybeText == "some text" && object.maybeInt == 5)
        try heap.transaction { object.maybeText = nil; object.maybeBytes = nil; object.maybeData = nil; object.maybeInt = nil }
        #expect(object.maybeText == nil && object.maybeBytes == nil && object.maybeData == nil && object.maybeInt == nil)
        let report = heap.verify()
        #expect(report.isValid && report.unreachableBlocks.isEmpty, "\(report)")
    }

    @Test func writesOutsideATransactionAreTransactionsOfTheirOwn() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("implicit.pool")
        do {
            let heap = try openPool(path)
            let account = try heap.transaction {
                let account = try Account(id: 1, owner: "Ada")
                try heap.setRoot("account", to: account)
                return account
            }
            account.balance = 10
            account.owner = "Grace"
            account.branch = try heap.transaction { try Branch(name: "Paris") }
            heap.close()
        }
        let heap = try openPool(path)
        defer { heap.close() }
        let account = try #require(try heap.root("account", as: Account.self))
        #expect(account.balance == 10 && account.owner == "Grace" && account.branch?.name == "Paris")
        #expect(heap.verify().isValid)
    }

    @Test func creatingAnObjectOutsideATransactionThrows() throws {
        let directory = TemporaryDirectory()
        let heap = try openPool(directory.file("outside.pool"))
        defer { heap.close() }
        #expect(throws: HeapError.notInTransaction(operation: "creating a Tests.Account (an @Persistent object)")) {
            _ = try Account(id: 1, owner: "Ada")
        }
    }

    @Test func aThrowingInitializerLeavesNothingBehind() throws {
        let directory = TemporaryDirectory()
        let heap = try openPool(directory.file("fussy.pool"))
        defer { heap.close() }
        try heap.transaction {
            try heap.setRoot("kept", to: try Fussy(name: "kept", refuse: false))
            #expect(throws: Fussy.Refused.self) { _ = try Fussy(name: "refused", refuse: true) }
        }
        let report = heap.verify()
        #expect(report.isValid && report.unreachableBlocks.isEmpty, "\(report)")
        #expect(try heap.root("kept", as: Fussy.self)?.name == "kept")
    }

    @Test func freeingAnObjectFreesTheStringsItOwns() throws {
        let directory = TemporaryDirectory()
        let heap = try openPool(directory.file("free.pool"))
        defer { heap.close() }
        let account = try heap.transaction {
            let account = try Account(id: 1, owner: "a long owner name that needs its own block")
            try heap.setRoot("account", to: account)
            return account
        }
        for round in 0..<20 { try heap.transaction { account.owner = "owner \(round)" } }
        try heap.transaction {
            try heap.setRoot("account", to: nil)
            try heap.free(account)
        }
        let report = heap.verify()
        #expect(report.isValid && report.liveBlocks == report.reachableBlocks, "\(report)")
    }

    @Test func aFullPoolFailsTheTransactionAndChangesNothing() throws {
        let directory = TemporaryDirectory()
        let heap = try openPool(directory.file("full.pool"), maximumSize: 1 << 20)
        defer { heap.close() }
        let account = try heap.transaction {
            let account = try Account(id: 1, owner: "Ada")
            try heap.setRoot("account", to: account)
            return account
        }
        let huge = String(repeating: "x", count: 2 << 20)
        #expect(throws: HeapError.self) {
            try heap.transaction {
                account.balance = 99
                account.owner = huge   // cannot be stored: dooms the transaction
            }
        }
        #expect(account.owner == "Ada" && account.balance == 0)
        #expect(throws: HeapError.self) {
            try heap.transaction { _ = try Everything(serial: 1, label: huge, note: nil) }
        }
        #expect(heap.verify().isValid)
    }

    @Test func objectsWorkAsValuesOfCollections() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("collections.pool")
        do {
            let heap = try openPool(path)
            try heap.transaction {
                let accounts = try PersistentDictionary<Int, Account>.make(in: heap)
                for id in 0..<100 { try accounts.updateValue(try Account(id: id, owner: "owner \(id)", balance: id), forKey: id) }
                try heap.setRoot("accounts", to: accounts)
            }
            heap.close()
        }
        let heap = try openPool(path)
        defer { heap.close() }
        let accounts = try #require(try heap.root("accounts", as: PersistentDictionary<Int, Account>.self))
        #expect(accounts.count == 100)
        #expect(accounts[42]?.owner == "owner 42" && accounts[42]?.balance == 42 && accounts[42]?.id == 42)
        #expect(heap.verify().isValid)
    }
}
