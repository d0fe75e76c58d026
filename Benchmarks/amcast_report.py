#!/usr/bin/env python3
"""Turns `ferrite amcast local --json` results into Markdown tables (docs/benchmarks/amcast.md).

Usage: amcast_report.py RESULTS.json [TITLE]
"""
import json
import sys


def main():
    path = sys.argv[1]
    title = sys.argv[2] if len(sys.argv) > 2 else path
    runs = json.load(open(path))["runs"]
    print(f"### {title}\n")
    kills = [r for r in runs if r.get("longestStallAfterKillMilliseconds") is not None]
    plain = [r for r in runs if r.get("longestStallAfterKillMilliseconds") is None]
    for destinations in sorted({r["destinations"] for r in plain}):
        group = {r["protocolName"]: r for r in plain if r["destinations"] == destinations}
        print(f"Messages to {destinations} group{'s' if destinations > 1 else ''}:\n")
        print("| clients | WB-amcast msg/s | median ms | p99 ms | baseline msg/s | median ms | p99 ms | WB / baseline |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        wb, sk = group.get("wbamcast"), group.get("skeen")
        levels = max(len(wb["levels"]) if wb else 0, len(sk["levels"]) if sk else 0)
        for i in range(levels):
            a = wb["levels"][i] if wb else None
            b = sk["levels"][i] if sk else None
            clients = (a or b)["clients"]
            def cells(x):
                if not x:
                    return "", "", ""
                return f"{x['throughput']:.0f}", f"{x['medianLatencyMicroseconds'] / 1000:.2f}", f"{x['p99LatencyMicroseconds'] / 1000:.2f}"
            ratio = f"{a['throughput'] / b['throughput']:.2f}x" if a and b and b["throughput"] > 0 else ""
            print(f"| {clients} | {' | '.join(cells(a))} | {' | '.join(cells(b))} | {ratio} |")
        if wb and sk:
            peak_wb = max(l["throughput"] for l in wb["levels"])
            peak_sk = max(l["throughput"] for l in sk["levels"])
            print(f"\nAt saturation (best level): WB-amcast {peak_wb:.0f} msg/s, baseline {peak_sk:.0f} msg/s: "
                  f"**{peak_wb / peak_sk:.2f}x**. Replicas' CPU per multicast: WB-amcast "
                  f"{wb.get('replicaCPUMicrosecondsPerMessage', 0):.0f} µs, baseline {sk.get('replicaCPUMicrosecondsPerMessage', 0):.0f} µs. "
                  f"Checker: WB-amcast {'passes' if not wb['violations'] else 'FAILS'}, baseline {'passes' if not sk['violations'] else 'FAILS'} "
                  f"({wb['deliveries'] + sk['deliveries']} deliveries checked).\n")
    for r in kills:
        level = r["levels"][0]
        print(f"- Leader kill, {r['protocolName']}, {level['clients']} clients, messages to {r['destinations']} groups: "
              f"group 0's surviving replicas stopped delivering for at most **{r['longestStallAfterKillMilliseconds']} ms**; "
              f"{level['throughput']:.0f} msg/s over the run; the killed replica restarted from its durable log and rejoined; "
              f"checker {'passes' if not r['violations'] else 'FAILS: ' + '; '.join(r['violations'][:2])}.")
    print()


if __name__ == "__main__":
    main()
