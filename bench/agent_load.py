#!/usr/bin/env python3
"""Agents under load, on 127.0.0.1: one real `coffer serve`, AGENTS agents in
contact (UPLOADERS of them real `coffer agent run` processes backing up
fresh data through the service for SECONDS, the rest simulated by this
script, holding their long polls open as agents do), and a prober that
times control calls meanwhile. Prints one markdown table: the service's
throughput into the vault, its peak memory, control-call latencies, and the
same data backed up locally by `coffer backup` for the ratio.

    bench/agent_load.py [--agents 200] [--uploaders 20] [--seconds 60] [--file-mb 32]

Fresh data for every backup without spending the CPU the service needs:
a pool of random bytes made once, and for each round a file of its 64 KiB
blocks each led by a unique 16-byte tag, so every chunk the backup cuts is
new and incompressible, and writing a round costs a memory copy.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BLOCK = 64 << 10
PASSWORD = "load-test-password-1"


def build():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "coffer-cli"], cwd=repo, check=True)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                          cwd=repo, check=True, capture_output=True, text=True)
    return os.path.join(json.loads(meta.stdout)["target_directory"], "release", "coffer")


class Http:
    """One kept-alive connection to the service; not shared between threads."""

    def __init__(self, base, bearer=None):
        url = urllib.parse.urlsplit(base)
        self.prefix = url.path.rstrip("/")
        ctx = ssl.create_default_context()
        # The service's own certificate, on loopback, in a benchmark.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.open = lambda: http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=120)
        self.conn = self.open()
        self.bearer = bearer

    def call(self, method, path, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        h = {"content-type": "application/json"}
        if self.bearer:
            h["authorization"] = "Bearer " + self.bearer
        h.update(headers or {})
        for attempt in range(2):
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=h)
                r = self.conn.getresponse()
                text = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = self.open()
                if attempt:
                    raise
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {text[:300]!r}")
        return (json.loads(text) if text else None), r.getheader("set-cookie")


def fresh_file(path, pool, tag, size):
    blocks = size // BLOCK
    with open(path, "wb") as f:
        for j in range(blocks):
            start = (j * 7919 % (len(pool) // BLOCK)) * BLOCK
            f.write(f"{tag}:{j}".encode().ljust(16, b"\0")[:16])
            f.write(pool[start + 16:start + BLOCK])


def start_service(coffer, data):
    os.makedirs(data)
    with open(os.path.join(data, "coffer.toml"), "w") as f:
        f.write("tls_self_signed = true\nscheduler = false\n")
    env = dict(os.environ, COFFER_ADMIN_PASSWORD=PASSWORD, HOME=data)
    proc = subprocess.Popen([coffer, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    for line in proc.stdout:
        if line.startswith("listening on "):
            base = line.split(" ", 2)[2].strip() + "/api/v1"
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, base
    raise RuntimeError("the service did not start")


def admin_session(base):
    anon = Http(base)
    _, cookie = anon.call("POST", "/auth/login", {"name": "admin", "password": PASSWORD})
    origin = base.rsplit("/api/v1", 1)[0]
    made, _ = anon.call("POST", "/tokens", {"name": "load"},
                        {"cookie": cookie.split(";")[0], "origin": origin})
    return made["secret"]


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def local_backup(coffer, work, sources):
    """The same data backed up by `coffer backup` on this machine: MB/s read."""
    key = os.path.join(work, "local.key")
    with open(key, "w") as f:
        f.write(subprocess.run([coffer, "key", "generate"], check=True, capture_output=True, text=True).stdout)
    vault = os.path.join(work, "local-vault")
    env = dict(os.environ, COFFER_CACHE_DIR=os.path.join(work, "local-cache"))
    subprocess.run([coffer, "--key-file", key, "vault", "init", "--location", vault],
                   check=True, capture_output=True, env=env)
    size = sum(du(s) for s in sources)
    started = time.monotonic()
    subprocess.run([coffer, "--key-file", key, "backup", "--vault", vault, *sources],
                   check=True, capture_output=True, env=env)
    took = time.monotonic() - started
    shutil.rmtree(vault)
    return size / took / 1e6, size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--uploaders", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--file-mb", type=int, default=32)
    args = ap.parse_args()
    coffer = build()
    root = os.environ.get("BENCH_DIR", "/var/tmp/coffer-bench")
    os.makedirs(root, exist_ok=True)
    work = tempfile.mkdtemp(prefix="agent-load-", dir=root)
    procs = []
    try:
        run(args, coffer, work, procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def run(args, coffer, work, procs):
    pool = os.urandom(64 << 20)
    size = args.file_mb << 20
    sources = []
    for i in range(args.uploaders):
        src = os.path.join(work, f"src-{i}")
        os.makedirs(src)
        fresh_file(os.path.join(src, "data"), pool, f"local-{i}", size)
        sources.append(src)
    local_mbs, _ = local_backup(coffer, work, sources)

    service, base = start_service(coffer, os.path.join(work, "data"))
    procs.append(service)
    admin = Http(base, admin_session(base))
    vault = os.path.join(work, "vault")
    admin.call("POST", "/vaults", {"name": "v", "location": vault, "create": True})
    url = base.rsplit("/api/v1", 1)[0]
    host = {"hostname": "sim", "os": "bench", "version": "0.1.0"}

    # Registration: real agents first, then the simulated ones.
    secrets = []
    for i in range(args.agents):
        made, _ = admin.call("POST", "/agents/tokens", {"vault": "v"})
        text = made["text"]
        if i < args.uploaders:
            state = os.path.join(work, f"state-{i}")
            subprocess.run([coffer, "agent", "register", "--server", url, "--token", text,
                            "--name", f"up-{i}", "--state-dir", state], check=True, capture_output=True)
            admin.call("POST", "/items", {"name": f"up-{i}", "vault": "v", "agent": f"up-{i}",
                                          "paths": [sources[i]], "retry_attempts": 0})
            procs.append(subprocess.Popen([coffer, "agent", "run", "--state-dir", state],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        else:
            secret = text[len("coffer-register:v1:"):].split(":", 1)[0]
            reg, _ = Http(base).call("POST", "/agent/register",
                                     {"token": secret, "name": f"sim-{i}", "host": host})
            secrets.append(reg["secret"])

    stop = threading.Event()

    def hold_polls(secret):
        conn = Http(base, secret)
        while not stop.is_set():
            try:
                conn.call("POST", "/agent/poll", {"host": host, "wait_secs": 25})
            except Exception as e:  # noqa: BLE001 - reported, then the poll is made again
                if not stop.is_set():
                    print(f"poll failed: {e}", file=sys.stderr)
                    time.sleep(1)

    for s in secrets:
        threading.Thread(target=hold_polls, args=(s,), daemon=True).start()

    latencies = {"agent poll (no wait)": [], "GET /agents": [], "GET /jobs": []}

    def probe():
        agents = [Http(base, s) for s in random.sample(secrets, min(5, len(secrets)))]
        reader = Http(base, admin.bearer)
        while not stop.is_set():
            for kind, call in (
                ("agent poll (no wait)", lambda: random.choice(agents).call(
                    "POST", "/agent/poll", {"host": host, "wait_secs": 0})),
                ("GET /agents", lambda: reader.call("GET", "/agents")),
                ("GET /jobs", lambda: reader.call("GET", "/jobs?limit=50")),
            ):
                t = time.monotonic()
                call()
                latencies[kind].append(time.monotonic() - t)
            time.sleep(0.1)

    in_contact = 0
    for _ in range(60):
        listed, _ = admin.call("GET", "/agents")
        in_contact = sum(1 for a in listed if not a["unreachable"] and a["last_contact"])
        if in_contact == args.agents:
            break
        time.sleep(1)

    stored_before = du(vault)
    totals = {"read": 0, "jobs": 0, "failed": 0}
    lock = threading.Lock()

    def upload(i):
        conn = Http(base, admin.bearer)
        rnd = 0
        while not stop.is_set():
            rnd += 1
            fresh_file(os.path.join(sources[i], "data"), pool, f"up-{i}-{rnd}", size)
            job, _ = conn.call("POST", f"/items/up-{i}/backup", {})
            while True:
                state, _ = conn.call("GET", f"/jobs/{job['id']}")
                if state["state"] not in ("Queued", "Running"):
                    break
                time.sleep(0.2)
            with lock:
                totals["jobs"] += 1
                if state["state"] == "Succeeded":
                    totals["read"] += state["result"]["stats"]["bytes_read"]
                else:
                    totals["failed"] += 1
                    print(f"up-{i}: {state['state']} {state.get('error')}", file=sys.stderr)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    started = time.monotonic()
    uploaders = [threading.Thread(target=upload, args=(i,)) for i in range(args.uploaders)]
    for t in uploaders:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in uploaders:
        t.join()
    took = time.monotonic() - started
    stored = du(vault) - stored_before
    service_mbs = totals["read"] / took / 1e6

    # The path alone, with the load gone: one agent backs up the data the
    # local backup read (fresh bytes of the same size), as one job.
    for i, src in enumerate(sources):
        fresh_file(os.path.join(src, "data"), pool, f"single-{i}", size)
    admin.call("POST", "/items", {"name": "all", "vault": "v", "agent": "up-0",
                                  "paths": sources, "retry_attempts": 0})
    t = time.monotonic()
    job, _ = admin.call("POST", "/items/all/backup", {})
    while True:
        state, _ = admin.call("GET", f"/jobs/{job['id']}")
        if state["state"] not in ("Queued", "Running"):
            break
        time.sleep(0.05)
    single_mbs = state["result"]["stats"]["bytes_read"] / (time.monotonic() - t) / 1e6

    rows = [
        ("agents in contact (of registered)", f"{in_contact} of {args.agents}"),
        ("uploading agents, window", f"{args.uploaders}, {took:.0f} s (the last backups finish inside it)"),
        ("backups done (failed)", f"{totals['jobs']} ({totals['failed']})"),
        ("into the vault through the service", f"{stored / took / 1e6:.0f} MB/s stored, {service_mbs:.0f} MB/s of source read"),
        ("same data, local `coffer backup`", f"{local_mbs:.0f} MB/s of source read"),
        ("all uploaders together / local", f"{service_mbs / local_mbs:.2f}"),
        ("one agent, same data as local, no other load", f"{single_mbs:.0f} MB/s of source read"),
        ("one agent / local", f"{single_mbs / local_mbs:.2f}"),
        ("service peak memory (VmHWM)", f"{peak_rss_mb(service.pid):.0f} MB"),
    ]
    for kind, values in latencies.items():
        rows.append((f"{kind}: p50 / p99 (n={len(values)})",
                     f"{statistics.median(values) * 1000:.1f} / {percentile(values, 0.99) * 1000:.1f} ms"))
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
