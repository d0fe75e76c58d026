/// One client connection's protocol state.
public struct Session: Sendable {
    /// The client's id (`CLIENT ID`), unique in this server's run.
    public let id: Int
    /// 2 (RESP2) until `HELLO 3`.
    public internal(set) var protocolVersion = 2
    public internal(set) var isAuthenticated: Bool
    var name: String?
    /// The commands queued since MULTI; nil outside a transaction.
    var queued: [[[UInt8]]]?
    /// Whether a command queued since MULTI was refused (EXEC then discards the transaction).
    var queueFailed = false
    /// Set by QUIT: the connection closes once the reply is sent.
    public internal(set) var wantsClose = false

    public init(id: Int, isAuthenticated: Bool) {
        self.id = id
        self.isAuthenticated = isAuthenticated
    }
}
