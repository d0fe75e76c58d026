@_exported import FerriteCollections
@_exported import FerriteHeap

/// Makes a final class persistent: its stored properties live in a persistent object in the pool
/// and are read and written in place, with no copy.
///
/// ```swift
/// @Persistent
/// final class Account {
///     let id: Int
///     var balance: Int = 0
///     var owner: String
///     var branch: Branch?
///
///     init(id: Int, owner: String) throws {
///         self.id = id
///         self.owner = owner
///     }
/// }
///
/// try heap.transaction {
///     let account = try Account(id: 1, owner: "Ada")   // allocated in `heap`, in this transaction
///     account.balance += 100
///     try heap.setRoot("ada", to: account)
/// }
/// ```
///
/// The macro computes the layout at compile time (declaration order, natural alignment), turns
/// each stored `var` into accessors that read and write the object's fields in place (writes join
/// the current transaction, or are a transaction of their own outside one), and makes the class a
/// ``PersistentModel`` (so a ``PersistentObject`` with a registered, versioned layout, and a value
/// persistent collections can hold). Its initializers must be `throws`: they allocate the object in
/// the calling thread's current transaction (``Heap/current``), so creating one outside
/// `heap.transaction { }` throws ``HeapError/notInTransaction(operation:)``. A `let` property is
/// stored in the pool when the initializer ends and read once when a proxy is made; after that it
/// is a plain stored property of the proxy.
///
/// Supported property types: integers of every width, `Double`, `Float`, `Bool`, enums declared
/// ``PersistentRawRepresentable`` (integer, floating-point or `Bool` raw values), `String`,
/// `[UInt8]`, `Data`, `UUID`, `Date`, other `@Persistent` classes (references), persistent
/// collections, and optionals of all of these. Anything else is a compile-time error.
///
/// - Parameter name: The persistent type name, stable forever (the type id derives from it). The
///   default is the class's name as `String(reflecting:)` spells it (`Module.Account`): renaming
///   the class or its module then orphans existing objects, so name it explicitly if you might.
@attached(member, names: named(handle), named(init(handle:)), named(init), named(persistentTypeName),
          named(persistentSize), named(persistentFields), named(persistentInitializeDefaults), arbitrary)
@attached(memberAttribute)
@attached(extension, conformances: PersistentModel, Sendable)
public macro Persistent(_ name: String? = nil) = #externalMacro(module: "FerriteMacros", type: "PersistentMacro")

/// Turns a stored property of a `@Persistent` class into accessors of its field at `offset`.
/// `@Persistent` adds it; do not write it yourself.
@attached(accessor, names: named(init), named(get), named(set))
public macro PersistentProperty(offset: Int) = #externalMacro(module: "FerriteMacros", type: "PersistentPropertyMacro")

/// Makes an initializer of a `@Persistent` class allocate its object first. `@Persistent` adds
/// it; do not write it yourself.
@attached(body)
public macro PersistentInitializer(storesConstants: Bool) = #externalMacro(module: "FerriteMacros", type: "PersistentInitializerMacro")
