#!/usr/bin/env python3
"""redis-benchmark against `ferrite serve` and redis-server, side by side, in the same run.

    python3 Benchmarks/redis_benchmark.py [--rounds 5] [--requests 50000] [--modes storage,memory]

Rows: SET and GET, 100-byte values, 1 and 50 clients. Modes:
  storage: ferrite's pool (and log) on the disk under the working directory, against
           redis-server with appendonly yes, appendfsync always, in the same directory;
  memory:  ferrite's pool on /dev/shm (memory mode), against redis-server with persistence off.
Each round runs every row on both servers, alternating which goes first; the table gives the
median requests per second over the rounds and the ratio ferrite / redis (> 1: ferrite faster).
Needs redis-server and redis-benchmark (Debian: apt-get install redis-server redis-tools) and a
release build of ferrite (built here if missing).
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def start_ferrite(binary, mode, directory, port, extra):
    pool = os.path.join("/dev/shm" if mode == "memory" else directory, f"bench-{os.getpid()}.pool")
    for path in (pool, pool + "-wal"):
        if os.path.exists(path):
            os.remove(path)
    process = subprocess.Popen([binary, "serve", "--port", str(port), "--pool", pool, "--durability", mode,
                                "--metrics-port", "0", "--log-level", "warning"] + extra,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process, [pool, pool + "-wal"]


def start_redis(mode, directory, port):
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if mode == "storage" else ["--appendonly", "no"]
    process = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--dir", directory, "--bind", "127.0.0.1",
                                "--logfile", os.path.join(directory, "redis.log")] + persistence,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port)
    return process, []


def stop(process, files):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for path in files:
        if os.path.exists(path):
            os.remove(path)


def run_benchmark(port, test, clients, requests):
    output = subprocess.run(["redis-benchmark", "-p", str(port), "-t", test, "-n", str(requests), "-c", str(clients),
                             "-d", "100", "-r", "100000", "--csv"], capture_output=True, text=True, check=True).stdout
    for line in output.splitlines():
        fields = [field.strip('"') for field in line.split(",")]
        if fields and fields[0] == test.upper():
            return float(fields[1])
    raise RuntimeError(f"no result in redis-benchmark output: {output!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50000, help="requests per row with 50 clients (a tenth with 1)")
    parser.add_argument("--modes", default="storage,memory")
    parser.add_argument("--ferrite-args", default="", help="extra arguments for ferrite serve")
    parser.add_argument("--ferrite", default=os.path.join(ROOT, ".build", "release", "ferrite"),
                        help="the ferrite binary (default: the root package's release build, built here if missing)")
    args = parser.parse_args()
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install redis-server redis-tools")
    binary = args.ferrite
    if not os.path.exists(binary):
        subprocess.run(["swift", "build", "-c", "release", "--product", "ferrite"], cwd=ROOT, check=True)

    rows = [(test, clients) for clients in (1, 50) for test in ("set", "get")]
    results = {}
    for mode in args.modes.split(","):
        directory = tempfile.mkdtemp(prefix=".ferrite-bench-", dir=ROOT)
        try:
            for round_index in range(args.rounds):
                order = ["ferrite", "redis"] if round_index % 2 == 0 else ["redis", "ferrite"]
                for server in order:
                    port = free_port()
                    if server == "ferrite":
                        process, files = start_ferrite(binary, mode, directory, port, args.ferrite_args.split())
                    else:
                        process, files = start_redis(mode, directory, port)
                    try:
                        for test, clients in rows:
                            requests = args.requests if clients > 1 else max(args.requests // 10, 1000)
                            rps = run_benchmark(port, test, clients, requests)
                            results.setdefault((mode, test, clients, server), []).append(rps)
                    finally:
                        stop(process, files)
                        if server == "redis":
                            shutil.rmtree(os.path.join(directory, "appendonlydir"), ignore_errors=True)
                print(f"{mode}: round {round_index + 1} of {args.rounds} done", file=sys.stderr)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

        peer = "redis appendfsync always" if mode == "storage" else "redis, persistence off"
        print(f"\n## {mode} mode: ferrite vs {peer} (median of {args.rounds} rounds, requests/s)\n")
        print("| test | clients | ferrite | redis | ratio |")
        print("|---|---:|---:|---:|---:|")
        for test, clients in rows:
            ferrite = statistics.median(results[(mode, test, clients, "ferrite")])
            redis = statistics.median(results[(mode, test, clients, "redis")])
            print(f"| {test.upper()} | {clients} | {ferrite:,.0f} | {redis:,.0f} | {ferrite / redis:.2f}x |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
