import Foundation
import FerriteObjects

enum Tier: UInt8, PersistentRawRepresentable, CaseIterable {
    case basic, gold, platinum
}

@Persistent
final class Branch {
    var name: String
    var balance: Int = 0
    init(name: String) throws {
        self.name = name
    }
}

@Persistent("Tests.Account")
final class Account {
    let id: Int
    var balance: Int = 0
    var owner: String
    var tier: Tier = .basic
    var branch: Branch?
    var flag: Bool = false
    var small: Int16?
    var created: Date = Date(timeIntervalSinceReferenceDate: 0)
    var tag: UUID?
    var blob: [UInt8]?
    var note: String?
    var history: PersistentArray<Int>?

    init(id: Int, owner: String) throws {
        self.id = id
        self.owner = owner
    }
}
