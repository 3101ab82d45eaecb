#!/usr/bin/env python3
"""Reproducible benchmark data for bench/compare.sh.

`generate DIR` writes a tree that resembles what operators back up: source-like
text, binaries that share code with each other, a large incompressible file, a
disk image that is mostly zero runs, and many small files. The same seed gives
the same bytes on every machine, so runs months apart compare.

`mutate DIR` changes about 5% of the files the way a day of work does: some
appended to, some rewritten in the middle, some deleted, and new ones added.

`smallfiles DIR N` writes N small files for the scale runs.
"""

import argparse
import os
import random
import sys

WORDS = (
    "fn let mut impl struct enum match return self pub use mod crate where "
    "async await loop while for in if else break continue const static type "
    "trait dyn Box Vec String Option Some None Result Ok Err u8 u32 u64 usize "
    "i64 bool true false len push iter map collect into from as ref clone new "
    "buffer index chunk vault point restore backup error path file read write"
).split()
PUNCT = ["(", ")", "{", "}", ";", ",", ".", "::", "->", "=", "&", "<", ">", "\n"]


def text_blob(rng, size):
    parts = []
    total = 0
    while total < size:
        line = " " * (4 * rng.randrange(0, 4))
        for _ in range(rng.randrange(2, 12)):
            line += rng.choice(WORDS) + rng.choice(PUNCT[:-1]) + " "
        line += "\n"
        parts.append(line)
        total += len(line)
    return "".join(parts).encode()[:size]


def binary_blob(rng, size, library):
    """Executable-like bytes: stretches copied from a shared library of code
    (so binaries deduplicate against each other, as statically linked programs
    do), skewed opcode-like bytes (compressible about 2:1), and some noise."""
    out = bytearray()
    skewed = bytes(rng.choices(range(256), weights=[0.9 ** i for i in range(256)], k=1 << 16))
    while len(out) < size:
        pick = rng.random()
        if pick < 0.45 and library is not None:
            start = rng.randrange(0, len(library) - (1 << 20))
            out += library[start:start + rng.randrange(64 << 10, 1 << 20)]
        elif pick < 0.85:
            start = rng.randrange(0, len(skewed) - 8192)
            out += skewed[start:start + rng.randrange(1024, 8192)] * rng.randrange(1, 4)
        else:
            out += rng.randbytes(rng.randrange(1024, 32 << 10))
    return bytes(out[:size])


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def generate(root, seed, scale):
    rng = random.Random(seed)
    mib = 1 << 20

    # Source-like text: 8,000 files, 2 KiB to 64 KiB, in a package-like layout.
    for i in range(int(8000 * scale)):
        path = os.path.join(root, "src", f"pkg{i % 40:02d}", f"mod{(i // 40) % 25:02d}", f"file{i:05d}.rs")
        write(path, text_blob(rng, rng.randrange(2 << 10, 64 << 10)))

    # Binaries: 120 files from 64 KiB to 16 MiB sharing a 24 MiB library.
    lib_rng = random.Random(seed + 1)
    library = binary_blob(lib_rng, 24 * mib, binary_blob(lib_rng, 2 * mib + (1 << 20), None))
    for i in range(int(120 * scale)):
        size = int(rng.paretovariate(1.2) * (256 << 10))
        size = max(64 << 10, min(size, 16 * mib))
        write(os.path.join(root, "bin", f"tool{i:03d}"), binary_blob(rng, size, library))

    # One large incompressible file (media, already-compressed archives).
    big = os.path.join(root, "media", "archive.bin")
    os.makedirs(os.path.dirname(big), exist_ok=True)
    with open(big, "wb") as f:
        for _ in range(int(512 * scale)):
            f.write(rng.randbytes(mib))

    # A disk image: 1 GiB written out in full (not sparse), 85% in long zero runs.
    image = os.path.join(root, "images", "disk.img")
    os.makedirs(os.path.dirname(image), exist_ok=True)
    zero = bytes(mib)
    with open(image, "wb") as f:
        for block in range(int(1024 * scale)):
            if rng.random() < 0.85:
                f.write(zero)
            elif block % 3 == 0:
                f.write(text_blob(rng, mib))
            else:
                f.write(rng.randbytes(mib // 2) + bytes(mib // 2))

    # 100,000 small files: configuration, metadata, lock files.
    mixed_smallfiles(os.path.join(root, "small"), int(100_000 * scale), seed + 2)


def mixed_smallfiles(root, count, seed):
    """The small files of `generate` (kept as they are so that the dataset
    stays the same bytes): half fresh text, half random bytes."""
    rng = random.Random(seed)
    for i in range(count):
        path = os.path.join(root, f"d{i // 1000:04d}", f"f{i:07d}.conf")
        size = rng.randrange(0, 4096)
        if rng.random() < 0.5:
            data = text_blob(rng, size)
        else:
            data = rng.randbytes(size)
        write(path, data)


def smallfiles(root, count, seed):
    """Small files, 1,000 per directory: half text cut from a shared corpus at
    random places (compressible, rarely identical), half random bytes."""
    rng = random.Random(seed)
    corpus = text_blob(rng, 4 << 20)
    for i in range(count):
        if i % 1000 == 0:
            directory = os.path.join(root, f"d{i // 1000:04d}")
            os.makedirs(directory, exist_ok=True)
        size = rng.randrange(0, 4096)
        if rng.random() < 0.5:
            at = rng.randrange(0, len(corpus) - size)
            data = corpus[at:at + size]
        else:
            data = rng.randbytes(size)
        with open(os.path.join(directory, f"f{i:07d}.conf"), "wb") as f:
            f.write(data)


def mutate(root, seed, share):
    rng = random.Random(seed)
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            files.append(os.path.join(dirpath, name))
    chosen = rng.sample(files, max(4, int(len(files) * share)))
    counts = {"appended": 0, "rewritten": 0, "deleted": 0, "new": 0}
    for n, path in enumerate(chosen):
        kind = n % 4
        size = os.path.getsize(path)
        if kind == 0:
            with open(path, "ab") as f:
                f.write(text_blob(rng, rng.randrange(100, 64 << 10)))
            counts["appended"] += 1
        elif kind == 1:
            # Rewrite a stretch in the middle, as a database or an image does in place.
            with open(path, "r+b") as f:
                span = min(size, rng.randrange(100, 256 << 10))
                f.seek(max(0, size // 2 - span // 2))
                f.write(rng.randbytes(span))
            counts["rewritten"] += 1
        elif kind == 2:
            os.remove(path)
            counts["deleted"] += 1
        else:
            write(path + ".new", text_blob(rng, rng.randrange(100, 128 << 10)))
            counts["new"] += 1
    print(" ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--scale", type=float, default=1.0, help="multiply every part's size")
    m = sub.add_parser("mutate")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, default=2)
    m.add_argument("--share", type=float, default=0.05)
    s = sub.add_parser("smallfiles")
    s.add_argument("dir")
    s.add_argument("count", type=int)
    s.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    if args.cmd == "generate":
        generate(args.dir, args.seed, args.scale)
    elif args.cmd == "mutate":
        mutate(args.dir, args.seed, args.share)
    else:
        smallfiles(args.dir, args.count, args.seed)


if __name__ == "__main__":
    main()
