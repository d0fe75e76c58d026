import Testing

/// Every case @Persistent cannot handle is an error at the offending declaration, with a fix-it
/// where one is obvious, and the class expands to nothing (no errors from generated code).
@Suite struct PersistentDiagnosticTests {
    @Test func structIsRejectedWithAFixIt() {
        expectError("""
            @Persistent
            struct Point {
                var x: Int
            }
            """, "@Persistent applies to a final class, not to a struct", line: 1, column: 1, fixIt: "Make it a final class", fixed: """
            @Persistent
            final class Point {
                var x: Int
            }
            """)
    }

    @Test func enumsAndActorsAreRejected() {
        expectError("""
            @Persistent
            enum Kind: Int {
                case a
            }
            """, "@Persistent applies to a final class, not to an enum (enums are stored as fields: declare it PersistentRawRepresentable)", line: 1, column: 1)
        expectError("""
            @Persistent
            actor Counter {
                var count: Int = 0
            }
            """, "@Persistent applies to a final class, not to an actor", line: 1, column: 1)
    }

    @Test func nonFinalClassGetsFinalAsFixIt() {
        expectError("""
            @Persistent
            class Account {
                var balance: Int = 0
            }
            """, "a @Persistent class must be final: subclasses could not add stored properties to its layout", line: 2, column: 7,
            fixIt: "Add 'final'", fixed: """
            @Persistent
            final class Account {
                var balance: Int = 0
            }
            """)
    }

    @Test func genericClassIsRejected() {
        expectError("""
            @Persistent
            final class Box<T> {
                var count: Int = 0
            }
            """, "a @Persistent class cannot be generic: its layout must be known at compile time", line: 2, column: 16)
    }

    @Test func swiftArrayGetsPersistentArrayAsFixIt() {
        expectError("""
            @Persistent
            final class Account {
                var history: [Int] = []
            }
            """, "property 'history': Swift arrays other than [UInt8] cannot be persisted in place (use PersistentArray<Int>, which lives in the pool)",
            line: 3, column: 18, fixIt: "Use 'PersistentArray<Int>'", fixed: """
            @Persistent
            final class Account {
                var history: PersistentArray<Int> = []
            }
            """)
    }

    @Test func swiftDictionaryGetsPersistentDictionaryAsFixIt() {
        expectError("""
            @Persistent
            final class Account {
                var limits: [String: Int]?
            }
            """, "property 'limits': Swift dictionaries cannot be persisted in place (use PersistentDictionary<String, Int>, which lives in the pool)",
            line: 3, column: 17, fixIt: "Use 'PersistentDictionary<String, Int>?'", fixed: """
            @Persistent
            final class Account {
                var limits: PersistentDictionary<String, Int>?
            }
            """)
    }

    @Test func typesThatCannotBeStoredAreNamed() {
        let cases: [(type: String, message: String)] = [
            ("Set<Int>", "Swift sets cannot be persisted in place"),
            ("(Int, Int)", "tuples cannot be persisted; declare one property per element"),
            ("() -> Void", "closures cannot be persisted"),
            ("any Error", "existential and opaque types cannot be persisted: declare the concrete type"),
            ("Any", "'Any' cannot be persisted"),
            ("Int!", "implicitly unwrapped optionals cannot be persisted"),
            ("Int??", "nested optionals cannot be persisted"),
        ]
        for (type, message) in cases {
            expectError("""
                @Persistent
                final class Holder {
                    var value: \(type)
                }
                """, "property 'value': \(message)", line: 3, column: 16)
        }
    }

    @Test func propertyWithoutTypeAnnotationIsRejected() {
        expectError("""
            @Persistent
            final class Counter {
                var count = 0
            }
            """, "a @Persistent property needs an explicit type: its layout is computed from it (write 'count: Type')", line: 3, column: 9)
    }

    @Test func lazyWeakWrappedAndObservedPropertiesAreRejected() {
        expectError("""
            @Persistent
            final class Holder {
                lazy var value: Int = 0
            }
            """, "a lazy property cannot be persisted: give it a default value instead", line: 3, column: 5)
        expectError("""
            @Persistent
            final class Holder {
                weak var next: Holder?
            }
            """, "'weak' has no meaning for a persistent reference: remove it", line: 3, column: 5)
        expectError("""
            @Persistent
            final class Holder {
                @Clamped var value: Int = 0
            }
            """, "@Clamped cannot be applied to a @Persistent property: its value lives in the pool, not in a wrapper", line: 3, column: 5)
        expectError("""
            @Persistent
            final class Holder {
                var value: Int = 0 {
                    didSet { print(value) }
                }
            }
            """, "property observers (willSet, didSet) cannot run on a @Persistent property: its value lives in the pool and is written in place", line: 3, column: 24)
    }

    @Test func constantWithDefaultGetsVarAsFixIt() {
        expectError("""
            @Persistent
            final class Holder {
                let limit: Int = 10
            }
            """, "a 'let' with a default value would be the same in every object: make it 'static let', or 'var' to store it in each object",
            line: 3, column: 20, fixIt: "Make it 'var'", fixed: """
            @Persistent
            final class Holder {
                var limit: Int = 10
            }
            """)
    }

    @Test func severalBindingsAndAHandlePropertyAreRejected() {
        expectError("""
            @Persistent
            final class Point {
                var x, y: Int
            }
            """, "declare each @Persistent property on its own line", line: 3, column: 5)
        expectError("""
            @Persistent
            final class Point {
                var handle: Int = 0
            }
            """, "'handle' is the persistent object's handle in a @Persistent class: rename this property", line: 3, column: 5)
    }

    @Test func initializerMustThrowWithAFixIt() {
        expectError("""
            @Persistent
            final class Account {
                var owner: String
                init(owner: String) {
                    self.owner = owner
                }
            }
            """, "a @Persistent initializer must be 'throws': it allocates the object in the pool, which can fail (no transaction, a full pool)",
            line: 4, column: 5, fixIt: "Add 'throws'", fixed: """
            @Persistent
            final class Account {
                var owner: String
                init(owner: String) throws {
                    self.owner = owner
                }
            }
            """)
    }

    @Test func failableTypedThrowsAndEarlyReturnInitializersAreRejected() {
        expectError("""
            @Persistent
            final class Account {
                var owner: String = ""
                init?(owner: String) throws {
                }
            }
            """, "a @Persistent initializer cannot be failable: it allocates the object first; throw an error instead", line: 4, column: 9)
        expectError("""
            @Persistent
            final class Account {
                var owner: String = ""
                init(owner: String) throws(MyError) {
                }
            }
            """, "a @Persistent initializer must throw any Error (untyped 'throws'): it can throw HeapError", line: 4, column: 32)
        expectError("""
            @Persistent
            final class Account {
                let id: Int
                init(id: Int) throws {
                    self.id = id
                    if id < 0 { return }
                }
            }
            """, "an initializer of a @Persistent class with 'let' properties cannot return early: they are stored in the pool when it ends", line: 6, column: 21)
    }

    @Test func missingInitializerGetsAMemberwiseOneAsFixIt() {
        expectError("""
            @Persistent
            final class Account {
                let id: Int
                var owner: String
                var balance: Int = 0
            }
            """, "@Persistent class 'Account' has no initializer for 'id', 'owner': add one (it must be 'throws')", line: 2, column: 13,
            fixIt: "Add a memberwise initializer", fixed: """
            @Persistent
            final class Account {
                let id: Int
                var owner: String
                var balance: Int = 0

                init(id: Int, owner: String) throws {
                    self.id = id
                    self.owner = owner
                }
            }
            """)
    }
}
