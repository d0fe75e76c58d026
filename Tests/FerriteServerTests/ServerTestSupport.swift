import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A `ferrite serve` child process on a free port, for tests that drive the real server.
final class ServerProcess {
    let process = Process()
    let port: Int
    let pool: String
    private(set) var output = ""

    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ferrite").path
    }

    /// Starts the server and waits until it listens (its "listening" line).
    init(pool: String, port: Int? = nil, extraArguments: [String] = []) throws {
        self.pool = pool
        self.port = port ?? Self.freePort()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--port", String(self.port), "--pool", pool, "--metrics-port", "0", "--log-level", "warning"] + extraArguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = pipe.fileHandleForReading
        let deadline = Date().addingTimeInterval(60)
        while !(output.contains("ferrite: listening") && output.contains("durability")) {
            let chunk = reader.availableData
            if chunk.isEmpty || Date() > deadline {
                throw ServerTestError("the server did not start: \(output)")
            }
            output += String(decoding: chunk, as: UTF8.self)
        }
        // Keep draining its output so that it never blocks on a full pipe.
        reader.readabilityHandler = { handle in _ = handle.availableData }
    }

    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// SIGTERM, then waits for a clean exit.
    func terminate() -> Int32 {
        process.terminate()
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { kill() } }

    /// A port nobody listens on now (the kernel picks it).
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

struct ServerTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A reply as a test client reads it.
indirect enum Reply: Equatable, CustomStringConvertible {
    case simple(String), error(String), integer(Int), bulk(String), null, array([Reply])

    var description: String {
        switch self {
        case .simple(let s): return "+\(s)"
        case .error(let s): return "-\(s)"
        case .integer(let i): return ":\(i)"
        case .bulk(let s): return "\"\(s)\""
        case .null: return "(nil)"
        case .array(let a): return "\(a)"
        }
    }
}

/// A minimal blocking RESP2 client over a socket: raw bytes out, parsed replies in.
final class RawClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeoutSeconds: Int = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            throw ServerTestError("cannot connect to port \(port): errno \(errno)")
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ServerTestError("send failed: errno \(errno)") }
            sent += n
        }
    }

    /// The RESP encoding of a command.
    static func encode(_ arguments: [String]) -> [UInt8] {
        var out = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            let bytes = Array(argument.utf8)
            out += Array("$\(bytes.count)\r\n".utf8) + bytes + [13, 10]
        }
        return out
    }

    /// Sends one command and reads its reply.
    func call(_ arguments: String...) throws -> Reply { try call(arguments) }

    func call(_ arguments: [String]) throws -> Reply {
        try send(Self.encode(arguments))
        return try read()
    }

    /// Whether the server has closed the connection (reads EOF within the timeout).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &chunk, chunk.count, 0)
        guard n > 0 else { throw ServerTestError(n == 0 ? "connection closed" : "recv failed: errno \(errno)") }
        buffer += chunk[0..<n]
    }

    private func line() throws -> String {
        while true {
            if let index = buffer.firstIndex(of: 10), index > 0, buffer[index - 1] == 13 {
                let text = String(decoding: buffer[0..<(index - 1)], as: UTF8.self)
                buffer.removeFirst(index + 1)
                return text
            }
            try fill()
        }
    }

    func read() throws -> Reply {
        let header = try line()
        let rest = String(header.dropFirst())
        switch header.first {
        case "+": return .simple(rest)
        case "-": return .error(rest)
        case ":": return .integer(Int(rest)!)
        case "$":
            let length = Int(rest)!
            if length < 0 { return .null }
            while buffer.count < length + 2 { try fill() }
            let text = String(decoding: buffer[0..<length], as: UTF8.self)
            buffer.removeFirst(length + 2)
            return .bulk(text)
        case "*":
            let count = Int(rest)!
            if count < 0 { return .null }
            return .array(try (0..<count).map { _ in try read() })
        default:
            throw ServerTestError("unexpected reply line \(header)")
        }
    }
}

/// The Redis clients the integration tests drive: installed by .ci/run (Debian's redis-tools,
/// PyPI's redis). Without them those tests are skipped, unless FERRITE_REQUIRE_CLIENTS is set
/// (CI sets it), when their absence fails them.
enum RedisClients {
    static func find(_ program: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    static let redisCLI = find("redis-cli")
    static let python = find("python3")
    static let redisPy: Bool = {
        guard let python else { return false }
        return (try? run(python, ["-c", "import redis"]).status) == 0
    }()
    static let required = ProcessInfo.processInfo.environment["FERRITE_REQUIRE_CLIENTS"] != nil

    /// Runs a program to its end; returns its exit status and standard output.
    @discardableResult
    static func run(_ program: String, _ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        let inPipe = Pipe()
        if input != nil { process.standardInput = inPipe }
        try process.run()
        if let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try inPipe.fileHandleForWriting.close()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
