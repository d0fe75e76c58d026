import NIOCore
import Testing
@testable import FerriteServer

@Suite struct RESPTests {
    static func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Feeds `input` to a decoder in pieces of `chunk` bytes; returns the requests and the error.
    static func decode(_ input: [UInt8], chunk: Int, maximumBulkBytes: Int = 1 << 20) -> ([[[UInt8]]], RESPProtocolError?) {
        var decoder = RESPRequestDecoder(maximumBulkBytes: maximumBulkBytes, maximumArguments: 1000)
        var buffer = ByteBuffer()
        var requests: [[[UInt8]]] = []
        var offset = 0
        while offset < input.count {
            let end = min(offset + chunk, input.count)
            buffer.writeBytes(input[offset..<end])
            offset = end
            do {
                while let request = try decoder.next(&buffer) { requests.append(request) }
            } catch {
                return (requests, error)
            }
        }
        return (requests, nil)
    }

    @Test(arguments: [1, 2, 3, 7, 64, 4096])
    func requestsSplitAtAnyByteDecodeTheSame(chunk: Int) {
        let input = Self.bytes("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nab\r\nc\r\n*1\r\n$4\r\nPING\r\nGET  k\r\n*0\r\n\r\nECHO \"x y\"\n")
        let (requests, error) = Self.decode(input, chunk: chunk)
        #expect(error == nil)
        #expect(requests == [
            [Self.bytes("SET"), Self.bytes("k"), Self.bytes("ab\r\nc")],
            [Self.bytes("PING")],
            [Self.bytes("GET"), Self.bytes("k")],
            [Self.bytes("ECHO"), Self.bytes("x y")],
        ])
    }

    @Test func inlineCommandsSplitLikeRedis() {
        #expect(RESPRequestDecoder.splitArguments(Self.bytes("set k \"a b\\n\\x41\" 'it\\'s'")) == [Self.bytes("set"), Self.bytes("k"), Self.bytes("a b\nA"), Self.bytes("it's")])
        #expect(RESPRequestDecoder.splitArguments(Self.bytes("set \"open")) == nil)
        #expect(RESPRequestDecoder.splitArguments(Self.bytes("set \"a\"b")) == nil)
        #expect(RESPRequestDecoder.splitArguments(Self.bytes("   ")) == [])
    }

    @Test(arguments: [
        ("*x\r\n", "invalid multibulk length"),
        ("*2000\r\n", "invalid multibulk length"),
        ("*1\r\n:5\r\n", "expected '$', got ':'"),
        ("*1\r\n$-3\r\n", "invalid bulk length"),
        ("*1\r\n$99999999\r\n", "invalid bulk length"),
        ("*1\r\n$3\r\nabcde\r\n", "bulk string not followed by CRLF"),
        ("SET \"a\n", "unbalanced quotes"),
        ("*1\n", "line not terminated by CRLF"),
    ])
    func malformedFramingIsAProtocolError(input: String, message: String) {
        let (_, error) = Self.decode(Self.bytes(input), chunk: 3)
        #expect(error?.message.contains(message) == true, "\(input.debugDescription): \(String(describing: error))")
        #expect(error?.message.hasPrefix("ERR Protocol error") == true)
    }

    @Test func endlessLinesAreRefusedBeforeTheyFillMemory() {
        let (_, inline) = Self.decode([UInt8](repeating: UInt8(ascii: "a"), count: RESPRequestDecoder.maximumInlineBytes + 10), chunk: 8192)
        #expect(inline?.message.contains("too big inline request") == true)
        let (_, count) = Self.decode(Self.bytes("*") + [UInt8](repeating: UInt8(ascii: "1"), count: RESPRequestDecoder.maximumInlineBytes + 10), chunk: 8192)
        #expect(count?.message.contains("too big mbulk count string") == true)
    }

    static func encoded(_ reply: RESPReply, _ version: Int) -> String {
        var buffer = ByteBuffer()
        reply.write(to: &buffer, protocolVersion: version)
        return String(buffer: buffer)
    }

    @Test func repliesEncodeAsRESP2AndRESP3() {
        let map = RESPReply.map([(.bulk("a"), .integer(1))])
        #expect(Self.encoded(map, 2) == "*2\r\n$1\r\na\r\n:1\r\n")
        #expect(Self.encoded(map, 3) == "%1\r\n$1\r\na\r\n:1\r\n")
        #expect(Self.encoded(.null, 2) == "$-1\r\n")
        #expect(Self.encoded(.null, 3) == "_\r\n")
        #expect(Self.encoded(.nullArray, 2) == "*-1\r\n")
        #expect(Self.encoded(.double(2.5), 2) == "$3\r\n2.5\r\n")
        #expect(Self.encoded(.double(3), 3) == ",3\r\n")
        #expect(Self.encoded(.double(-.infinity), 3) == ",-inf\r\n")
        #expect(Self.encoded(.error("ERR a\nb"), 2) == "-ERR a b\r\n")
        #expect(Self.encoded(.array([.simple("OK"), .integer(-12), .bulk([])]), 2) == "*3\r\n+OK\r\n:-12\r\n$0\r\n\r\n")
    }

    @Test func globPatternsMatchLikeRedis() {
        func match(_ pattern: String, _ string: String) -> Bool { GlobPattern(Self.bytes(pattern)).matches(Self.bytes(string)) }
        #expect(match("*", "anything"))
        #expect(match("user:*", "user:1") && !match("user:*", "item:1"))
        #expect(match("h?llo", "hello") && !match("h?llo", "hllo"))
        #expect(match("h[ae]llo", "hallo") && !match("h[ae]llo", "hillo"))
        #expect(match("h[^e]llo", "hallo") && !match("h[^e]llo", "hello"))
        #expect(match("h[a-c]llo", "hbllo") && !match("h[a-c]llo", "hdllo"))
        #expect(match("a\\*b", "a*b") && !match("a\\*b", "axb"))
        #expect(match("*a*b*", "xxaxxbxx") && !match("*a*b*", "xxbxxaxx"))
    }
}
