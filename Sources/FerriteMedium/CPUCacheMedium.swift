import CFerriteShim

/// The real medium for memory mode: cache-line write-backs and store fences.
///
/// The write-back instruction is chosen once, at run time: `clwb` where the CPU has it, else
/// `clflushopt`, else `clflush`. On a DAX file mapped with `MAP_SYNC` (persistent memory, CXL
/// memory), a fenced write-back is durable against power loss. On any other file (tmpfs, ext4
/// without DAX) the same calls only order stores, and the pool survives process crashes, not
/// power loss.
public final class CPUCacheMedium: PersistenceMedium {
    /// The write-back instruction in use.
    public let instruction: Instruction

    /// The cache-line write-back instructions, best first.
    public enum Instruction: String, Sendable {
        case clwb, clflushopt, clflush
        /// Not an x86 CPU: a full memory barrier stands in for write-backs.
        case barrier

        var shimKind: ferrite_flush_kind {
            switch self {
            case .clwb: FERRITE_FLUSH_CLWB
            case .clflushopt: FERRITE_FLUSH_CLFLUSHOPT
            case .clflush: FERRITE_FLUSH_CLFLUSH
            case .barrier: FERRITE_FLUSH_NONE
            }
        }
    }

    @usableFromInline let kind: ferrite_flush_kind

    /// The best instruction this CPU supports.
    public static var detectedInstruction: Instruction {
        switch ferrite_detect_flush_kind() {
        case FERRITE_FLUSH_CLWB: .clwb
        case FERRITE_FLUSH_CLFLUSHOPT: .clflushopt
        case FERRITE_FLUSH_CLFLUSH: .clflush
        default: .barrier
        }
    }

    /// A medium using the best instruction this CPU supports, or the one given.
    public init(instruction: Instruction = CPUCacheMedium.detectedInstruction) {
        self.instruction = instruction
        self.kind = instruction.shimKind
    }

    @inlinable
    public func flush(_ address: UnsafeRawPointer, count: Int) {
        ferrite_flush_range(kind, address, count)
    }

    @inlinable
    public func fence() {
        ferrite_store_fence()
    }

    public var description: String { "\(instruction.rawValue) + sfence" }
}
