import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder

/// What `@Persistent` reads from a class: its stored properties with their layout, its
/// initializers, and everything that keeps it from being persisted.
struct ClassAnalysis {
    let declaration: ClassDeclSyntax
    var properties: [PersistentPropertyInfo] = []
    var designatedInitializers: [InitializerDeclSyntax] = []
    var diagnostics: [Diagnostic] = []
    /// Bytes of fields.
    var size = 0
    /// `public `, `package ` or nothing: the access the protocol witnesses need.
    var access = ""

    var constants: [PersistentPropertyInfo] { properties.filter(\.isConstant) }
    var canExpand: Bool { diagnostics.isEmpty }

    /// Analyzes `node`, or returns nil (after diagnosing) when it is not a class.
    static func analyze(_ node: some DeclGroupSyntax, attribute: AttributeSyntax) -> (ClassAnalysis?, [Diagnostic]) {
        guard let declaration = node.as(ClassDeclSyntax.self) else {
            let kind: String
            var fixIt: FixIt?
            if let structure = node.as(StructDeclSyntax.self) {
                kind = "a struct"
                fixIt = FixIt(message: PersistentFixIt("Make it a final class"), changes: [
                    .replace(oldNode: Syntax(structure.structKeyword), newNode: Syntax(TokenSyntax.identifier("final class")
                        .with(\.leadingTrivia, structure.structKeyword.leadingTrivia).with(\.trailingTrivia, .space))),
                ])
            } else if node.is(EnumDeclSyntax.self) {
                kind = "an enum (enums are stored as fields: declare it PersistentRawRepresentable)"
            } else if node.is(ActorDeclSyntax.self) {
                kind = "an actor"
            } else {
                kind = "this declaration"
            }
            return (nil, [Diagnostic(attribute, "notAClass", "@Persistent applies to a final class, not to \(kind)", fixIt: fixIt)])
        }
        var analysis = ClassAnalysis(declaration: declaration)
        analysis.run()
        return (analysis, analysis.diagnostics)
    }

    private mutating func run() {
        let modifiers = declaration.modifiers.map(\.name.text)
        if modifiers.contains("public") || modifiers.contains("open") { access = "public " } else if modifiers.contains("package") { access = "package " }
        if modifiers.contains("open") {
            diagnostics.append(Diagnostic(declaration.name, "open", "a @Persistent class cannot be open: subclasses could not add stored properties to its layout"))
        } else if !modifiers.contains("final") {
            var newModifiers = declaration.modifiers
            newModifiers.append(DeclModifierSyntax(name: .keyword(.final), trailingTrivia: .space))
            diagnostics.append(Diagnostic(declaration.name, "notFinal", "a @Persistent class must be final: subclasses could not add stored properties to its layout",
                                          fixIt: FixIt(message: PersistentFixIt("Add 'final'"), changes: [
                                              .replace(oldNode: Syntax(declaration.classKeyword), newNode: Syntax(TokenSyntax.identifier("final class").with(\.leadingTrivia, declaration.classKeyword.leadingTrivia).with(\.trailingTrivia, .space))),
                                          ])))
        }
        if let generics = declaration.genericParameterClause {
            diagnostics.append(Diagnostic(generics, "generic", "a @Persistent class cannot be generic: its layout must be known at compile time"))
        }
        for member in declaration.memberBlock.members {
            if let variable = member.decl.as(VariableDeclSyntax.self) {
                inspect(variable)
            } else if let initializer = member.decl.as(InitializerDeclSyntax.self) {
                inspect(initializer)
            }
        }
        layOut()
        checkInitializers()
        checkMissingInitializer()
    }

    /// A class without initializers gets `init()` if every property has a default; otherwise
    /// it is an error, with a memberwise initializer as its fix-it.
    private mutating func checkMissingInitializer() {
        guard diagnostics.isEmpty, designatedInitializers.isEmpty, !requiredProperties.isEmpty else { return }
        let members = declaration.memberBlock
        let missing = requiredProperties.map { "'\($0.name)'" }.joined(separator: ", ")
        var withInitializer = members
        withInitializer.members.append(MemberBlockItemSyntax(decl: DeclSyntax(stringLiteral: memberwiseInitializer)))
        diagnostics.append(Diagnostic(declaration.name, "noInitializer",
            "@Persistent class '\(declaration.name.text)' has no initializer for \(missing): add one (it must be 'throws')",
            fixIt: FixIt(message: PersistentFixIt("Add a memberwise initializer"), changes: [.replace(oldNode: Syntax(members), newNode: Syntax(withInitializer))])))
    }

    private mutating func inspect(_ variable: VariableDeclSyntax) {
        let modifiers = variable.modifiers.map(\.name.text)
        if modifiers.contains("static") || modifiers.contains("class") { return }
        // Computed properties are the class's own business.
        if variable.bindings.count == 1, let accessors = variable.bindings.first?.accessorBlock {
            if case .accessors(let list) = accessors.accessors,
               list.allSatisfy({ ["willSet", "didSet"].contains($0.accessorSpecifier.text) }) {
                diagnostics.append(Diagnostic(accessors, "observer", "property observers (willSet, didSet) cannot run on a @Persistent property: its value lives in the pool and is written in place"))
            }
            return
        }
        for name in variable.bindings.compactMap({ $0.pattern.as(IdentifierPatternSyntax.self)?.identifier.text }) where name == "handle" {
            diagnostics.append(Diagnostic(variable, "handleName", "'handle' is the persistent object's handle in a @Persistent class: rename this property"))
            return
        }
        if modifiers.contains("lazy") {
            diagnostics.append(Diagnostic(variable, "lazy", "a lazy property cannot be persisted: give it a default value instead"))
            return
        }
        if let weak = variable.modifiers.first(where: { ["weak", "unowned"].contains($0.name.text) }) {
            diagnostics.append(Diagnostic(weak, "weak", "'\(weak.name.text)' has no meaning for a persistent reference: remove it"))
            return
        }
        if let attribute = variable.attributes.first {
            let name = attribute.as(AttributeSyntax.self)?.attributeName.trimmedDescription ?? "attribute"
            diagnostics.append(Diagnostic(attribute, "wrapper", "@\(name) cannot be applied to a @Persistent property: its value lives in the pool, not in a wrapper"))
            return
        }
        guard variable.bindings.count == 1, let binding = variable.bindings.first else {
            diagnostics.append(Diagnostic(variable, "multipleBindings", "declare each @Persistent property on its own line"))
            return
        }
        guard let pattern = binding.pattern.as(IdentifierPatternSyntax.self) else {
            diagnostics.append(Diagnostic(binding.pattern, "pattern", "declare each @Persistent property with a plain name"))
            return
        }
        let isConstant = variable.bindingSpecifier.tokenKind == .keyword(.let)
        guard let annotation = binding.typeAnnotation else {
            diagnostics.append(Diagnostic(binding.pattern, "noType", "a @Persistent property needs an explicit type: its layout is computed from it (write '\(pattern.identifier.text): Type')"))
            return
        }
        if isConstant, let initializer = binding.initializer {
            var replaced = variable
            replaced.bindingSpecifier = .keyword(.var, leadingTrivia: variable.bindingSpecifier.leadingTrivia, trailingTrivia: .space)
            diagnostics.append(Diagnostic(initializer, "constantDefault", "a 'let' with a default value would be the same in every object: make it 'static let', or 'var' to store it in each object",
                                          fixIt: FixIt(message: PersistentFixIt("Make it 'var'"), changes: [.replace(oldNode: Syntax(variable.bindingSpecifier), newNode: Syntax(replaced.bindingSpecifier))])))
            return
        }
        switch StoredType.classify(annotation.type) {
        case .success(let type):
            properties.append(PersistentPropertyInfo(name: pattern.identifier.text, declaration: variable, type: type, typeSyntax: annotation.type.trimmed,
                                                     initializer: binding.initializer?.value.trimmed, isConstant: isConstant))
        case .failure(let unsupported):
            var fixIt: FixIt?
            if let suggestion = unsupported.suggestion {
                let wrapped = annotation.type.is(OptionalTypeSyntax.self) ? suggestion + "?" : suggestion
                fixIt = FixIt(message: PersistentFixIt("Use '\(wrapped)'"), changes: [
                    .replace(oldNode: Syntax(annotation.type), newNode: Syntax(TypeSyntax(stringLiteral: wrapped).with(\.trailingTrivia, annotation.type.trailingTrivia))),
                ])
            }
            let hint = unsupported.suggestion.map { " (use \($0), which lives in the pool)" } ?? ""
            diagnostics.append(Diagnostic(annotation.type, "unsupportedType", "property '\(pattern.identifier.text)': \(unsupported.reason)\(hint)", fixIt: fixIt))
        }
    }

    private mutating func inspect(_ initializer: InitializerDeclSyntax) {
        if initializer.modifiers.contains(where: { $0.name.text == "convenience" }) { return }
        designatedInitializers.append(initializer)
        if initializer.optionalMark != nil {
            diagnostics.append(Diagnostic(initializer.optionalMark!, "failable", "a @Persistent initializer cannot be failable: it allocates the object first; throw an error instead"))
        }
        let effects = initializer.signature.effectSpecifiers
        if effects?.throwsClause == nil {
            var signature = initializer.signature
            let trailing = signature.parameterClause.rightParen.trailingTrivia
            signature.parameterClause.rightParen.trailingTrivia = []
            var specifiers = signature.effectSpecifiers ?? FunctionEffectSpecifiersSyntax()
            specifiers.throwsClause = ThrowsClauseSyntax(throwsSpecifier: .keyword(.throws, leadingTrivia: .space, trailingTrivia: trailing))
            signature.effectSpecifiers = specifiers
            diagnostics.append(Diagnostic(initializer.initKeyword, "notThrowing", "a @Persistent initializer must be 'throws': it allocates the object in the pool, which can fail (no transaction, a full pool)",
                                          fixIt: FixIt(message: PersistentFixIt("Add 'throws'"), changes: [.replace(oldNode: Syntax(initializer.signature), newNode: Syntax(signature))])))
        } else if let type = effects?.throwsClause?.type {
            diagnostics.append(Diagnostic(type, "typedThrows", "a @Persistent initializer must throw any Error (untyped 'throws'): it can throw HeapError"))
        }
    }

    /// Declaration order, natural alignment; the fields end on an 8-byte boundary.
    private mutating func layOut() {
        var offset = 0
        for index in properties.indices {
            let type = properties[index].type
            let alignment = type.alignment
            offset = (offset + alignment - 1) / alignment * alignment
            properties[index].offset = offset
            offset += type.slotSize
        }
        size = max(8, (offset + 7) / 8 * 8)
    }

    private mutating func checkInitializers() {
        guard !constants.isEmpty else { return }
        for initializer in designatedInitializers {
            if let body = initializer.body, let early = ReturnFinder.firstReturn(in: body) {
                diagnostics.append(Diagnostic(early, "earlyReturn", "an initializer of a @Persistent class with 'let' properties cannot return early: they are stored in the pool when it ends"))
            }
        }
    }

    /// Properties an initializer must be given values for.
    var requiredProperties: [PersistentPropertyInfo] { properties.filter { !$0.hasDefault } }

    /// A memberwise initializer, for the fix-it of a class without one.
    var memberwiseInitializer: String {
        let required = requiredProperties
        let parameters = required.map { "\($0.name): \($0.typeSyntax.trimmedDescription)" }.joined(separator: ", ")
        let assignments = required.map { "        self.\($0.name) = \($0.name)\n" }.joined()
        return "\n\n    \(access)init(\(parameters)) throws {\n\(assignments)    }"
    }
}

/// Finds `return` statements of an initializer's own body (not of closures or nested functions).
final class ReturnFinder: SyntaxVisitor {
    var found: ReturnStmtSyntax?

    static func firstReturn(in body: CodeBlockSyntax) -> ReturnStmtSyntax? {
        let finder = ReturnFinder(viewMode: .sourceAccurate)
        finder.walk(body)
        return finder.found
    }

    override func visit(_ node: ReturnStmtSyntax) -> SyntaxVisitorContinueKind {
        if found == nil { found = node }
        return .skipChildren
    }
    override func visit(_ node: ClosureExprSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: FunctionDeclSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
}

/// Whether a body contains `try` outside closures and nested functions (so that a `do`/`catch`
/// around it is not dead code).
final class TryFinder: SyntaxVisitor {
    var found = false

    static func containsTry(_ items: CodeBlockItemListSyntax) -> Bool {
        let finder = TryFinder(viewMode: .sourceAccurate)
        finder.walk(items)
        return finder.found
    }

    override func visit(_ node: TryExprSyntax) -> SyntaxVisitorContinueKind {
        if node.questionOrExclamationMark == nil { found = true }
        return .visitChildren
    }
    override func visit(_ node: ThrowStmtSyntax) -> SyntaxVisitorContinueKind {
        found = true
        return .skipChildren
    }
    override func visit(_ node: ClosureExprSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
    override func visit(_ node: FunctionDeclSyntax) -> SyntaxVisitorContinueKind { .skipChildren }
}
