#!/usr/bin/env python3
"""Disk images: a qcow2 image of SIZE_GB with DATA_GB of incompressible data,
backed up whole, then with 1% of its data blocks changed: through its dirty
bitmap, and again without one (every allocated block read and compared).
Restore speed against `qemu-img convert` of the same image on the same
disk, and the time to read the changed blocks alone (the floor an
incremental cannot beat). Prints one markdown table.

    bench/disk_images.py [--size-gb 20] [--data-gb 8] [--changed 0.01] [--dir /var/tmp]

Page cache: every step runs after `sync` and a drop of the page cache when
the machine allows it (root outside a container); the table says whether it
did, since a warm cache makes reads from the image free.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def build():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "coffer-cli"], cwd=repo, check=True)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"],
                          cwd=repo, check=True, capture_output=True, text=True)
    return os.path.join(json.loads(meta.stdout)["target_directory"], "release", "coffer")


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def timed(args, env=None):
    start = time.monotonic()
    out = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    return time.monotonic() - start, out.stdout


def qemu_io(image, commands):
    # Many commands per process: one open of the image, like a guest's writes.
    for i in range(0, len(commands), 500):
        args = ["qemu-io", "-f", "qcow2"]
        for c in commands[i:i + 500]:
            args += ["-c", c]
        subprocess.run(args + [image], check=True, capture_output=True)


def fill(image, data_gb):
    """Writes DATA_GB of random bytes in 64 MiB pieces through a raw file
    converted into the image (qemu-io's patterns would compress)."""
    raw = image + ".fill"
    with open(raw, "wb") as f:
        for _ in range(data_gb * 16):
            f.write(os.urandom(64 * MIB))
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", "-f", "raw", raw, image], check=True)
    os.remove(raw)


def change(image, data_blocks, share, seed):
    rng = random.Random(seed)
    blocks = sorted(rng.sample(range(data_blocks), max(1, int(data_blocks * share))))
    qemu_io(image, [f"write -P {rng.randrange(1, 255)} {b}M 4k" for b in blocks])
    return blocks


def disk_summary(stdout):
    line = [l for l in stdout.splitlines() if l.startswith("{")][-1]
    return json.loads(line)["disks"][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gb", type=int, default=20)
    ap.add_argument("--data-gb", type=int, default=8)
    ap.add_argument("--changed", type=float, default=0.01)
    ap.add_argument("--dir", default="/var/tmp")
    a = ap.parse_args()
    coffer = build()
    work = tempfile.mkdtemp(prefix="coffer-disk-bench-", dir=a.dir)
    try:
        env = dict(os.environ)
        env["COFFER_KEY"] = subprocess.run([coffer, "key", "generate"], check=True,
                                           capture_output=True, text=True).stdout.split()[-1]
        env["COFFER_CACHE_DIR"] = os.path.join(work, "cache")
        vault = os.path.join(work, "vault")
        subprocess.run([coffer, "vault", "init", "--location", vault], env=env, check=True, capture_output=True)
        image = os.path.join(work, "vm.qcow2")
        fill(image, a.data_gb)
        subprocess.run(["qemu-img", "resize", "-q", image, f"{a.size_gb}G"], check=True)
        backup = [coffer, "disk", "backup", "--json", "--vault", vault, "--item", "vm", "--format", "qcow2", image]
        rows = []
        cold = drop_caches()
        t, out = timed(backup, env)
        d = disk_summary(out)
        rows.append(("first backup", t, d["bytes_read"], d["method"]))

        data_blocks = a.data_gb * 1024
        changed = change(image, data_blocks, a.changed, 1)
        drop_caches()
        # The floor: reading exactly the changed blocks, nothing else.
        floor, _ = timed(["qemu-io", "-f", "qcow2"] + sum((["-c", f"read {b}M 1M"] for b in changed), []) + [image])
        drop_caches()
        t, out = timed(backup, env)
        d = disk_summary(out)
        rows.append((f"incremental, {len(changed)} blocks changed, with the bitmap", t, d["bytes_read"], d["method"]))

        change(image, data_blocks, a.changed, 2)
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", image], check=True,
                                         capture_output=True, text=True).stdout)
        for b in info.get("format-specific", {}).get("data", {}).get("bitmaps", []):
            subprocess.run(["qemu-img", "bitmap", "--remove", image, b["name"]], check=True)
        drop_caches()
        t, out = timed(backup, env)
        d = disk_summary(out)
        rows.append(("incremental without a bitmap (every block compared)", t, d["bytes_read"], d["method"]))

        drop_caches()
        restore_t, _ = timed([coffer, "disk", "restore", "--vault", vault, "latest", "--target",
                              os.path.join(work, "restored.raw")], env)
        os.remove(os.path.join(work, "restored.raw"))
        drop_caches()
        convert_t, _ = timed(["qemu-img", "convert", "-O", "raw", image, os.path.join(work, "converted.raw")])
        os.remove(os.path.join(work, "converted.raw"))

        size = a.size_gb << 30
        print(f"\n{a.size_gb} GiB qcow2 image, {a.data_gb} GiB of random data, "
              f"{a.changed:.0%} of its data blocks changed per incremental; page cache "
              f"{'dropped before each step' if cold else 'warm (could not drop it)'}\n")
        print("| step | time | read | share of the disk | method |")
        print("|---|---|---|---|---|")
        for name, t, read, method in rows:
            print(f"| {name} | {t:.2f} s | {read / MIB:.0f} MiB | {read / size:.2%} | {method} |")
        print(f"| reading the changed blocks alone (qemu-io) | {floor:.2f} s | {len(changed)} MiB | | |")
        print(f"| restore to a raw image | {restore_t:.2f} s | | | |")
        print(f"| `qemu-img convert` to a raw image | {convert_t:.2f} s | | | |")
        print(f"\nincremental with the bitmap: {rows[1][1] / floor:.1f}x the floor; "
              f"restore: {restore_t / convert_t:.2f}x qemu-img convert")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
