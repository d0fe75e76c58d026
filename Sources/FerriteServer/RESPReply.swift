import NIOCore

/// A reply in the Redis serialization protocol, encoded for the connection's protocol version
/// (RESP2, or RESP3 after `HELLO 3`).
///
/// RESP3-only kinds degrade as Redis degrades them for RESP2 clients: a map becomes a flat array
/// of keys and values, a double a bulk string, a null a null bulk string.
public enum RESPReply: Equatable, Sendable {
    /// `+OK`: a status line (must not contain CR or LF).
    case simple(String)
    /// `-ERR ...`: an error line; the text starts with its code (`ERR`, `WRONGTYPE`, `NOAUTH`...).
    case error(String)
    case integer(Int64)
    /// A binary-safe string.
    case bulk([UInt8])
    /// The absent value (a missing key): `$-1` in RESP2, `_` in RESP3.
    case null
    /// An absent array (`*-1` in RESP2, `_` in RESP3): EXEC after a failed WATCH, and the like.
    case nullArray
    case array([RESPReply])
    /// Key-value pairs: `%` in RESP3, a flat array in RESP2.
    case map([(RESPReply, RESPReply)])
    /// A floating-point number: `,` in RESP3, a bulk string in RESP2.
    case double(Double)

    public static let ok = RESPReply.simple("OK")

    /// A bulk string of a Swift string's UTF-8.
    public static func bulk(_ string: String) -> RESPReply { .bulk(Array(string.utf8)) }

    public static func == (lhs: RESPReply, rhs: RESPReply) -> Bool {
        switch (lhs, rhs) {
        case let (.simple(a), .simple(b)), let (.error(a), .error(b)): return a == b
        case let (.integer(a), .integer(b)): return a == b
        case let (.bulk(a), .bulk(b)): return a == b
        case (.null, .null), (.nullArray, .nullArray): return true
        case let (.array(a), .array(b)): return a == b
        case let (.map(a), .map(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.double(a), .double(b)): return a == b || (a.isNaN && b.isNaN)
        default: return false
        }
    }
}

extension RESPReply {
    /// Appends the encoding of this reply to `buffer`, for protocol version `protocolVersion`
    /// (2 or 3).
    public func write(to buffer: inout ByteBuffer, protocolVersion: Int) {
        switch self {
        case .simple(let text):
            buffer.writeInteger(UInt8(ascii: "+"))
            buffer.writeString(text)
            buffer.writeCRLF()
        case .error(let text):
            buffer.writeInteger(UInt8(ascii: "-"))
            // An error line cannot carry a line break: Redis replaces them with spaces too.
            buffer.writeString(text.contains(where: \.isNewline) ? String(text.map { $0.isNewline ? " " : $0 }) : text)
            buffer.writeCRLF()
        case .integer(let value):
            buffer.writeHeader(UInt8(ascii: ":"), value)
        case .bulk(let bytes):
            buffer.writeHeader(UInt8(ascii: "$"), Int64(bytes.count))
            buffer.writeBytes(bytes)
            buffer.writeCRLF()
        case .null:
            if protocolVersion >= 3 { buffer.writeStaticString("_\r\n") } else { buffer.writeStaticString("$-1\r\n") }
        case .nullArray:
            if protocolVersion >= 3 { buffer.writeStaticString("_\r\n") } else { buffer.writeStaticString("*-1\r\n") }
        case .array(let elements):
            buffer.writeHeader(UInt8(ascii: "*"), Int64(elements.count))
            for element in elements { element.write(to: &buffer, protocolVersion: protocolVersion) }
        case .map(let pairs):
            if protocolVersion >= 3 {
                buffer.writeHeader(UInt8(ascii: "%"), Int64(pairs.count))
            } else {
                buffer.writeHeader(UInt8(ascii: "*"), Int64(pairs.count * 2))
            }
            for (key, value) in pairs {
                key.write(to: &buffer, protocolVersion: protocolVersion)
                value.write(to: &buffer, protocolVersion: protocolVersion)
            }
        case .double(let value):
            let text = RESPReply.format(value)
            if protocolVersion >= 3 {
                buffer.writeInteger(UInt8(ascii: ","))
                buffer.writeString(text)
                buffer.writeCRLF()
            } else {
                RESPReply.bulk(text).write(to: &buffer, protocolVersion: protocolVersion)
            }
        }
    }

    /// A score as Redis prints it: `inf`, `-inf`, an integer without a fraction when exact, else
    /// the shortest representation that reads back to the same double.
    static func format(_ value: Double) -> String {
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        if value.isNaN { return "nan" }
        if value == value.rounded(), abs(value) < 1e17 { return String(Int64(value)) }
        return "\(value)"
    }
}

extension ByteBuffer {
    @inline(__always)
    mutating func writeCRLF() { writeInteger(UInt16(0x0D0A)) }

    /// A type byte, a decimal integer and CRLF.
    @inline(__always)
    mutating func writeHeader(_ type: UInt8, _ value: Int64) {
        writeInteger(type)
        if value >= 0 && value < 10 {
            writeInteger(UInt8(ascii: "0") + UInt8(value))
        } else {
            writeString(String(value))
        }
        writeCRLF()
    }
}
