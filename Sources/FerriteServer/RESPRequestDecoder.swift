import NIOCore

/// A request whose framing cannot be recovered: the server replies with the error and closes the
/// connection, as Redis does.
public struct RESPProtocolError: Error, Equatable, CustomStringConvertible {
    /// The reply text, without the leading `-`.
    public let message: String
    public var description: String { message }
    init(_ detail: String) { message = "ERR Protocol error: \(detail)" }
}

/// Splits the bytes of a connection into requests: RESP arrays of bulk strings (what clients
/// send), or inline commands (a line of words, what a person types into `telnet`).
///
/// Incremental: a bulk string split across many reads is not re-parsed from its start, and its
/// bytes are copied once. Limits protect the server: at most `maximumArguments` arguments, and
/// bulk strings and inline lines of at most `maximumBulkBytes` and 64 KiB.
public struct RESPRequestDecoder {
    public static let maximumInlineBytes = 64 << 10
    let maximumBulkBytes: Int
    let maximumArguments: Int

    /// The array being read: its announced length, the arguments read so far, and the length of
    /// the bulk string whose bytes are awaited.
    private var expected = 0
    private var arguments: [[UInt8]] = []
    private var bulkLength: Int?

    public init(maximumBulkBytes: Int = 512 << 20, maximumArguments: Int = 1 << 20) {
        self.maximumBulkBytes = maximumBulkBytes
        self.maximumArguments = maximumArguments
    }

    /// The next complete request in `buffer`, consuming its bytes; nil when more bytes are
    /// needed. Empty requests (a blank inline line, `*0`) are skipped.
    public mutating func next(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> [[UInt8]]? {
        while true {
            if expected == 0 {
                guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
                if first != UInt8(ascii: "*") {
                    guard let words = try inline(&buffer) else { return nil }
                    if words.isEmpty { continue }
                    return words
                }
                guard let line = try line(&buffer, limit: Self.maximumInlineBytes, tooLong: "too big mbulk count string") else { return nil }
                guard let count = Self.integer(line.dropFirst()), count <= maximumArguments else {
                    throw RESPProtocolError("invalid multibulk length")
                }
                if count <= 0 { continue }
                expected = count
                arguments.reserveCapacity(min(count, 1024))
            }
            while arguments.count < expected {
                if bulkLength == nil {
                    guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
                    guard first == UInt8(ascii: "$") else {
                        throw RESPProtocolError("expected '$', got '\(Self.printable(first))'")
                    }
                    guard let line = try line(&buffer, limit: Self.maximumInlineBytes, tooLong: "too big bulk count string") else { return nil }
                    guard let length = Self.integer(line.dropFirst()), length >= 0, length <= maximumBulkBytes else {
                        throw RESPProtocolError("invalid bulk length")
                    }
                    bulkLength = length
                }
                let length = bulkLength!
                guard buffer.readableBytes >= length + 2 else { return nil }
                let bytes = buffer.readBytes(length: length)!
                guard buffer.readInteger(as: UInt16.self) == 0x0D0A else { throw RESPProtocolError("bulk string not followed by CRLF") }
                arguments.append(bytes)
                bulkLength = nil
            }
            let request = arguments
            arguments = []
            expected = 0
            return request
        }
    }

    /// The bytes before the next CRLF (consumed with it), or nil if no CRLF has arrived yet.
    private func line(_ buffer: inout ByteBuffer, limit: Int, tooLong: String) throws(RESPProtocolError) -> ArraySlice<UInt8>? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > limit { throw RESPProtocolError(tooLong) }
            return nil
        }
        let length = newline - view.startIndex
        guard length >= 1, view[newline - 1] == UInt8(ascii: "\r") else { throw RESPProtocolError("line not terminated by CRLF") }
        let bytes = buffer.readBytes(length: length + 1)!
        return bytes[0 ..< length - 1]
    }

    /// An inline command: the words of the next line (ended by LF or CRLF), with Redis's
    /// quoting (`"..."` with backslash escapes, `'...'`).
    private func inline(_ buffer: inout ByteBuffer) throws(RESPProtocolError) -> [[UInt8]]? {
        let view = buffer.readableBytesView
        guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
            if view.count > Self.maximumInlineBytes { throw RESPProtocolError("too big inline request") }
            return nil
        }
        var line = Array(buffer.readBytes(length: newline - view.startIndex + 1)!.dropLast())
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard let words = Self.splitArguments(line) else { throw RESPProtocolError("unbalanced quotes in request") }
        return words
    }

    /// Splits a line into words as `redis-cli` and Redis's inline protocol do; nil on unbalanced
    /// quotes.
    static func splitArguments(_ line: [UInt8]) -> [[UInt8]]? {
        var words: [[UInt8]] = []
        var index = 0
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0B || byte == 0x0C }
        /// A closing quote must be followed by a space or the end of the line.
        func closesWord(at quote: Int) -> Bool { quote + 1 == line.count || isSpace(line[quote + 1]) }
        func hex(_ byte: UInt8) -> UInt8? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        while true {
            while index < line.count && isSpace(line[index]) { index += 1 }
            if index == line.count { return words }
            var word: [UInt8] = []
            var inDouble = false, inSingle = false
            while true {
                if inDouble {
                    guard index < line.count else { return nil }
                    let byte = line[index]
                    if byte == UInt8(ascii: "\\") && index + 3 < line.count && line[index + 1] == UInt8(ascii: "x"),
                       let high = hex(line[index + 2]), let low = hex(line[index + 3]) {
                        word.append(high << 4 | low)
                        index += 3
                    } else if byte == UInt8(ascii: "\\") && index + 1 < line.count {
                        index += 1
                        switch line[index] {
                        case UInt8(ascii: "n"): word.append(0x0A)
                        case UInt8(ascii: "r"): word.append(0x0D)
                        case UInt8(ascii: "t"): word.append(0x09)
                        case UInt8(ascii: "b"): word.append(0x08)
                        case UInt8(ascii: "a"): word.append(0x07)
                        default: word.append(line[index])
                        }
                    } else if byte == UInt8(ascii: "\"") {
                        guard closesWord(at: index) else { return nil }
                        index += 1
                        break
                    } else {
                        word.append(byte)
                    }
                    index += 1
                } else if inSingle {
                    guard index < line.count else { return nil }
                    let byte = line[index]
                    if byte == UInt8(ascii: "\\") && index + 1 < line.count && line[index + 1] == UInt8(ascii: "'") {
                        word.append(UInt8(ascii: "'"))
                        index += 1
                    } else if byte == UInt8(ascii: "'") {
                        guard closesWord(at: index) else { return nil }
                        index += 1
                        break
                    } else {
                        word.append(byte)
                    }
                    index += 1
                } else {
                    if index == line.count || isSpace(line[index]) { break }
                    let byte = line[index]
                    if byte == UInt8(ascii: "\"") { inDouble = true } else if byte == UInt8(ascii: "'") { inSingle = true } else { word.append(byte) }
                    index += 1
                }
            }
            words.append(word)
        }
    }

    /// A decimal integer (an optional minus sign and digits only), or nil.
    static func integer(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 20 else { return nil }
        var negative = false
        var digits = bytes[...]
        if digits.first == UInt8(ascii: "-") {
            negative = true
            digits = digits.dropFirst()
            guard !digits.isEmpty else { return nil }
        }
        var value = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int(byte - UInt8(ascii: "0")))
            guard !overflow1 && !overflow2 else { return nil }
            value = sum
        }
        return negative ? -value : value
    }

    static func printable(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? String(UnicodeScalar(byte)) : "\\x" + String(byte, radix: 16)
    }
}
