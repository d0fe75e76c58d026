import CFerriteShim
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A medium that computes what a power failure could leave behind.
///
/// It watches a region of memory (the pool's working memory) and keeps a separate *persisted
/// image*: what the medium is guaranteed to hold. ``flush(_:count:)`` records the content of each
/// line at the moment of the flush, per thread; ``fence()`` copies the calling thread's recorded
/// lines into the persisted image. Plain stores are not intercepted: at any moment, the 8-byte
/// words that differ between working memory and the persisted image are exactly the ones that may
/// or may not have reached the medium.
///
/// ``crashImage(_:)`` builds one possible post-failure content of the region. Install
/// ``onFence`` to take crash images at every fence, before the fence takes effect.
public final class SimulatedMedium: PersistenceMedium, @unchecked Sendable {
    /// Which of the words that may or may not have reached the medium a crash image keeps.
    public enum Survivors: Sendable {
        /// None of them: only what was flushed and fenced.
        case none
        /// All of them: working memory as it is.
        case all
        /// Each word independently, with probability one half, drawn from the given seed.
        case random(seed: UInt64)
    }

    private var base = UnsafeMutableRawPointer(bitPattern: 64)!
    private var size = 0
    private var persisted = UnsafeMutableRawPointer(bitPattern: 64)!
    private let lock = Mutex<Void>(())
    /// Per thread: line index -> (capture number, line content at the flush).
    private var pending: [UInt: [Int: (capture: UInt64, words: [UInt64])]] = [:]
    /// Per line: the capture number of the content the persisted image holds. Caches are
    /// coherent, so a line's captures are snapshots of one history: the latest fenced capture wins,
    /// and an older capture fenced later (by another thread) must not overwrite it.
    private var persistedCapture: [Int: UInt64] = [:]
    private var captures: UInt64 = 0
    private var inHook = false
    private var _fenceCount = 0

    /// Called at the start of every fence, before it takes effect, with the medium locked.
    /// Crash images taken here model a power failure just before the fence completes.
    public var onFence: (@Sendable (SimulatedMedium) -> Void)?

    /// Called at the start of every flush, with the medium locked. `crashImage(.all)` taken here
    /// models a process crash at that point: every store made so far survives, in program order.
    public var onFlush: (@Sendable (SimulatedMedium) -> Void)?

    /// A medium that watches nothing yet: flushes and fences are ignored until ``watch(_:size:)``.
    public init() {}

    /// Watches `size` bytes at `base`, which must be 64-byte aligned and a multiple of 64 bytes.
    /// The persisted image starts as the region's current content (it is taken to be durable).
    public func watch(_ base: UnsafeMutableRawPointer, size: Int) {
        precondition(size % 64 == 0 && Int(bitPattern: base) % 64 == 0 && self.size == 0)
        lock.withLock { _ in
            self.base = base
            self.size = size
            self.persisted = .allocate(byteCount: size, alignment: 64)
            persisted.copyMemory(from: base, byteCount: size)
        }
    }

    deinit { if size > 0 { persisted.deallocate() } }

    /// How many fences have completed.
    public var fenceCount: Int { lock.withLock { _ in _fenceCount } }

    public var description: String { "simulated medium" }

    public func flush(_ address: UnsafeRawPointer, count: Int) {
        guard count > 0, size > 0 else { return }
        let start = address - UnsafeRawPointer(base)
        precondition(start >= 0 && start + count <= size, "flush outside the simulated region")
        let thread = currentThreadID()
        lock.withLock { _ in
            if let hook = onFlush, !inHook {
                inHook = true
                hook(self)
                inHook = false
            }
            var lines = pending[thread] ?? [:]
            var line = start / 64
            while line * 64 < start + count {
                let words = (base + line * 64).assumingMemoryBound(to: UInt64.self)
                captures += 1
                lines[line] = (captures, (0..<8).map { words[$0] })
                line += 1
            }
            pending[thread] = lines
        }
    }

    public func fence() {
        let thread = currentThreadID()
        lock.withLock { _ in
            if let hook = onFence, !inHook {
                inHook = true
                hook(self)
                inHook = false
            }
            if let lines = pending.removeValue(forKey: thread) {
                for (line, content) in lines where content.capture > persistedCapture[line, default: 0] {
                    persistedCapture[line] = content.capture
                    let target = (persisted + line * 64).assumingMemoryBound(to: UInt64.self)
                    for i in 0..<8 { target[i] = content.words[i] }
                }
            }
            _fenceCount += 1
        }
    }

    /// One possible content of the region after a power failure now. Call it from ``onFence``
    /// (the medium is then locked) or while no other thread uses the region.
    public func crashImage(_ survivors: Survivors) -> [UInt8] {
        var image = [UInt8](repeating: 0, count: size)
        image.withUnsafeMutableBytes { out in
            out.baseAddress!.copyMemory(from: persisted, byteCount: size)
            let words = size / 8
            let current = base.assumingMemoryBound(to: UInt64.self)
            let durable = persisted.assumingMemoryBound(to: UInt64.self)
            let target = out.baseAddress!.assumingMemoryBound(to: UInt64.self)
            switch survivors {
            case .none:
                break
            case .all:
                out.baseAddress!.copyMemory(from: base, byteCount: size)
            case .random(let seed):
                var differing = [UInt64](repeating: 0, count: 4096)
                var total = differing.withUnsafeMutableBufferPointer {
                    ferrite_diff_words(current, durable, words, $0.baseAddress, $0.count)
                }
                if total > differing.count {
                    differing = [UInt64](repeating: 0, count: total)
                    total = differing.withUnsafeMutableBufferPointer {
                        ferrite_diff_words(current, durable, words, $0.baseAddress, $0.count)
                    }
                }
                var state = seed &+ 0x9E37_79B9_7F4A_7C15
                for i in 0..<total {
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    if (state >> 33) & 1 == 1 {
                        let w = Int(differing[i])
                        target[w] = current[w]
                    }
                }
            }
        }
        return image
    }
}

/// An identifier for the calling thread, for per-thread bookkeeping.
@inline(__always)
func currentThreadID() -> UInt {
    #if canImport(Glibc)
    UInt(pthread_self())
    #else
    UInt(bitPattern: pthread_self())
    #endif
}
