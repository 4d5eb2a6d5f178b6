#!/usr/bin/env python3
"""Steady HTTP load through the lab's Traefik, for the benchmark only.

Sends GET requests to one lab address at a fixed rate (paced, not as fast as possible) from a
few threads, until the stop file exists or --max-seconds passed, then writes a JSON summary:
requests sent, succeeded (HTTP 200), failed (anything else: other status, refused, reset,
timeout), the rate held, and when and why each failure happened.

Usage: loadgen.py --url http://10.231.X.20/api/info --host chat.lab.test --rate 20
                  --stop-file F --out F [--max-seconds 900]
"""

import argparse
import http.client
import json
import threading
import time
import urllib.parse


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--host", required=True, help="Host header (the Traefik router's domain)")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second, all threads together")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--timeout", type=float, default=5.0)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-seconds", type=float, default=900.0)
    a = p.parse_args()

    url = urllib.parse.urlsplit(a.url)
    if url.scheme != "http":
        raise SystemExit("loadgen: plain http only")
    address, port = url.hostname, url.port or 80
    path = url.path or "/"

    lock = threading.Lock()
    stats = {"sent": 0, "ok": 0, "failed": 0, "failures": [], "latencies": []}
    started = time.monotonic()
    interval = 1.0 / a.rate
    next_slot = [started]
    stop = threading.Event()

    def take_slot():
        with lock:
            slot = next_slot[0]
            next_slot[0] += interval
        return slot

    def worker():
        while not stop.is_set():
            slot = take_slot()
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if stop.is_set():
                return
            t0 = time.monotonic()
            error = None
            try:
                conn = http.client.HTTPConnection(address, port, timeout=a.timeout)
                conn.request("GET", path, headers={"Host": a.host, "Connection": "close"})
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    error = f"HTTP {resp.status}"
                conn.close()
            except Exception as exc:  # any failure counts
                error = f"{type(exc).__name__}: {exc}"
            t1 = time.monotonic()
            with lock:
                stats["sent"] += 1
                if error is None:
                    stats["ok"] += 1
                    stats["latencies"].append(t1 - t0)
                else:
                    stats["failed"] += 1
                    if len(stats["failures"]) < 100:
                        stats["failures"].append({"at": round(t0 - started, 3), "error": error})

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.threads)]
    for t in threads:
        t.start()
    import os

    while not os.path.exists(a.stop_file) and time.monotonic() - started < a.max_seconds:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=a.timeout + 1)
    elapsed = time.monotonic() - started
    lat = sorted(stats["latencies"])
    summary = {
        "url": a.url,
        "host": a.host,
        "target_rate": a.rate,
        "seconds": round(elapsed, 3),
        "sent": stats["sent"],
        "ok": stats["ok"],
        "failed": stats["failed"],
        "rate": round(stats["sent"] / elapsed, 2) if elapsed else 0.0,
        "ok_rate": round(stats["ok"] / elapsed, 2) if elapsed else 0.0,
        "latency_p50_ms": round(lat[len(lat) // 2] * 1000, 1) if lat else None,
        "latency_max_ms": round(lat[-1] * 1000, 1) if lat else None,
        "failures": stats["failures"],
    }
    with open(a.out, "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
