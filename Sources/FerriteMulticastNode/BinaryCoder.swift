/// A compact binary encoding for `Codable` values: what replicas send each other and write to
/// their durable logs. JSON cost most of a replica's CPU; this is several times cheaper, and
/// still needs nothing but the synthesized conformances.
///
/// A value is a tag byte and a payload:
/// - `0`: nil;
/// - `1`: bytes: a varint length, then the bytes (numbers little-endian, strings UTF-8);
/// - `2`: keyed: a varint count, then for each entry a varint key length, the key (UTF-8) and a value;
/// - `3`: unkeyed: a varint count, then the values.
public enum BinaryCoder {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let root = EncodedValue()
        try value.encode(to: ValueEncoder(target: root))
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        root.write(into: &bytes)
        return bytes
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: UnsafeRawBufferPointer) throws -> T {
        var reader = Reader(bytes: bytes)
        let value = try reader.readValue()
        return try T(from: ValueDecoder(value: value, codingPath: []))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }
}

// MARK: Encoding

/// A value under construction (containers hand out children that are filled in later).
final class EncodedValue {
    enum Content {
        case empty, null, bytes([UInt8])
        case keyed([(String, EncodedValue)])
        case unkeyed([EncodedValue])
    }
    var content: Content = .empty

    func write(into out: inout [UInt8]) {
        switch content {
        case .empty, .null:
            out.append(0)
        case .bytes(let bytes):
            out.append(1)
            writeVarint(UInt64(bytes.count), into: &out)
            out += bytes
        case .keyed(let entries):
            out.append(2)
            writeVarint(UInt64(entries.count), into: &out)
            for (key, value) in entries {
                let utf8 = Array(key.utf8)
                writeVarint(UInt64(utf8.count), into: &out)
                out += utf8
                value.write(into: &out)
            }
        case .unkeyed(let values):
            out.append(3)
            writeVarint(UInt64(values.count), into: &out)
            for value in values { value.write(into: &out) }
        }
    }

    func appendKeyed(_ key: String) -> EncodedValue {
        let child = EncodedValue()
        if case .keyed(var entries) = content {
            content = .empty
            entries.append((key, child))
            content = .keyed(entries)
        } else {
            content = .keyed([(key, child)])
        }
        return child
    }

    func appendUnkeyed() -> EncodedValue {
        let child = EncodedValue()
        if case .unkeyed(var values) = content {
            content = .empty
            values.append(child)
            content = .unkeyed(values)
        } else {
            content = .unkeyed([child])
        }
        return child
    }

    var count: Int {
        switch content {
        case .keyed(let entries): entries.count
        case .unkeyed(let values): values.count
        default: 0
        }
    }
}

func writeVarint(_ value: UInt64, into out: inout [UInt8]) {
    var value = value
    while value >= 0x80 {
        out.append(UInt8(truncatingIfNeeded: value) | 0x80)
        value >>= 7
    }
    out.append(UInt8(value))
}

/// Fixed-width little-endian bytes of an integer or a float's bit pattern.
@inline(__always)
func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// Encodes a primitive into `target`, or returns false when `value` is not a primitive. (Type
/// comparisons, not dynamic casts: most values are not primitives.)
func encodePrimitive<T>(_ value: T, into target: EncodedValue) -> Bool {
    if T.self == Int.self { target.content = .bytes(littleEndianBytes(Int64(value as! Int))) }
    else if T.self == UInt64.self { target.content = .bytes(littleEndianBytes(value as! UInt64)) }
    else if T.self == String.self { target.content = .bytes(Array((value as! String).utf8)) }
    else if T.self == [UInt8].self { target.content = .bytes(value as! [UInt8]) }   // One run of bytes.
    else if T.self == Bool.self { target.content = .bytes([(value as! Bool) ? 1 : 0]) }
    else if T.self == Int64.self { target.content = .bytes(littleEndianBytes(value as! Int64)) }
    else if T.self == UInt8.self { target.content = .bytes([value as! UInt8]) }
    else if T.self == Int8.self { target.content = .bytes([UInt8(bitPattern: value as! Int8)]) }
    else if T.self == UInt32.self { target.content = .bytes(littleEndianBytes(value as! UInt32)) }
    else if T.self == Int32.self { target.content = .bytes(littleEndianBytes(value as! Int32)) }
    else if T.self == UInt16.self { target.content = .bytes(littleEndianBytes(value as! UInt16)) }
    else if T.self == Int16.self { target.content = .bytes(littleEndianBytes(value as! Int16)) }
    else if T.self == UInt.self { target.content = .bytes(littleEndianBytes(UInt64(value as! UInt))) }
    else if T.self == Double.self { target.content = .bytes(littleEndianBytes((value as! Double).bitPattern)) }
    else if T.self == Float.self { target.content = .bytes(littleEndianBytes((value as! Float).bitPattern)) }
    else { return false }
    return true
}

struct ValueEncoder: Encoder {
    let target: EncodedValue
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if case .keyed = target.content {} else { target.content = .keyed([]) }
        return KeyedEncodingContainer(KeyedEncoder<Key>(target: target, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if case .unkeyed = target.content {} else { target.content = .unkeyed([]) }
        return UnkeyedEncoder(target: target, codingPath: codingPath)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleEncoder(target: target, codingPath: codingPath)
    }

    static func encode<T: Encodable>(_ value: T, into target: EncodedValue, codingPath: [any CodingKey]) throws {
        if encodePrimitive(value, into: target) { return }
        try value.encode(to: ValueEncoder(target: target, codingPath: codingPath))
    }
}

struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let target: EncodedValue
    var codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws { target.appendKeyed(key.stringValue).content = .null }
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        try ValueEncoder.encode(value, into: target.appendKeyed(key.stringValue), codingPath: codingPath + [key])
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type, forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(target: target.appendKeyed(key.stringValue), codingPath: codingPath + [key]).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        ValueEncoder(target: target.appendKeyed(key.stringValue), codingPath: codingPath + [key]).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { ValueEncoder(target: target.appendKeyed("super"), codingPath: codingPath) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { ValueEncoder(target: target.appendKeyed(key.stringValue), codingPath: codingPath + [key]) }
}

struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let target: EncodedValue
    var codingPath: [any CodingKey]
    var count: Int { target.count }

    mutating func encodeNil() throws { target.appendUnkeyed().content = .null }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try ValueEncoder.encode(value, into: target.appendUnkeyed(), codingPath: codingPath)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        ValueEncoder(target: target.appendUnkeyed(), codingPath: codingPath).container(keyedBy: keyType)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        ValueEncoder(target: target.appendUnkeyed(), codingPath: codingPath).unkeyedContainer()
    }
    mutating func superEncoder() -> any Encoder { ValueEncoder(target: target.appendUnkeyed(), codingPath: codingPath) }
}

struct SingleEncoder: SingleValueEncodingContainer {
    let target: EncodedValue
    var codingPath: [any CodingKey]
    mutating func encodeNil() throws { target.content = .null }
    mutating func encode<T: Encodable>(_ value: T) throws {
        try ValueEncoder.encode(value, into: target, codingPath: codingPath)
    }
}

// MARK: Decoding

/// A parsed value (slices point into the bytes being decoded).
indirect enum DecodedValue {
    case null
    case bytes(UnsafeRawBufferPointer)
    case keyed([String: DecodedValue], order: [String])
    case unkeyed([DecodedValue])
}

struct BinaryDecodingError: Error, CustomStringConvertible {
    var description: String
}

struct Reader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func readVarint() throws -> Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw BinaryDecodingError(description: "truncated varint") }
            let byte = bytes[offset]
            offset += 1
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { break }
            shift += 7
        }
        guard result <= UInt64(bytes.count) else { throw BinaryDecodingError(description: "length \(result) past the end") }
        return Int(result)
    }

    mutating func readSlice(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count <= bytes.count - offset else { throw BinaryDecodingError(description: "truncated value") }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    mutating func readValue() throws -> DecodedValue {
        guard offset < bytes.count else { throw BinaryDecodingError(description: "truncated value") }
        let tag = bytes[offset]
        offset += 1
        switch tag {
        case 0:
            return .null
        case 1:
            return .bytes(try readSlice(try readVarint()))
        case 2:
            let count = try readVarint()
            var entries: [String: DecodedValue] = [:]
            var order: [String] = []
            order.reserveCapacity(count)
            for _ in 0..<count {
                let key = String(decoding: try readSlice(try readVarint()), as: UTF8.self)
                entries[key] = try readValue()
                order.append(key)
            }
            return .keyed(entries, order: order)
        case 3:
            let count = try readVarint()
            var values: [DecodedValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try readValue()) }
            return .unkeyed(values)
        default:
            throw BinaryDecodingError(description: "unknown tag \(tag)")
        }
    }
}

@inline(__always)
func fixedWidth<T: FixedWidthInteger>(_ type: T.Type, _ bytes: UnsafeRawBufferPointer) throws -> T {
    guard bytes.count == MemoryLayout<T>.size else { throw BinaryDecodingError(description: "\(T.self) of \(bytes.count) bytes") }
    return T(littleEndian: bytes.loadUnaligned(as: T.self))
}

/// Decodes a primitive from `value`, or returns nil when `T` is not a primitive.
func decodePrimitive<T>(_ type: T.Type, from value: DecodedValue) throws -> T? {
    func bytes() throws -> UnsafeRawBufferPointer {
        guard case .bytes(let bytes) = value else { throw BinaryDecodingError(description: "expected \(T.self)") }
        return bytes
    }
    if T.self == Int.self { return Int(try fixedWidth(Int64.self, try bytes())) as? T }
    if T.self == UInt64.self { return try fixedWidth(UInt64.self, try bytes()) as? T }
    if T.self == String.self { return String(decoding: try bytes(), as: UTF8.self) as? T }
    if T.self == [UInt8].self { return Array(try bytes()) as? T }
    if T.self == Bool.self { return (try fixedWidth(UInt8.self, try bytes()) != 0) as? T }
    if T.self == Int64.self { return try fixedWidth(Int64.self, try bytes()) as? T }
    if T.self == UInt8.self { return try fixedWidth(UInt8.self, try bytes()) as? T }
    if T.self == Int8.self { return Int8(bitPattern: try fixedWidth(UInt8.self, try bytes())) as? T }
    if T.self == UInt32.self { return try fixedWidth(UInt32.self, try bytes()) as? T }
    if T.self == Int32.self { return try fixedWidth(Int32.self, try bytes()) as? T }
    if T.self == UInt16.self { return try fixedWidth(UInt16.self, try bytes()) as? T }
    if T.self == Int16.self { return try fixedWidth(Int16.self, try bytes()) as? T }
    if T.self == UInt.self { return UInt(try fixedWidth(UInt64.self, try bytes())) as? T }
    if T.self == Double.self { return Double(bitPattern: try fixedWidth(UInt64.self, try bytes())) as? T }
    if T.self == Float.self { return Float(bitPattern: try fixedWidth(UInt32.self, try bytes())) as? T }
    return nil
}

struct ValueDecoder: Decoder {
    let value: DecodedValue
    var codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .keyed(let entries, let order) = value else { throw BinaryDecodingError(description: "expected a keyed container at \(codingPath)") }
        return KeyedDecodingContainer(KeyedDecoder<Key>(entries: entries, order: order, codingPath: codingPath))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .unkeyed(let values) = value else { throw BinaryDecodingError(description: "expected an unkeyed container at \(codingPath)") }
        return UnkeyedDecoder(values: values, codingPath: codingPath)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleDecoder(value: value, codingPath: codingPath) }

    static func decode<T: Decodable>(_ type: T.Type, from value: DecodedValue, codingPath: [any CodingKey]) throws -> T {
        if let primitive = try decodePrimitive(type, from: value) { return primitive }
        return try T(from: ValueDecoder(value: value, codingPath: codingPath))
    }
}

struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let entries: [String: DecodedValue]
    let order: [String]
    var codingPath: [any CodingKey]

    var allKeys: [Key] { order.compactMap { Key(stringValue: $0) } }
    func contains(_ key: Key) -> Bool { entries[key.stringValue] != nil }

    func entry(_ key: Key) throws -> DecodedValue {
        guard let value = entries[key.stringValue] else {
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "no \(key.stringValue)"))
        }
        return value
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        if case .null = try entry(key) { return true }
        return false
    }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try ValueDecoder.decode(type, from: try entry(key), codingPath: codingPath + [key])
    }
    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: try entry(key), codingPath: codingPath + [key]).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: try entry(key), codingPath: codingPath + [key]).unkeyedContainer()
    }
    func superDecoder() throws -> any Decoder { ValueDecoder(value: entries["super"] ?? .null, codingPath: codingPath) }
    func superDecoder(forKey key: Key) throws -> any Decoder { ValueDecoder(value: try entry(key), codingPath: codingPath + [key]) }
}

struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let values: [DecodedValue]
    var codingPath: [any CodingKey]
    var currentIndex = 0
    var count: Int? { values.count }
    var isAtEnd: Bool { currentIndex >= values.count }

    init(values: [DecodedValue], codingPath: [any CodingKey]) {
        self.values = values
        self.codingPath = codingPath
    }

    mutating func next() throws -> DecodedValue {
        guard !isAtEnd else { throw BinaryDecodingError(description: "unkeyed container exhausted at \(codingPath)") }
        defer { currentIndex += 1 }
        return values[currentIndex]
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, case .null = values[currentIndex] else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try ValueDecoder.decode(type, from: try next(), codingPath: codingPath)
    }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try ValueDecoder(value: try next(), codingPath: codingPath).container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try ValueDecoder(value: try next(), codingPath: codingPath).unkeyedContainer()
    }
    mutating func superDecoder() throws -> any Decoder { ValueDecoder(value: try next(), codingPath: codingPath) }
}

struct SingleDecoder: SingleValueDecodingContainer {
    let value: DecodedValue
    var codingPath: [any CodingKey]
    func decodeNil() -> Bool {
        if case .null = value { return true }
        return false
    }
    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try ValueDecoder.decode(type, from: value, codingPath: codingPath)
    }
}
