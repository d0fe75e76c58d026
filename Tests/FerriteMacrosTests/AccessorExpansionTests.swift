import Testing

@Suite struct PersistentAccessorExpansionTests {
    @Test func numberWithoutDefaultIsInitializedThroughTheHandle() {
        expect("""
            final class A {
                @PersistentProperty(offset: 8)
                var balance: Int
            }
            """, expands: """
            final class A {
                var balance: Int {
                    @storageRestrictions(initializes: _$balance, accesses: handle)
                    init(initialValue) {
                        handle[Int.self, at: 8] = initialValue
                        _$balance = FerriteObjects.PersistentPropertyInitialized()
                    }
                    get {
                        handle[Int.self, at: 8]
                    }
                    set {
                        handle[Int.self, at: 8] = newValue
                    }
                }
            }
            """)
    }

    @Test func propertyWithDefaultOnlyMarksItselfInitialized() {
        expect("""
            final class A {
                @PersistentProperty(offset: 0)
                var name: String = "unnamed"
            }
            """, expands: """
            final class A {
                var name: String {
                    @storageRestrictions(initializes: _$name)
                    init(initialValue) {
                        _$name = FerriteObjects.PersistentPropertyInitialized()
                    }
                    get {
                        FerriteObjects.PersistentFieldStorage.load(handle, 0, as: String.self)
                    }
                    set {
                        FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)
                    }
                }
            }
            """)
    }

    @Test func optionalsUseTheOptionalStorage() {
        expect("""
            final class A {
                @PersistentProperty(offset: 16)
                var branch: Optional<Branch>
            }
            """, expands: """
            final class A {
                var branch: Optional<Branch> {
                    @storageRestrictions(initializes: _$branch)
                    init(initialValue) {
                        _$branch = FerriteObjects.PersistentPropertyInitialized()
                    }
                    get {
                        FerriteObjects.PersistentFieldStorage.loadOptional(handle, 16, as: Branch.self)
                    }
                    set {
                        FerriteObjects.PersistentFieldStorage.storeOptional(newValue, handle, 16)
                    }
                }
            }
            """)
    }

    @Test func collectionsAndEnumsAreStoredThroughTheirConformance() {
        expect("""
            final class A {
                @PersistentProperty(offset: 0)
                var history: PersistentArray<Int>
            }
            """, expands: """
            final class A {
                var history: PersistentArray<Int> {
                    @storageRestrictions(initializes: _$history, accesses: handle)
                    init(initialValue) {
                        FerriteObjects.PersistentFieldStorage.initialize(initialValue, handle, 0)
                        _$history = FerriteObjects.PersistentPropertyInitialized()
                    }
                    get {
                        FerriteObjects.PersistentFieldStorage.load(handle, 0, as: PersistentArray<Int>.self)
                    }
                    set {
                        FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)
                    }
                }
            }
            """)
    }
}

@Suite struct PersistentInitializerExpansionTests {
    @Test func initializerAllocatesFirstAndFreesTheObjectIfItsBodyThrows() {
        expect("""
            final class Account {
                @PersistentInitializer(storesConstants: true)
                init(id: Int, owner: String) throws {
                    self.id = id
                    self.owner = try validated(owner)
                }
            }
            """, expands: """
            final class Account {
                init(id: Int, owner: String) throws {
                    let _$handle = try FerriteObjects.PersistentObjects.allocate(Account.self)
                    self.handle = _$handle
                    do {
                        self.id = id
                        self.owner = try validated(owner)
                        Account._$storeConstants(self)
                    } catch {
                        FerriteObjects.PersistentObjects.abandon(Account.self, _$handle)
                        throw error
                    }
                }
            }
            """)
    }

    @Test func initializerThatCannotThrowHasNoCatch() {
        expect("""
            final class Branch {
                @PersistentInitializer(storesConstants: false)
                init(name: String) throws {
                    self.name = name
                }
            }
            """, expands: """
            final class Branch {
                init(name: String) throws {
                    let _$handle = try FerriteObjects.PersistentObjects.allocate(Branch.self)
                    self.handle = _$handle
                    self.name = name
                }
            }
            """)
    }
}

@Suite struct PersistentAccessorFormsTests {
    /// (declared type, the getter's expression, the setter's statement) for every supported form.
    static let forms: [(String, String, String)] = [
        ("Int8", "handle[Int8.self, at: 0]", "handle[Int8.self, at: 0] = newValue"),
        ("UInt64", "handle[UInt64.self, at: 0]", "handle[UInt64.self, at: 0] = newValue"),
        ("Float", "handle[Float.self, at: 0]", "handle[Float.self, at: 0] = newValue"),
        ("Swift.Double", "handle[Swift.Double.self, at: 0]", "handle[Swift.Double.self, at: 0] = newValue"),
        ("Bool", "handle[Bool.self, at: 0]", "handle[Bool.self, at: 0] = newValue"),
        ("Int?", "FerriteObjects.PersistentFieldStorage.loadOptional(handle, 0, as: Int.self)", "FerriteObjects.PersistentFieldStorage.storeOptional(newValue, handle, 0)"),
        ("String", "FerriteObjects.PersistentFieldStorage.load(handle, 0, as: String.self)", "FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)"),
        ("[UInt8]?", "FerriteObjects.PersistentFieldStorage.loadOptional(handle, 0, as: [UInt8].self)", "FerriteObjects.PersistentFieldStorage.storeOptional(newValue, handle, 0)"),
        ("Array<UInt8>", "FerriteObjects.PersistentFieldStorage.load(handle, 0, as: [UInt8].self)", "FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)"),
        ("Data", "FerriteObjects.PersistentFieldStorage.load(handle, 0, as: Data.self)", "FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)"),
        ("UUID", "FerriteObjects.PersistentFieldStorage.load(handle, 0, as: UUID.self)", "FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)"),
        ("Foundation.Date?", "FerriteObjects.PersistentFieldStorage.loadOptional(handle, 0, as: Foundation.Date.self)", "FerriteObjects.PersistentFieldStorage.storeOptional(newValue, handle, 0)"),
        ("Tier", "FerriteObjects.PersistentFieldStorage.load(handle, 0, as: Tier.self)", "FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)"),
        ("Bank.Account?", "FerriteObjects.PersistentFieldStorage.loadOptional(handle, 0, as: Bank.Account.self)", "FerriteObjects.PersistentFieldStorage.storeOptional(newValue, handle, 0)"),
        ("PersistentDictionary<String, Account>", "FerriteObjects.PersistentFieldStorage.load(handle, 0, as: PersistentDictionary<String, Account>.self)", "FerriteObjects.PersistentFieldStorage.store(newValue, handle, 0)"),
    ]

    @Test("every supported property type gets in-place accessors", arguments: 0..<forms.count)
    func accessors(index: Int) {
        let (type, getter, setter) = Self.forms[index]
        expect("""
            final class A {
                @PersistentProperty(offset: 0)
                var value: \(type) = someDefault
            }
            """, expands: """
            final class A {
                var value: \(type) {
                    @storageRestrictions(initializes: _$value)
                    init(initialValue) {
                        _$value = FerriteObjects.PersistentPropertyInitialized()
                    }
                    get {
                        \(getter)
                    }
                    set {
                        \(setter)
                    }
                }
            }
            """)
    }
}
