import ArgumentParser
import Foundation

/// Turns JSON results into a Markdown report with SVG charts.
struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Writes a Markdown report with SVG charts from JSON results.")

    @Argument(help: "JSON files written by `ycsb --json`.") var files: [String] = []
    @Option(help: "JSON files written by `bank --json`.") var bank: [String] = []
    @Option(help: "JSON files written by `recovery --json`.") var recovery: [String] = []
    @Option(help: "Directory for README.md and the charts.") var output = "docs/benchmarks"
    @Option(help: "Text put at the top of the report (commands, machine).") var preamble: String?

    func run() throws {
        var results: [YCSBResult] = []
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            results += try JSONDecoder().decode([YCSBResult].self, from: data)
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        var markdown = "# ferrite-bench results\n\n"
        if let preamble { markdown += (try String(contentsOfFile: preamble, encoding: .utf8)) + "\n\n" }
        let stores = StoreKind.allCases.map(\.rawValue).filter { name in results.contains { $0.store == name } }
        for threads in Set(results.map(\.threads)).sorted() {
            let chart = "ycsb-\(threads)-thread\(threads == 1 ? "" : "s").svg"
            try barChart(results.filter { $0.threads == threads }, stores: stores, title: "YCSB throughput, \(threads) thread\(threads == 1 ? "" : "s") (operations/s, log scale)")
                .write(toFile: output + "/" + chart, atomically: true, encoding: .utf8)
            markdown += "## YCSB, \(threads) thread\(threads == 1 ? "" : "s")\n\n![throughput](\(chart))\n\n"
            markdown += "| workload | " + stores.joined(separator: " | ") + " |\n|---|" + String(repeating: "---|", count: stores.count) + "\n"
            for workload in Workload.allCases {
                let row = stores.map { store in
                    results.first { $0.threads == threads && $0.workload == workload.rawValue && $0.store == store }.map { "\(Int($0.throughput))" } ?? "n/a"
                }
                if row.allSatisfy({ $0 == "n/a" }) { continue }
                markdown += "| \(workload.title) | " + row.joined(separator: " | ") + " |\n"
            }
            markdown += "\nLatency, p50 / p99 / p99.9 in µs, per operation type:\n\n"
            markdown += "| workload | store | latencies |\n|---|---|---|\n"
            for workload in Workload.allCases {
                for store in stores {
                    guard let result = results.first(where: { $0.threads == threads && $0.workload == workload.rawValue && $0.store == store }) else { continue }
                    let latencies = result.latency.keys.sorted().map { name in
                        let l = result.latency[name]!
                        return "\(name) \(format(l.p50)) / \(format(l.p99)) / \(format(l.p999))"
                    }.joined(separator: "; ")
                    markdown += "| \(workload.rawValue) | \(store) | \(latencies) |\n"
                }
            }
            markdown += "\n"
        }
        if let load = results.filter({ $0.workload == "a" && $0.threads == 1 }).nilIfEmpty {
            markdown += "## Space and memory after loading (workload A, 1 thread)\n\n| store | on its medium | raw data (keys + fields) | ratio | peak RSS |\n|---|---|---|---|---|\n"
            for store in stores {
                guard let result = load.first(where: { $0.store == store }) else { continue }
                let ratio = result.storedBytes == 0 ? "-" : String(format: "%.2fx", Double(result.storedBytes) / Double(result.rawBytes))
                markdown += "| \(store) | \(megabytes(result.storedBytes)) | \(megabytes(result.rawBytes)) | \(ratio) | \(megabytes(result.peakMemoryBytes)) |\n"
            }
            markdown += "\n(On its medium: the store's files, measured after the run phase, so workload A's updates are included.)\n"
        }
        var banks: [BankResult] = []
        for file in bank {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            banks += try JSONDecoder().decode([BankResult].self, from: data)
        }
        if !banks.isEmpty {
            markdown += "\n## The TPC-B-like bank\n\n| store | scale | threads | transactions/s | latency p50 / p99 / p99.9 (µs) | invariant at the end |\n|---|---|---|---|---|---|\n"
            for result in banks.sorted(by: { ($0.scale, $0.threads, StoreKind.allCases.firstIndex(of: StoreKind(rawValue: $0.store)!)!) < ($1.scale, $1.threads, StoreKind.allCases.firstIndex(of: StoreKind(rawValue: $1.store)!)!) }) {
                markdown += "| \(result.store) | \(result.scale) | \(result.threads) | \(Int(result.throughput)) | \(format(result.latency.p50)) / \(format(result.latency.p99)) / \(format(result.latency.p999)) | \(result.invariantHolds ? "holds" : "BROKEN") |\n"
            }
        }
        var recoveries: [RecoveryResult] = []
        for file in recovery {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            recoveries += try JSONDecoder().decode([RecoveryResult].self, from: data)
        }
        if !recoveries.isEmpty {
            markdown += "\n## Recovery after a SIGKILL\n\n| store | accounts | transactions/s before | first commit after the kill | back to 90% | invariant after |\n|---|---|---|---|---|---|\n"
            for accounts in Set(recoveries.map(\.accounts)).sorted() {
                let group = recoveries.filter { $0.accounts == accounts }
                for result in group {
                    markdown += "| \(result.store) | \(result.accounts) | \(Int(result.throughputBefore)) | \(String(format: "%.3f s", result.firstCommitSeconds)) | \(result.ninetyPercentSeconds.map { String(format: "%.2f s", $0) } ?? "not reached") | \(result.invariantHolds ? "holds" : "BROKEN") |\n"
                }
                let chart = "recovery-\(accounts).svg"
                try lineChart(group, title: "Throughput across the kill (at 0 s), \(accounts) accounts, % of the throughput before")
                    .write(toFile: output + "/" + chart, atomically: true, encoding: .utf8)
                markdown += "\n![recovery](\(chart))\n\n"
            }
        }
        try markdown.write(toFile: output + "/README.md", atomically: true, encoding: .utf8)
    }

    /// Throughput over time, one line per store, as a percentage of its throughput before the kill.
    func lineChart(_ results: [RecoveryResult], title: String) -> String {
        let palette = ["#d62728", "#ff7f0e", "#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd", "#7f7f7f"]
        let left = 60.0, top = 40.0, width = 640.0, height = 260.0
        let times = results.flatMap { $0.samples.map { $0[0] } }
        let start = times.min() ?? -1, end = times.max() ?? 1
        func x(_ t: Double) -> Double { left + width * (t - start) / max(0.001, end - start) }
        func y(_ percent: Double) -> Double { top + height - height * min(150, percent) / 150 }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(left + width + 180))\" height=\"\(Int(top + height + 50))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(title)</text>\n"
        for percent in stride(from: 0.0, through: 150, by: 50) {
            svg += "<line x1=\"\(left)\" x2=\"\(left + width)\" y1=\"\(y(percent))\" y2=\"\(y(percent))\" stroke=\"#ddd\"/><text x=\"\(left - 6)\" y=\"\(y(percent) + 4)\" text-anchor=\"end\">\(Int(percent))%</text>\n"
        }
        svg += "<line x1=\"\(x(0))\" x2=\"\(x(0))\" y1=\"\(top)\" y2=\"\(top + height)\" stroke=\"#000\" stroke-dasharray=\"4\"/><text x=\"\(x(0) + 4)\" y=\"\(top + 12)\">kill</text>\n"
        for t in stride(from: ceil(start), through: floor(end), by: 1) {
            svg += "<text x=\"\(x(t))\" y=\"\(top + height + 16)\" text-anchor=\"middle\">\(Int(t)) s</text>\n"
        }
        for (index, result) in results.enumerated() where result.throughputBefore > 0 {
            let points = result.samples.map { "\(x($0[0])),\(y(100 * $0[1] / result.throughputBefore))" }.joined(separator: " ")
            svg += "<polyline fill=\"none\" stroke=\"\(palette[index % palette.count])\" stroke-width=\"1.5\" points=\"\(points)\"/>\n"
            svg += "<rect x=\"\(left + width + 20)\" y=\"\(top + Double(index) * 18)\" width=\"12\" height=\"12\" fill=\"\(palette[index % palette.count])\"/><text x=\"\(left + width + 38)\" y=\"\(top + Double(index) * 18 + 10)\">\(result.store)</text>\n"
        }
        return svg + "</svg>\n"
    }

    /// Grouped bars: one group per workload, one bar per store, on a log scale.
    func barChart(_ results: [YCSBResult], stores: [String], title: String) -> String {
        let workloads = Workload.allCases.filter { w in results.contains { $0.workload == w.rawValue } }
        let palette = ["#d62728", "#ff7f0e", "#1f77b4", "#aec7e8", "#2ca02c", "#98df8a", "#9467bd", "#7f7f7f"]
        let barWidth = 14.0, gap = 24.0, left = 70.0, top = 40.0, height = 300.0
        let groupWidth = Double(stores.count) * barWidth + gap
        let width = left + Double(workloads.count) * groupWidth + 180
        let maxValue = max(10, results.map(\.throughput).max() ?? 10)
        let decades = Int(ceil(log10(maxValue)))
        func y(_ value: Double) -> Double { top + height - height * log10(max(1, value)) / Double(decades) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(top + height + 50))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<text x=\"\(left)\" y=\"20\" font-size=\"14\">\(title)</text>\n"
        for decade in 0...decades {
            let value = pow(10, Double(decade))
            svg += "<line x1=\"\(left)\" x2=\"\(width - 180)\" y1=\"\(y(value))\" y2=\"\(y(value))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y(value) + 4)\" text-anchor=\"end\">1e\(decade)</text>\n"
        }
        for (w, workload) in workloads.enumerated() {
            let x0 = left + Double(w) * groupWidth + gap / 2
            for (s, store) in stores.enumerated() {
                guard let result = results.first(where: { $0.workload == workload.rawValue && $0.store == store }) else { continue }
                let x = x0 + Double(s) * barWidth
                svg += "<rect x=\"\(x)\" y=\"\(y(result.throughput))\" width=\"\(barWidth - 2)\" height=\"\(top + height - y(result.throughput))\" fill=\"\(palette[s % palette.count])\"><title>\(store): \(Int(result.throughput)) ops/s</title></rect>\n"
            }
            svg += "<text x=\"\(x0 + Double(stores.count) * barWidth / 2)\" y=\"\(top + height + 18)\" text-anchor=\"middle\">\(workload.rawValue.uppercased())</text>\n"
        }
        for (s, store) in stores.enumerated() {
            let ly = top + Double(s) * 18
            svg += "<rect x=\"\(width - 170)\" y=\"\(ly)\" width=\"12\" height=\"12\" fill=\"\(palette[s % palette.count])\"/><text x=\"\(width - 152)\" y=\"\(ly + 10)\">\(store)</text>\n"
        }
        return svg + "</svg>\n"
    }
}

extension Array {
    var nilIfEmpty: Self? { isEmpty ? nil : self }
}
