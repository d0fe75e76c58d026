/// What the server knows of a command: its arity and flags (for dispatch, and for `COMMAND`,
/// which clients such as `redis-cli` read), and where its keys are.
struct CommandSpec: Sendable {
    enum Access: Sendable {
        /// Touches no data (connection and server commands).
        case none
        /// Reads the keyspace: runs under the shared lock.
        case read
        /// Changes the keyspace: runs under the exclusive lock, in a transaction.
        case write
    }

    let name: String
    /// Redis's convention: N exactly N arguments (the name included), -N at least N.
    let arity: Int
    let access: Access
    /// Extra flags reported by `COMMAND` (besides `write` / `readonly`).
    let flags: [String]
    let firstKey: Int
    let lastKey: Int
    let step: Int
    /// Allowed before AUTH when a password is set.
    let beforeAuth: Bool
    /// Runs at once even inside MULTI (not queued).
    let controlsTransaction: Bool

    init(_ name: String, _ arity: Int, _ access: Access, flags: [String] = [], keys: (Int, Int, Int) = (0, 0, 0),
         beforeAuth: Bool = false, controlsTransaction: Bool = false) {
        self.name = name
        self.arity = arity
        self.access = access
        self.flags = flags
        (firstKey, lastKey, step) = keys
        self.beforeAuth = beforeAuth
        self.controlsTransaction = controlsTransaction
    }

    func acceptsArgumentCount(_ count: Int) -> Bool { arity >= 0 ? count == arity : count >= -arity }

    /// Every command this server runs, by lowercased name.
    static let table: [String: CommandSpec] = {
        let specs: [CommandSpec] = [
            // Connection and server.
            CommandSpec("ping", -1, .none, flags: ["fast"]),
            CommandSpec("echo", 2, .none, flags: ["fast"]),
            CommandSpec("select", 2, .none, flags: ["fast"]),
            CommandSpec("quit", -1, .none, flags: ["fast"], beforeAuth: true, controlsTransaction: true),
            CommandSpec("auth", -2, .none, flags: ["fast", "no-auth"], beforeAuth: true),
            CommandSpec("hello", -1, .none, flags: ["fast", "no-auth"], beforeAuth: true),
            CommandSpec("client", -2, .none),
            CommandSpec("command", -1, .none),
            CommandSpec("config", -2, .none),
            CommandSpec("info", -1, .none),
            CommandSpec("time", 1, .none, flags: ["fast"]),
            CommandSpec("dbsize", 1, .read, flags: ["fast"]),
            CommandSpec("flushdb", -1, .write),
            CommandSpec("flushall", -1, .write),
            CommandSpec("multi", 1, .none, flags: ["fast"], controlsTransaction: true),
            CommandSpec("exec", 1, .none, controlsTransaction: true),
            CommandSpec("discard", 1, .none, flags: ["fast"], controlsTransaction: true),
            // Keys and strings.
            CommandSpec("get", 2, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("set", -3, .write, flags: ["denyoom"], keys: (1, 1, 1)),
            CommandSpec("setnx", 3, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("del", -2, .write, keys: (1, -1, 1)),
            CommandSpec("unlink", -2, .write, flags: ["fast"], keys: (1, -1, 1)),
            CommandSpec("exists", -2, .read, flags: ["fast"], keys: (1, -1, 1)),
            CommandSpec("type", 2, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("strlen", 2, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("mget", -2, .read, flags: ["fast"], keys: (1, -1, 1)),
            CommandSpec("mset", -3, .write, flags: ["denyoom"], keys: (1, -1, 2)),
            CommandSpec("incr", 2, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("decr", 2, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("incrby", 3, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("decrby", 3, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("scan", -2, .read),
            CommandSpec("keys", 2, .read),
            // Hashes.
            CommandSpec("hset", -4, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("hmset", -4, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("hget", 3, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("hmget", -3, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("hgetall", 2, .read, keys: (1, 1, 1)),
            CommandSpec("hdel", -3, .write, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("hlen", 2, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("hexists", 3, .read, flags: ["fast"], keys: (1, 1, 1)),
            // Sorted sets.
            CommandSpec("zadd", -4, .write, flags: ["denyoom", "fast"], keys: (1, 1, 1)),
            CommandSpec("zrem", -3, .write, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("zcard", 2, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("zscore", 3, .read, flags: ["fast"], keys: (1, 1, 1)),
            CommandSpec("zrange", -4, .read, keys: (1, 1, 1)),
            CommandSpec("zrangebyscore", -4, .read, keys: (1, 1, 1)),
            CommandSpec("zrevrange", -4, .read, keys: (1, 1, 1)),
            CommandSpec("zrevrangebyscore", -4, .read, keys: (1, 1, 1)),
        ]
        return Dictionary(uniqueKeysWithValues: specs.map { ($0.name, $0) })
    }()

    /// The lowercased name of a request's command, ASCII only (names are).
    static func name(of request: [[UInt8]]) -> String {
        String(decoding: request[0].map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// `COMMAND`'s description of this command (Redis's first six fields).
    var info: RESPReply {
        let accessFlag: [String] = switch access {
        case .write: ["write"]
        case .read: ["readonly"]
        case .none: []
        }
        return .array([
            .bulk(name), .integer(Int64(arity)),
            .array((accessFlag + flags).map { .simple($0) }),
            .integer(Int64(firstKey)), .integer(Int64(lastKey)), .integer(Int64(step)),
        ])
    }
}
