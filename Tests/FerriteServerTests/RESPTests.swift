import NIOCore
import Testing
@testable import FerriteServer

@Suite struct RESPTests {
    @Test func inlineCommandsSplitLikeRedis() {
        #expect(RESPRequestDecoder.splitArguments(Array("set k \"a b\\n\"".utf8)) == [Array("set".utf8), Array("k".utf8), Array("a b\n".utf8)])
    }
}
