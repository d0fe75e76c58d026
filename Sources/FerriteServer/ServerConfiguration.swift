import FerriteHeap

/// How `ferrite serve` runs: where it listens, its pool, its limits.
public struct ServerConfiguration: Sendable {
    /// The address to listen on: loopback unless told otherwise.
    public var host = "127.0.0.1"
    /// The port. 6479 by default: not Redis's 6379, so both can run side by side.
    public var port = 6479
    /// The pool file (created when missing; its write-ahead log is `<pool>-wal` in storage mode).
    public var poolPath = "ferrite.pool"
    /// The durability mode of a new pool (an existing pool keeps its own); nil picks storage
    /// mode, or memory mode when the pool's directory is on a DAX file system.
    public var durability: Durability? = nil
    /// With storage mode: sync every commit (the default) or every 10 ms.
    public var storageSync = StorageSync.full
    /// Storage mode: the size of a new pool's write-ahead log ring (checkpoints keep at most about
    /// half of it in use; recovery replays at most that much).
    public var logCapacity = 64 << 20
    /// The largest size the pool may grow to.
    public var maximumPoolBytes = 64 << 30
    /// When set, clients must AUTH with it before anything else.
    public var password: String? = nil
    /// Connections beyond this many are told so and closed.
    public var maximumClients = 10_000
    /// The longest bulk string (a key, a value) a request may carry.
    public var maximumBulkBytes = 512 << 20
    /// The most arguments one request may carry.
    public var maximumArguments = 1 << 20
    /// Where Prometheus scrapes metrics (`http://host:metricsPort/metrics`); nil for none.
    public var metricsPort: Int? = 9479
    /// Event-loop threads; nil for one per core.
    public var threads: Int? = nil

    public init() {}
}
