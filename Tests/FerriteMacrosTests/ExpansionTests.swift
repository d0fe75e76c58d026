import FerriteMacros
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacrosGenericTestSupport
import Testing

private let macros: [String: MacroSpec] = [
    "Persistent": MacroSpec(type: PersistentMacro.self, conformances: ["PersistentModel", "Sendable"]),
    "PersistentProperty": MacroSpec(type: PersistentPropertyMacro.self),
    "PersistentInitializer": MacroSpec(type: PersistentInitializerMacro.self),
]

/// Expands `source` and checks the result (and, with `fixed`, the source after applying every
/// fix-it the diagnostics offer).
func expect(_ source: String, expands expanded: String, diagnostics: [DiagnosticSpec] = [], fixed: String? = nil,
            sourceLocation: SourceLocation = #_sourceLocation) {
    assertMacroExpansion(source, expandedSource: expanded, diagnostics: diagnostics, macroSpecs: macros,
                         applyFixIts: fixed == nil ? nil : diagnostics.flatMap { $0.fixIts.map(\.message) }, fixedSource: fixed,
                         failureHandler: { Issue.record(Comment(rawValue: $0.message), sourceLocation: sourceLocation) })
}

/// Expands `source`, which has one error, and checks its message and fix-it.
func expectError(_ source: String, _ message: String, line: Int, column: Int, fixIt: String? = nil, fixed: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let diagnostic = DiagnosticSpec(message: message, line: line, column: column, fixIts: fixIt.map { [FixItSpec(message: $0)] } ?? [])
    assertMacroExpansion(source, expandedSource: expandedWithoutMacro(source), diagnostics: [diagnostic], macroSpecs: macros,
                         applyFixIts: fixIt.map { [$0] }, fixedSource: fixed,
                         failureHandler: { Issue.record(Comment(rawValue: $0.message), sourceLocation: sourceLocation) })
}

/// A class with an error expands to itself without the attribute: no members, no conformance.
private func expandedWithoutMacro(_ source: String) -> String {
    source.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("@Persistent") }.joined(separator: "\n")
}

@Suite struct PersistentMacroExpansionTests {
    @Test func classGainsHandleLayoutProxyInitializerAndConformance() {
        expect("""
            @Persistent
            public final class Account {
                public let id: Int
                public var balance: Int = 0
                var owner: String
                var branch: Branch?
                public init(id: Int, owner: String) throws {
                    self.id = id
                    self.owner = owner
                }
            }
            """, expands: """
            public final class Account {
                public let id: Int
                @FerriteObjects.PersistentProperty(offset: 8)
                public var balance: Int = 0
                @FerriteObjects.PersistentProperty(offset: 16)
                var owner: String
                @FerriteObjects.PersistentProperty(offset: 24)
                var branch: Branch?
                @FerriteObjects.PersistentInitializer(storesConstants: true)
                public init(id: Int, owner: String) throws {
                    self.id = id
                    self.owner = owner
                }

                /// The persistent object this proxy reads and writes.
                public let handle: FerriteHeap.ObjectHandle

                private var _$balance: FerriteObjects.PersistentPropertyInitialized

                private var _$owner: FerriteObjects.PersistentPropertyInitialized

                private var _$branch: FerriteObjects.PersistentPropertyInitialized

                /// Re-creates a proxy for an existing object.
                public init(handle: FerriteHeap.ObjectHandle) {
                    self.handle = handle
                    self._$owner = FerriteObjects.PersistentPropertyInitialized()
                    self.id = handle[Int.self, at: 0]
                }

                public static let persistentTypeName: String = String(reflecting: Account.self)

                public static let persistentSize: Int = 40

                public static let persistentFields: [FerriteObjects.PersistentField] = [
                    FerriteObjects.PersistentField("id", Int.self, offset: 0, size: 8, optional: false, hasDefault: false),
                    FerriteObjects.PersistentField("balance", Int.self, offset: 8, size: 8, optional: false, hasDefault: true),
                    FerriteObjects.PersistentField("owner", String.self, offset: 16, size: 8, optional: false, hasDefault: false),
                    FerriteObjects.PersistentField("branch", Branch.self, offset: 24, size: 16, optional: true, hasDefault: true)
                ]

                public static func persistentInitializeDefaults(_ handle: FerriteHeap.ObjectHandle, from oldSize: Int) throws(FerriteHeap.HeapError) {
                    if oldSize <= 8 {
                        let value: Int = 0
                        handle[Int.self, at: 8] = value
                    }
                }

                /// Stores the `let` properties of a new object in the pool (its initializer's last step).
                static func _$storeConstants(_ object: Account) {
                    object.handle[Int.self, at: 0] = object.id
                }
            }

            extension Account: FerriteObjects.PersistentModel, @unchecked Sendable {
            }
            """)
    }

    @Test func layoutFollowsDeclarationOrderWithNaturalAlignment() {
        expect("""
            @Persistent("Bank.Packed")
            final class Packed {
                var flag: Bool = false
                var small: Int16 = 0
                var word: Int32?
                var id: UUID?
                var when: Date = .distantPast
                var bytes: [UInt8]?
                var last: UInt8 = 1
            }
            """, expands: """
            final class Packed {
                @FerriteObjects.PersistentProperty(offset: 0)
                var flag: Bool = false
                @FerriteObjects.PersistentProperty(offset: 2)
                var small: Int16 = 0
                @FerriteObjects.PersistentProperty(offset: 4)
                var word: Int32?
                @FerriteObjects.PersistentProperty(offset: 16)
                var id: UUID?
                @FerriteObjects.PersistentProperty(offset: 40)
                var when: Date = .distantPast
                @FerriteObjects.PersistentProperty(offset: 48)
                var bytes: [UInt8]?
                @FerriteObjects.PersistentProperty(offset: 56)
                var last: UInt8 = 1

                /// The persistent object this proxy reads and writes.
                let handle: FerriteHeap.ObjectHandle

                private var _$flag: FerriteObjects.PersistentPropertyInitialized

                private var _$small: FerriteObjects.PersistentPropertyInitialized

                private var _$word: FerriteObjects.PersistentPropertyInitialized

                private var _$id: FerriteObjects.PersistentPropertyInitialized

                private var _$when: FerriteObjects.PersistentPropertyInitialized

                private var _$bytes: FerriteObjects.PersistentPropertyInitialized

                private var _$last: FerriteObjects.PersistentPropertyInitialized

                /// Re-creates a proxy for an existing object.
                init(handle: FerriteHeap.ObjectHandle) {
                    self.handle = handle
                }

                /// Allocates a new object, with every property at its default value, in the calling thread's current transaction.
                init() throws {
                    let _$handle = try FerriteObjects.PersistentObjects.allocate(Packed.self)
                    self.handle = _$handle
                }

                static let persistentTypeName: String = "Bank.Packed"

                static let persistentSize: Int = 64

                static let persistentFields: [FerriteObjects.PersistentField] = [
                    FerriteObjects.PersistentField("flag", Bool.self, offset: 0, size: 1, optional: false, hasDefault: true),
                    FerriteObjects.PersistentField("small", Int16.self, offset: 2, size: 2, optional: false, hasDefault: true),
                    FerriteObjects.PersistentField("word", Int32.self, offset: 4, size: 8, optional: true, hasDefault: true),
                    FerriteObjects.PersistentField("id", UUID.self, offset: 16, size: 24, optional: true, hasDefault: true),
                    FerriteObjects.PersistentField("when", Date.self, offset: 40, size: 8, optional: false, hasDefault: true),
                    FerriteObjects.PersistentField("bytes", [UInt8].self, offset: 48, size: 8, optional: true, hasDefault: true),
                    FerriteObjects.PersistentField("last", UInt8.self, offset: 56, size: 1, optional: false, hasDefault: true)
                ]

                static func persistentInitializeDefaults(_ handle: FerriteHeap.ObjectHandle, from oldSize: Int) throws(FerriteHeap.HeapError) {
                    if oldSize <= 0 {
                        let value: Bool = false
                        handle[Bool.self, at: 0] = value
                    }
                    if oldSize <= 2 {
                        let value: Int16 = 0
                        handle[Int16.self, at: 2] = value
                    }
                    if oldSize <= 40 {
                        let value: Date = .distantPast
                        FerriteObjects.PersistentFieldStorage.initialize(value, handle, 40)
                    }
                    if oldSize <= 56 {
                        let value: UInt8 = 1
                        handle[UInt8.self, at: 56] = value
                    }
                }
            }

            extension Packed: FerriteObjects.PersistentModel, @unchecked Sendable {
            }
            """)
    }
}
