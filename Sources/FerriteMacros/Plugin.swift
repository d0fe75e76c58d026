import SwiftCompilerPlugin
import SwiftSyntaxMacros

/// The compiler plugin that provides Ferrite's macros.
@main
struct FerriteMacrosPlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [PersistentMacro.self, PersistentPropertyMacro.self, PersistentInitializerMacro.self]
}
