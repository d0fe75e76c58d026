#!/usr/bin/env python3
"""Drives a running `ferrite serve` with redis-py (PyPI's `redis`): every command the server
supports, in RESP2 and RESP3, pipelining, MULTI/EXEC, and errors. Exits non-zero on the first
failed check, printing it.

    python3 Tests/Clients/redis_py_suite.py PORT [PASSWORD]
"""
import sys

import redis

port = int(sys.argv[1])
password = sys.argv[2] if len(sys.argv) > 2 else None
checks = 0


def check(label, got, want):
    global checks
    checks += 1
    if got != want:
        print(f"FAIL {label}: got {got!r}, want {want!r}")
        sys.exit(1)


def raises(label, fn, fragment):
    global checks
    checks += 1
    try:
        fn()
    except redis.RedisError as error:
        if fragment not in str(error):
            print(f"FAIL {label}: error {error!r} lacks {fragment!r}")
            sys.exit(1)
        return
    print(f"FAIL {label}: no error")
    sys.exit(1)


def pairs(replies):
    """(member, score) tuples: RESP3 answers lists."""
    return [tuple(pair) for pair in replies]


def suite(r, protocol):
    r.flushdb()
    check("ping", r.ping(), True)
    check("echo", r.echo("hi"), b"hi")
    check("dbsize empty", r.dbsize(), 0)

    # Strings.
    check("set", r.set("a", "1"), True)
    check("get", r.get("a"), b"1")
    check("get missing", r.get("missing"), None)
    check("set nx existing", r.set("a", "2", nx=True), None)
    check("set nx new", r.set("b", "2", nx=True), True)
    check("set xx missing", r.set("c", "3", xx=True), None)
    check("set xx existing", r.set("b", "3", xx=True), True)
    check("set get", r.set("b", "4", get=True), b"3")
    check("binary value", (r.set("bin", b"\x00\xff\r\n"), r.get("bin")), (True, b"\x00\xff\r\n"))
    check("mset", r.mset({"m1": "x", "m2": "y"}), True)
    check("mget", r.mget("m1", "nope", "m2"), [b"x", None, b"y"])
    check("incr new", r.incr("n"), 1)
    check("incrby", r.incrby("n", 41), 42)
    check("incrby negative", r.incrby("n", -2), 40)
    check("decr", r.decr("n"), 39)
    raises("incr not integer", lambda: r.incr("m1"), "not an integer")
    raises("incr overflow", lambda: (r.set("big", str(2**63 - 1)), r.incr("big")), "overflow")
    check("exists", r.exists("a", "b", "nope"), 2)
    check("del", r.delete("a", "b", "nope"), 2)
    check("exists after del", r.exists("a"), 0)
    raises("expiry refused", lambda: r.set("e", "1", ex=10), "expiry")

    # Hashes.
    check("hset", r.hset("h", mapping={"f1": "v1", "f2": "v2"}), 2)
    check("hset update", r.hset("h", "f1", "w1"), 0)
    check("hmset", r.execute_command("HMSET", "h", "f3", "v3"), True)
    check("hget", r.hget("h", "f1"), b"w1")
    check("hget missing", r.hget("h", "nope"), None)
    check("hmget", r.hmget("h", ["f2", "nope", "f3"]), [b"v2", None, b"v3"])
    check("hgetall", r.hgetall("h"), {b"f1": b"w1", b"f2": b"v2", b"f3": b"v3"})
    check("hlen", r.hlen("h"), 3)
    check("hexists", r.hexists("h", "f2"), True)
    check("hdel", r.hdel("h", "f1", "nope"), 1)
    check("hgetall missing", r.hgetall("nohash"), {})
    raises("wrongtype get on hash", lambda: r.get("h"), "WRONGTYPE")
    raises("wrongtype hset on string", lambda: r.hset("m1", "f", "v"), "WRONGTYPE")
    check("hdel last deletes key", (r.hdel("h", "f2", "f3"), r.exists("h")), (2, 0))

    # Sorted sets (what YCSB's Redis binding uses, and more).
    check("zadd", r.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4}), 4)
    check("zadd update", r.zadd("z", {"a": 5}), 0)
    check("zadd ch", r.zadd("z", {"a": 1, "e": 0.5}, ch=True), 2)
    check("zadd nx", r.zadd("z", {"a": 9, "f": 6}, nx=True), 1)
    check("zadd xx", r.zadd("z", {"f": 7, "g": 8}, xx=True), 0)
    check("zadd incr", r.zadd("z", {"f": 1}, incr=True), 8.0)
    check("zcard", r.zcard("z"), 6)
    check("zscore", r.zscore("z", "b"), 2.0)
    check("zrange", r.zrange("z", 0, -1), [b"e", b"a", b"b", b"c", b"d", b"f"])
    check("zrange slice", r.zrange("z", 1, 2), [b"a", b"b"])
    check("zrange rev", r.zrange("z", 0, 1, desc=True), [b"f", b"d"])
    check("zrange withscores", pairs(r.zrange("z", 0, 1, withscores=True)), [(b"e", 0.5), (b"a", 1.0)])
    check("zrangebyscore", r.zrangebyscore("z", 1, 3), [b"a", b"b", b"c"])
    check("zrangebyscore exclusive", r.zrangebyscore("z", "(1", "(3"), [b"b"])
    check("zrangebyscore inf limit", r.zrangebyscore("z", "-inf", "+inf", start=1, num=2), [b"a", b"b"])
    check("zrangebyscore withscores", pairs(r.zrangebyscore("z", 4, 10, withscores=True)), [(b"d", 4.0), (b"f", 8.0)])
    check("zrange byscore", r.zrange("z", 2, 4, byscore=True), [b"b", b"c", b"d"])
    check("zrange byscore rev", r.zrange("z", 4, 2, byscore=True, desc=True), [b"d", b"c", b"b"])
    check("zrem", r.zrem("z", "a", "nope"), 1)
    raises("zadd bad score", lambda: r.execute_command("ZADD", "z", "abc", "x"), "not a valid float")
    raises("zrangebyscore bad bound", lambda: r.zrangebyscore("z", "x", 2), "min or max")
    raises("wrongtype zadd on string", lambda: r.zadd("m1", {"a": 1}), "WRONGTYPE")

    # Keys and SCAN.
    r.flushdb()
    names = {f"user:{i}".encode() for i in range(300)} | {f"item:{i}".encode() for i in range(50)}
    with r.pipeline(transaction=False) as p:
        for name in names:
            p.set(name, "v")
        p.execute()
    check("dbsize", r.dbsize(), 350)
    check("scan all", set(r.scan_iter(count=7)), names)
    check("scan match", set(r.scan_iter(match="item:*", count=20)), {n for n in names if n.startswith(b"item:")})
    check("keys pattern", set(r.keys("item:1?")), {f"item:{i}".encode() for i in range(10, 20)})
    check("type", (r.type("item:1"), r.type("nope")), (b"string", b"none"))

    # Pipelining: many commands in one write, replies in order.
    with r.pipeline(transaction=False) as p:
        for i in range(1000):
            p.set(f"p{i}", i)
        for i in range(1000):
            p.get(f"p{i}")
        results = p.execute()
    check("pipeline sets", all(x is True for x in results[:1000]), True)
    check("pipeline gets", results[1000:], [str(i).encode() for i in range(1000)])

    # MULTI / EXEC: atomic, replies as an array; errors inside as Redis reports them.
    with r.pipeline(transaction=True) as p:
        p.set("t1", "a").incr("tn").hset("th", "f", "v").get("t1")
        check("multi exec", p.execute(), [True, 1, 1, b"a"])
    with r.pipeline(transaction=True) as p:
        p.set("t2", "x").incr("t1").set("t3", "y")
        results = p.execute(raise_on_error=False)
    check("exec runtime error keeps others", (results[0], isinstance(results[1], redis.ResponseError), results[2]), (True, True, True))
    check("exec effects", r.mget("t2", "t3"), [b"x", b"y"])
    conn = r.connection_pool.get_connection()
    try:
        conn.send_command("MULTI")
        check("multi", conn.read_response(), b"OK")
        conn.send_command("SET", "t4", "z")
        check("queued", conn.read_response(), b"QUEUED")
        conn.send_command("GET")  # wrong arity: the transaction is discarded
        raises("queued arity error", conn.read_response, "wrong number of arguments")
        conn.send_command("EXEC")
        raises("execabort", conn.read_response, "Transaction discarded")
        check("aborted transaction did nothing", r.get("t4"), None)
        conn.send_command("MULTI")
        conn.read_response()
        conn.send_command("SET", "t5", "z")
        conn.read_response()
        conn.send_command("DISCARD")
        check("discard", conn.read_response(), b"OK")
        check("discarded did nothing", r.get("t5"), None)
        conn.send_command("EXEC")
        raises("exec without multi", conn.read_response, "EXEC without MULTI")
    finally:
        r.connection_pool.release(conn)

    # Server commands.
    info = r.info()
    check("info keys", info["db0"]["keys"], r.dbsize())
    check("info durability", info["durability_mode"] in ("storage", "memory"), True)
    check("info sections", all(k in info for k in ("pool_size_bytes", "pool_used_bytes", "total_commits", "connected_clients")), True)
    check("config get", r.config_get("appendonly")["appendonly"] in ("yes", "no"), True)
    check("select 0", r.execute_command("SELECT", 0) in (True, b"OK", "OK"), True)
    raises("select 1", lambda: r.execute_command("SELECT", 1), "out of range")
    raises("unknown command", lambda: r.execute_command("NOSUCH", "x"), "unknown command")
    raises("wrong arity", lambda: r.execute_command("GET"), "wrong number of arguments")
    check("command count", r.command_count() > 40, True)
    check("flushdb", (r.flushdb(), r.dbsize()), (True, 0))


def connect(protocol):
    return redis.Redis(host="127.0.0.1", port=port, password=password, protocol=protocol, socket_timeout=30)


for protocol in (2, 3):
    client = connect(protocol)
    if protocol == 3:
        hello = client.execute_command("HELLO", 3, *(["AUTH", "default", password] if password else []))
        check("hello 3", (hello[b"proto"] if b"proto" in hello else hello["proto"]), 3)
    suite(client, protocol)
    client.close()

if password:
    # A client without the password, or with a wrong one, cannot connect; NOAUTH and WRONGPASS
    # replies themselves are checked byte for byte by the Swift tests.
    for wrong in (None, "wrong"):
        try:
            redis.Redis(host="127.0.0.1", port=port, password=wrong, socket_timeout=30).ping()
            print(f"FAIL password {wrong!r} accepted")
            sys.exit(1)
        except redis.RedisError:
            checks += 1

print(f"redis-py: {checks} checks passed")
