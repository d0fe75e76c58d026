import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@PersistentProperty(offset:)`: a stored `var` becomes accessors of its field. Its init
/// accessor writes the first value into the new object (a property with a default value only
/// marks itself initialized: `PersistentObjects.allocate` already wrote the default).
public struct PersistentPropertyMacro: AccessorMacro {
    public static func expansion(of node: AttributeSyntax, providingAccessorsOf declaration: some DeclSyntaxProtocol,
                                 in context: some MacroExpansionContext) throws -> [AccessorDeclSyntax] {
        guard let variable = declaration.as(VariableDeclSyntax.self), let binding = variable.bindings.first,
              let name = binding.pattern.as(IdentifierPatternSyntax.self)?.identifier.text,
              let typeSyntax = binding.typeAnnotation?.type,
              case .argumentList(let arguments) = node.arguments,
              let offset = arguments.first.flatMap({ Int($0.expression.trimmedDescription) }),
              case .success(let type) = StoredType.classify(typeSyntax) else { return [] }
        let property = PersistentPropertyInfo(name: name, declaration: variable, type: type, typeSyntax: typeSyntax.trimmed,
                                              initializer: binding.initializer?.value, isConstant: false, offset: offset)
        let initAccessor: AccessorDeclSyntax = !property.hasDefault
            ? """
              @storageRestrictions(initializes: \(raw: property.marker), accesses: handle)
              init(initialValue) {
                  \(raw: PropertyCode.initialize(property, value: "initialValue", handle: "handle"))
                  \(raw: property.marker) = FerriteObjects.PersistentPropertyInitialized()
              }
              """
            : """
              @storageRestrictions(initializes: \(raw: property.marker))
              init(initialValue) {
                  \(raw: property.marker) = FerriteObjects.PersistentPropertyInitialized()
              }
              """
        return [
            initAccessor,
            "get { \(raw: PropertyCode.load(property, handle: "handle")) }",
            "set { \(raw: PropertyCode.store(property, value: "newValue", handle: "handle")) }",
        ]
    }
}

/// `@PersistentInitializer`: an initializer first allocates its object in the current
/// transaction, then runs its own body; if that throws, the object (and what it owns) is freed
/// before the error goes on. `let` properties are stored in the pool at the end.
public struct PersistentInitializerMacro: BodyMacro {
    public static func expansion(of node: AttributeSyntax, providingBodyFor declaration: some DeclSyntaxProtocol & WithOptionalCodeBlockSyntax,
                                 in context: some MacroExpansionContext) throws -> [CodeBlockItemSyntax] {
        guard let body = declaration.body else { return [] }
        var storesConstants = false
        if case .argumentList(let arguments) = node.arguments, let argument = arguments.first(where: { $0.label?.text == "storesConstants" }) {
            storesConstants = argument.expression.trimmedDescription == "true"
        }
        let className = context.lexicalContext.lazy.compactMap { $0.as(ClassDeclSyntax.self)?.name.text }.first ?? "Self"
        var items: [CodeBlockItemSyntax] = CodeBlockItemListSyntax(stringLiteral: PropertyCode.initializerPrologue(className: className)).map { $0 }
        var statements = body.statements.map(\.trimmedDescription)
        if storesConstants { statements.append("\(className)._$storeConstants(self)") }
        let inner = statements.joined(separator: "\n")
        if TryFinder.containsTry(body.statements) {
            items.append("""
                do {
                \(raw: inner)
                } catch {
                    FerriteObjects.PersistentObjects.abandon(\(raw: className).self, _$handle)
                    throw error
                }
                """)
        } else {
            items += CodeBlockItemListSyntax(stringLiteral: inner).map { $0 }
        }
        return items
    }
}
