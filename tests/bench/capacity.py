#!/usr/bin/env python3
"""Serving capacity as Traefik sees it, sampled, for the benchmark only.

Run inside the Traefik host's namespaces (`tests/lab/lab exec lb -- python3 capacity.py ...`):
Traefik's API listens on that host's 127.0.0.1 only. Every --interval seconds it reads
/api/http/services/rocketchat@file and counts the servers whose serverStatus is "UP" (the
health check's verdict; a server drained from the file provider is no longer listed at all).
Stops when the stop file exists (or after --max-seconds) and prints one JSON summary on stdout:
the number of samples, the minimum and maximum UP count, the samples the API did not answer,
and every change of the UP count with its time (seconds since the first sample).
"""

import argparse
import json
import os
import time
import urllib.error
import urllib.request


def up_count(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        service = json.load(r)
    return sum(1 for state in (service.get("serverStatus") or {}).values() if state == "UP")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", default="http://127.0.0.1:8080/api/http/services/rocketchat@file")
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--max-seconds", type=float, default=900.0)
    a = p.parse_args()

    started = time.monotonic()
    samples, unanswered, changes, counts = 0, 0, [], []
    last = None
    next_at = started
    while not os.path.exists(a.stop_file) and time.monotonic() - started < a.max_seconds:
        try:
            n = up_count(a.url, timeout=a.interval * 5)
        except urllib.error.HTTPError as err:
            # 404: the service is not loaded at all, so nothing serves.
            n = 0 if err.code == 404 else None
        except (OSError, ValueError):
            n = None
        samples += 1
        if n is None:
            unanswered += 1
        else:
            counts.append(n)
            if n != last:
                changes.append([round(time.monotonic() - started, 2), n])
                last = n
        next_at += a.interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    print(json.dumps({
        "interval_s": a.interval, "seconds": round(time.monotonic() - started, 2), "samples": samples,
        "unanswered": unanswered, "min_up": min(counts) if counts else None,
        "max_up": max(counts) if counts else None, "changes": changes,
    }))


if __name__ == "__main__":
    main()
