import SwiftDiagnostics
import SwiftSyntax

/// A diagnostic of `@Persistent`: what cannot be persisted, and how to fix it.
struct PersistentDiagnostic: DiagnosticMessage {
    let message: String
    let id: String
    var severity: DiagnosticSeverity { .error }
    var diagnosticID: MessageID { MessageID(domain: "FerriteMacros", id: id) }

    init(_ id: String, _ message: String) {
        self.id = id
        self.message = message
    }
}

/// A fix-it of `@Persistent`.
struct PersistentFixIt: FixItMessage {
    let message: String
    var fixItID: MessageID { MessageID(domain: "FerriteMacros", id: message) }
    init(_ message: String) { self.message = message }
}

extension Diagnostic {
    init(_ node: some SyntaxProtocol, _ id: String, _ message: String, fixIt: FixIt? = nil) {
        self.init(node: Syntax(node), message: PersistentDiagnostic(id, message), fixIts: fixIt.map { [$0] } ?? [])
    }
}
