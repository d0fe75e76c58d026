import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// `@Persistent`: adds the handle, the proxy initializer, the layout and the defaults to a class,
/// marks its stored properties and initializers for their own macros, and conforms it to
/// `PersistentModel`. Every diagnostic is reported here (once); the other roles stay silent and
/// expand nothing when the class has errors.
public struct PersistentMacro: MemberMacro, MemberAttributeMacro, ExtensionMacro {
    public static func expansion(of node: AttributeSyntax, providingMembersOf declaration: some DeclGroupSyntax,
                                 conformingTo protocols: [TypeSyntax], in context: some MacroExpansionContext) throws -> [DeclSyntax] {
        let (result, diagnostics) = ClassAnalysis.analyze(declaration, attribute: node)
        for diagnostic in diagnostics { context.diagnose(diagnostic) }
        guard let analysis = result else { return [] }
        guard analysis.canExpand else { return [] }
        return members(of: analysis, typeName: typeName(node, analysis))
    }

    public static func expansion(of node: AttributeSyntax, attachedTo declaration: some DeclGroupSyntax,
                                 providingAttributesFor member: some DeclSyntaxProtocol, in context: some MacroExpansionContext) throws -> [AttributeSyntax] {
        let (result, _) = ClassAnalysis.analyze(declaration, attribute: node)
        guard let analysis = result, analysis.canExpand else { return [] }
        if let variable = member.as(VariableDeclSyntax.self), variable.bindingSpecifier.tokenKind == .keyword(.var),
           let name = variable.bindings.first?.pattern.as(IdentifierPatternSyntax.self)?.identifier.text,
           let property = analysis.properties.first(where: { $0.name == name }) {
            return ["@FerriteObjects.PersistentProperty(offset: \(raw: property.offset))"]
        }
        if let initializer = member.as(InitializerDeclSyntax.self), analysis.designatedInitializers.contains(where: { $0.trimmedDescription == initializer.trimmedDescription }) {
            return ["@FerriteObjects.PersistentInitializer(storesConstants: \(raw: analysis.constants.isEmpty ? "false" : "true"))"]
        }
        return []
    }

    public static func expansion(of node: AttributeSyntax, attachedTo declaration: some DeclGroupSyntax, providingExtensionsOf type: some TypeSyntaxProtocol,
                                 conformingTo protocols: [TypeSyntax], in context: some MacroExpansionContext) throws -> [ExtensionDeclSyntax] {
        let (result, _) = ClassAnalysis.analyze(declaration, attribute: node)
        guard let analysis = result, analysis.canExpand else { return [] }
        return [try ExtensionDeclSyntax("extension \(type.trimmed): FerriteObjects.PersistentModel, @unchecked Sendable {}")]
    }

    private static func typeName(_ node: AttributeSyntax, _ analysis: ClassAnalysis) -> String {
        if case .argumentList(let arguments) = node.arguments, let first = arguments.first,
           first.expression.as(NilLiteralExprSyntax.self) == nil {
            return first.expression.trimmedDescription
        }
        return "String(reflecting: \(analysis.declaration.name.text).self)"
    }

    private static func members(of analysis: ClassAnalysis, typeName: String) -> [DeclSyntax] {
        let access = analysis.access
        let className = analysis.declaration.name.text
        var members: [DeclSyntax] = [
            "/// The persistent object this proxy reads and writes.\n\(raw: access)let handle: FerriteHeap.ObjectHandle",
        ]
        for property in analysis.properties where !property.isConstant {
            members.append("private var \(raw: property.marker): FerriteObjects.PersistentPropertyInitialized")
        }
        // Re-creating a proxy: mark the computed properties initialized, read the constants.
        var proxyBody = "self.handle = handle\n"
        for property in analysis.properties where property.needsMarker {
            proxyBody += "self.\(property.marker) = FerriteObjects.PersistentPropertyInitialized()\n"
        }
        for constant in analysis.constants {
            proxyBody += "self.\(constant.name) = \(PropertyCode.load(constant, handle: "handle"))\n"
        }
        members.append("""
            /// Re-creates a proxy for an existing object.
            \(raw: access)init(handle: FerriteHeap.ObjectHandle) {
            \(raw: proxyBody)}
            """)
        if analysis.designatedInitializers.isEmpty {
            members.append("""
                /// Allocates a new object, with every property at its default value, in the calling thread's current transaction.
                \(raw: access)init() throws {
                \(raw: PropertyCode.initializerPrologue(className: className))}
                """)
        }
        members.append("\(raw: access)static let persistentTypeName: String = \(raw: typeName)")
        members.append("\(raw: access)static let persistentSize: Int = \(raw: analysis.size)")
        let fields = analysis.properties.map { property in
            let type = property.type
            return "FerriteObjects.PersistentField(\"\(property.name)\", \(type.spelling).self, offset: \(property.offset), size: \(type.slotSize), optional: \(type.optional), hasDefault: \(property.hasDefault))"
        }
        members.append("\(raw: access)static let persistentFields: [FerriteObjects.PersistentField] = [\n\(raw: fields.joined(separator: ",\n"))\n]")
        var defaults = ""
        for property in analysis.properties {
            guard let initializer = property.initializer else { continue }
            defaults += "if oldSize <= \(property.offset) {\n    let value: \(property.typeSyntax.trimmedDescription) = \(initializer.trimmedDescription)\n    \(PropertyCode.initialize(property, value: "value", handle: "handle"))\n}\n"
        }
        members.append("""
            \(raw: access)static func persistentInitializeDefaults(_ handle: FerriteHeap.ObjectHandle, from oldSize: Int) throws(FerriteHeap.HeapError) {
            \(raw: defaults)}
            """)
        if !analysis.constants.isEmpty {
            let stores = analysis.constants.map { PropertyCode.initialize($0, value: "object.\($0.name)", handle: "object.handle") }.joined(separator: "\n")
            members.append("""
                /// Stores the `let` properties of a new object in the pool (its initializer's last step).
                static func _$storeConstants(_ object: \(raw: className)) {
                \(raw: stores)
                }
                """)
        }
        return members
    }
}

/// The code that reads, writes and initializes one property's field.
enum PropertyCode {
    static func load(_ property: PersistentPropertyInfo, handle: String) -> String {
        let type = property.type
        if type.kind == .trivial && !type.optional { return "\(handle)[\(type.spelling).self, at: \(property.offset)]" }
        let function = type.optional ? "loadOptional" : "load"
        return "FerriteObjects.PersistentFieldStorage.\(function)(\(handle), \(property.offset), as: \(type.spelling).self)"
    }

    static func store(_ property: PersistentPropertyInfo, value: String, handle: String) -> String {
        let type = property.type
        if type.kind == .trivial && !type.optional { return "\(handle)[\(type.spelling).self, at: \(property.offset)] = \(value)" }
        let function = type.optional ? "storeOptional" : "store"
        return "FerriteObjects.PersistentFieldStorage.\(function)(\(value), \(handle), \(property.offset))"
    }

    static func initialize(_ property: PersistentPropertyInfo, value: String, handle: String) -> String {
        let type = property.type
        if type.kind == .trivial && !type.optional { return "\(handle)[\(type.spelling).self, at: \(property.offset)] = \(value)" }
        let function = type.optional ? "initializeOptional" : "initialize"
        return "FerriteObjects.PersistentFieldStorage.\(function)(\(value), \(handle), \(property.offset))"
    }

    /// The first statements of every designated initializer: allocate the object (with its
    /// default values written).
    static func initializerPrologue(className: String) -> String {
        "let _$handle = try FerriteObjects.PersistentObjects.allocate(\(className).self)\nself.handle = _$handle\n"
    }
}
