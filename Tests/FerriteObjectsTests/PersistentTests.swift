import Foundation
import Testing
import FerriteObjects
import FerriteTestSupport

@Suite struct PersistentObjectTests {
    @Test func propertiesReadBackAfterReopening() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("objects-\(UUID()).pool").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let heap = try Heap(path: path)
            try heap.transaction {
                let branch = try Branch(name: "Lyon")
                let account = try Account(id: 7, owner: "Ada")
                account.balance = 42
                account.branch = branch
                account.tier = .gold
                account.note = "hello"
                try heap.setRoot("account", to: account)
            }
            heap.close()
        }
        let heap = try Heap(path: path)
        let account = try #require(try heap.root("account", as: Account.self))
        #expect(account.id == 7)
        #expect(account.owner == "Ada")
        #expect(account.balance == 42)
        #expect(account.tier == .gold)
        #expect(account.branch?.name == "Lyon")
        #expect(account.note == "hello")
        #expect(account.small == nil)
        heap.close()
    }
}
