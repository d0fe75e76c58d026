#!/usr/bin/env bash
# The run behind docs/benchmarks/README.md: every ferrite-bench measurement, then the report.
# Run from the repository's root on a quiet machine (Benchmarks/setup.sh first); takes about 90
# minutes on 2 cores. Results go to .ferrite-bench-results/ (JSON), the report to docs/benchmarks/.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --package-path Benchmarks --product ferrite-bench
bench=Benchmarks/.build/release/ferrite-bench
out=.ferrite-bench-results
mkdir -p "$out"
$bench bank --scale 1 --threads 1,2 --seconds 10 --json "$out/bank.json"
$bench recovery --accounts 1000000 --json "$out/recovery.json"
$bench recovery --accounts 10000000 --json "$out/recovery.json"
$bench ycsb --workload a,b,c,d,e,f --records 1000000 --operations 100000 --threads 1 --json "$out/ycsb.json"
$bench ycsb --workload a,b,c,d,e,f --records 1000000 --operations 100000 --threads 2 --json "$out/ycsb.json"
$bench ycsb --workload a,f --records 1000000 --operations 100000 --threads 32 --stores ferrite-storage,sqlite-full,lmdb --json "$out/ycsb.json"
$bench report "$out/ycsb.json" --bank "$out/bank.json" --recovery "$out/recovery.json" --preamble docs/benchmarks/preamble.md --output docs/benchmarks
