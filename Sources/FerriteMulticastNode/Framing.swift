import FerriteMulticast
import Foundation
import NIOCore

/// Frames on the wire: a 4-byte big-endian length, then the sender's process id (8 bytes), then
/// the message (``BinaryCoder``).
struct FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    static let maximumFrame = 64 << 20

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard length <= Self.maximumFrame else { throw FrameTooLarge() }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    struct FrameTooLarge: Error {}
}

/// Encodes and decodes one protocol's messages (``BinaryCoder``).
struct WireCodec<Wire: MulticastWire> {
    func frame(_ message: Wire, from sender: ProcessID, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let body = try BinaryCoder.encode(message)
        var buffer = allocator.buffer(capacity: 12 + body.count)
        buffer.writeInteger(UInt32(8 + body.count))
        buffer.writeInteger(Int64(sender.rawValue))
        buffer.writeBytes(body)
        return buffer
    }

    func decode(_ frame: ByteBuffer) throws -> (ProcessID, Wire) {
        var frame = frame
        guard let sender = frame.readInteger(as: Int64.self) else { throw FrameDecoder.FrameTooLarge() }
        let message = try frame.readableBytesView.withUnsafeBytes { try BinaryCoder.decode(Wire.self, from: $0) }
        return (ProcessID(Int(sender)), message)
    }
}

/// Wall-clock microseconds: delivery and multicast logs of processes on one machine compare.
public func wallClockMicroseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1_000
}

/// Monotonic microseconds: what replicas run their timeouts by.
func monotonicMicroseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1_000
}
