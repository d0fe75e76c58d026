import SwiftSyntax

/// How a property's declared type is stored, decided from its spelling alone (a macro sees no
/// types): a fixed-size number or Bool, a value the runtime stores (String, bytes, Date, UUID), or
/// a type the macro cannot see (an enum, a `@Persistent` class, a collection), which gets an
/// 8-byte slot and must conform to `PersistentStorable` (checked by the compiler).
struct StoredType {
    enum Kind { case trivial, value, opaque }
    let kind: Kind
    /// The spelling of the non-optional type, as an expression (`Int`, `[UInt8]`, `Bank.Kind`).
    let spelling: String
    let optional: Bool
    /// Bytes of the value (without an optional's presence byte).
    let valueSize: Int
    /// Whether a value is one 8-byte reference (an optional stores nil as 0).
    let isReference: Bool

    var alignment: Int { min(8, valueSize) }
    /// Bytes of the slot the layout gives the property.
    var slotSize: Int {
        guard optional else { return valueSize }
        if isReference { return 8 }
        if kind == .opaque { return 16 }  // an 8-byte raw value and its presence byte, or a reference
        return (valueSize + 1 + alignment - 1) / alignment * alignment
    }

    static let trivialSizes: [String: Int] = [
        "Int": 8, "UInt": 8, "Int64": 8, "UInt64": 8, "Double": 8,
        "Int32": 4, "UInt32": 4, "Float": 4, "Int16": 2, "UInt16": 2, "Int8": 1, "UInt8": 1, "Bool": 1,
    ]
    static let valueTypes: [String: (size: Int, reference: Bool)] = [
        "String": (8, true), "Data": (8, true), "Date": (8, false), "UUID": (16, false),
    ]

    /// Classifies `type`, or returns why it cannot be stored (and a better spelling, if any).
    static func classify(_ type: TypeSyntax) -> Result<StoredType, Unsupported> {
        var inner = type
        var optional = false
        if let wrapped = type.as(OptionalTypeSyntax.self) {
            inner = wrapped.wrappedType
            optional = true
        } else if let identifier = type.as(IdentifierTypeSyntax.self), identifier.name.text == "Optional",
                  let argument = identifier.genericArgumentClause?.arguments.first, identifier.genericArgumentClause?.arguments.count == 1,
                  let argumentType = argument.argument.as(TypeSyntax.self) {
            inner = argumentType
            optional = true
        } else if type.is(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            return .failure(Unsupported(reason: "implicitly unwrapped optionals cannot be persisted", suggestion: nil))
        }
        if inner.is(OptionalTypeSyntax.self) || inner.is(ImplicitlyUnwrappedOptionalTypeSyntax.self) {
            return .failure(Unsupported(reason: "nested optionals cannot be persisted", suggestion: nil))
        }
        let spelling = inner.trimmedDescription
        var name = spelling
        for prefix in ["Swift.", "Foundation."] where name.hasPrefix(prefix) { name.removeFirst(prefix.count) }
        if let size = trivialSizes[name] {
            return .success(StoredType(kind: .trivial, spelling: spelling, optional: optional, valueSize: size, isReference: false))
        }
        if let value = valueTypes[name] {
            return .success(StoredType(kind: .value, spelling: spelling, optional: optional, valueSize: value.size, isReference: value.reference))
        }
        if let array = inner.as(ArrayTypeSyntax.self) {
            let element = array.element.trimmedDescription
            if element == "UInt8" || element == "Swift.UInt8" {
                return .success(StoredType(kind: .value, spelling: "[UInt8]", optional: optional, valueSize: 8, isReference: true))
            }
            return .failure(Unsupported(reason: "Swift arrays other than [UInt8] cannot be persisted in place",
                                        suggestion: "PersistentArray<\(element)>"))
        }
        if let identifier = inner.as(IdentifierTypeSyntax.self), identifier.name.text == "Array",
           let arguments = identifier.genericArgumentClause?.arguments, arguments.count == 1 {
            let element = arguments.first!.argument.trimmedDescription
            if element == "UInt8" || element == "Swift.UInt8" {
                return .success(StoredType(kind: .value, spelling: "[UInt8]", optional: optional, valueSize: 8, isReference: true))
            }
            return .failure(Unsupported(reason: "Swift arrays other than [UInt8] cannot be persisted in place",
                                        suggestion: "PersistentArray<\(element)>"))
        }
        if let dictionary = inner.as(DictionaryTypeSyntax.self) {
            return .failure(Unsupported(reason: "Swift dictionaries cannot be persisted in place",
                                        suggestion: "PersistentDictionary<\(dictionary.key.trimmedDescription), \(dictionary.value.trimmedDescription)>"))
        }
        if let identifier = inner.as(IdentifierTypeSyntax.self) {
            switch identifier.name.text {
            case "Dictionary":
                let arguments = identifier.genericArgumentClause?.arguments.map(\.argument.trimmedDescription) ?? []
                return .failure(Unsupported(reason: "Swift dictionaries cannot be persisted in place",
                                            suggestion: arguments.count == 2 ? "PersistentDictionary<\(arguments[0]), \(arguments[1])>" : nil))
            case "Set":
                return .failure(Unsupported(reason: "Swift sets cannot be persisted in place", suggestion: nil))
            case "Any", "AnyObject", "Character", "Substring", "Decimal", "URL", "Int128", "UInt128":
                return .failure(Unsupported(reason: "'\(identifier.name.text)' cannot be persisted", suggestion: nil))
            default:
                break
            }
            return .success(StoredType(kind: .opaque, spelling: spelling, optional: optional, valueSize: 8, isReference: false))
        }
        if inner.is(MemberTypeSyntax.self) {
            return .success(StoredType(kind: .opaque, spelling: spelling, optional: optional, valueSize: 8, isReference: false))
        }
        if inner.is(TupleTypeSyntax.self) {
            return .failure(Unsupported(reason: "tuples cannot be persisted; declare one property per element", suggestion: nil))
        }
        if inner.is(FunctionTypeSyntax.self) || inner.is(AttributedTypeSyntax.self) {
            return .failure(Unsupported(reason: "closures cannot be persisted", suggestion: nil))
        }
        if inner.is(SomeOrAnyTypeSyntax.self) || inner.is(CompositionTypeSyntax.self) {
            return .failure(Unsupported(reason: "existential and opaque types cannot be persisted: declare the concrete type", suggestion: nil))
        }
        return .failure(Unsupported(reason: "'\(spelling)' cannot be persisted", suggestion: nil))
    }

    struct Unsupported: Error {
        let reason: String
        let suggestion: String?
    }
}

/// A stored property of the class and where it lives.
struct PersistentPropertyInfo {
    let name: String
    let declaration: VariableDeclSyntax
    let type: StoredType
    let typeSyntax: TypeSyntax
    let initializer: ExprSyntax?
    let isConstant: Bool
    var offset = 0

    /// Whether new objects (and old ones gaining the property) get a value without an initializer
    /// assigning one: an explicit default, or nil for an optional `var`.
    var hasDefault: Bool { initializer != nil || (type.optional && !isConstant) }
    /// Whether an initializer must give it a value (through its init accessor): a `var` without a
    /// default. (Swift runs the init accessor of a property with a default value, explicit or an
    /// optional's implicit nil, at the start of every initializer.)
    var needsMarker: Bool { !isConstant && !hasDefault }
    var marker: String { "_$" + name }
}
