/// How stores to a mapped pool become durable.
///
/// The heap never assumes that a plain store has reached the medium. It calls ``flush(_:count:)``
/// on every range it needs durable and ``fence()`` where the order matters: after a fence returns,
/// every range this thread flushed before it is durable. Tests replace the real medium with
/// ``SimulatedMedium``, which records flushes and fences to compute crash images.
///
/// A fence orders only the calling thread's flushes, as on x86 (`sfence`). Implementations must be
/// safe to call from many threads at once.
public protocol PersistenceMedium: AnyObject, Sendable, CustomStringConvertible {
    /// Writes back the cache lines that overlap `address ..< address + count`. Returns at once; the
    /// data is durable only after the next ``fence()`` on this thread.
    func flush(_ address: UnsafeRawPointer, count: Int)

    /// Waits until every range this thread flushed earlier is durable.
    func fence()

    /// A short description for logs and errors, such as `"clwb + sfence"`.
    var description: String { get }
}

extension PersistenceMedium {
    /// Flushes a range and fences: the range is durable when this returns.
    @inlinable
    public func persist(_ address: UnsafeRawPointer, count: Int) {
        flush(address, count: count)
        fence()
    }
}
