import Foundation
import Testing
import FerriteTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The `@Persistent` bank example (`ferrite-bank`) SIGKILLed at random moments, while it creates
/// its accounts and while it runs transactions from two threads: every restart finds pgbench's
/// invariant intact (account, teller, branch and history totals equal).
@Suite struct BankCrashTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ferrite-bank").path
    }

    /// Runs `ferrite-bank --check` on the pool; returns its exit status and output.
    static func check(_ pool: String) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["--pool", pool, "--check"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("the bank keeps its invariant across SIGKILLs", arguments: ["storage", "memory"])
    func bankSurvivesKills(durability: String) throws {
        let kills = Int(ProcessInfo.processInfo.environment["FERRITE_BANK_KILLS"] ?? "") ?? 4
        let directory = TemporaryDirectory(onDisk: durability == "storage")
        let pool = directory.file("bank.pool")
        var rng = SeededGenerator(seed: durability == "storage" ? 1 : 2)
        var transactions: [Int] = []
        for round in 0..<kills {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = ["--pool", pool, "--seconds", "120", "--threads", "2", "--durability", durability]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // The first kill lands while the accounts are being created.
            let delay = round == 0 ? Double.random(in: 0.3...0.8, using: &rng) : Double.random(in: 1.5...3.0, using: &rng)
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let (status, output) = try Self.check(pool)
            #expect(status == 0 && output.contains("invariant holds"), "after kill \(round + 1): \(output)")
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix("at start") }),
               let count = line.split(separator: " ").dropFirst(2).first.flatMap({ Int($0) }) {
                transactions.append(count)
            }
        }
        #expect(transactions.count == kills)
        #expect(transactions == transactions.sorted(), "committed transactions never go back: \(transactions)")
        print("bank SIGKILLs (\(durability)): \(kills), transactions after each: \(transactions)")
    }
}
