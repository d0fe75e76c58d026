import FerriteHeap

/// A small test object: four integers and a reference.
public final class Cell: PersistentObject {
    public static let persistentTypeName = "FerriteTests.Cell"
    public static let persistentSize = 40
    public static let persistentReferenceOffsets = [32]
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    public var a: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    public var b: Int { get { handle[Int.self, at: 8] } set { handle[Int.self, at: 8] = newValue } }
    public var c: Int { get { handle[Int.self, at: 16] } set { handle[Int.self, at: 16] = newValue } }
    public var d: Int { get { handle[Int.self, at: 24] } set { handle[Int.self, at: 24] = newValue } }
    public var next: Cell? {
        get { try! handle.object(at: 32, as: Cell.self) }
        set { handle.setObject(newValue, at: 32) }
    }
}

/// A table of references: a counter, `slots` cell references, then a reference to a byte blob.
public final class Table: PersistentObject {
    public static let persistentTypeName = "FerriteTests.Table"
    public static let slots = 16
    public static let blobOffset = 8 + 8 * slots
    public static let persistentSize = blobOffset + 8
    public static let persistentReferenceOffsets = (0...slots).map { 8 + 8 * $0 }
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }

    public var counter: Int { get { handle[Int.self, at: 0] } set { handle[Int.self, at: 0] = newValue } }
    public var blob: ObjectHandle? {
        get {
            let reference = handle[UInt64.self, at: Self.blobOffset]
            return reference == 0 ? nil : try! handle.heap.handle(at: reference)
        }
        set { handle[UInt64.self, at: Self.blobOffset] = newValue?.reference ?? 0 }
    }
    public subscript(slot: Int) -> Cell? {
        get { try! handle.object(at: 8 + 8 * slot, as: Cell.self) }
        set { handle.setObject(newValue, at: 8 + 8 * slot) }
    }
}

/// An unregistered type, to check the errors for unknown types.
public final class Stranger: PersistentObject {
    public static let persistentTypeName = "FerriteTests.Stranger"
    public static let persistentSize = 8
    public let handle: ObjectHandle
    public init(handle: ObjectHandle) { self.handle = handle }
}



