#!/usr/bin/env python3
"""Summarise bench/compare.sh measurements: the median of every step per tool,
and Coffer's ratio to each peer (below 1 means Coffer is faster or smaller);
coffer-wo (backups with a write-only credential) is shown as a peer, and as
its own ratio to coffer.

  report.py RESULTS.tsv
"""
import csv
import statistics
import sys
from collections import defaultdict

STEPS = ["init", "first", "unchanged", "changed", "restore", "check"]
PEERS = ["coffer-wo", "restic", "borg", "rustic"]


def main(path):
    rows = defaultdict(list)
    runs = set()
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows[(r["tool"], r["step"])].append(r)
            runs.add(r["run"])
    tools = [t for t in ["coffer"] + PEERS if any(k[0] == t for k in rows)]

    def med(tool, step, field):
        vals = [float(r[field]) for r in rows.get((tool, step), [])]
        return statistics.median(vals) if vals else None

    def cpu(tool, step):
        vals = [float(r["user_s"]) + float(r["sys_s"]) for r in rows.get((tool, step), [])]
        return statistics.median(vals) if vals else None

    print(f"Medians of {len(runs)} run(s). Ratio = Coffer / peer.\n")
    for title, getter, unit in [
        ("Wall time", lambda t, s: med(t, s, "wall_s"), "s"),
        ("CPU time (user + system)", cpu, "s"),
        ("Peak memory (max RSS)", lambda t, s: med(t, s, "maxrss_kb") and med(t, s, "maxrss_kb") / 1024, "MB"),
        ("Vault size after the step", lambda t, s: med(t, s, "repo_bytes") and med(t, s, "repo_bytes") / 1e6, "MB"),
    ]:
        print(f"### {title} ({unit})\n")
        head = ["step"] + tools + [f"coffer/{p}" for p in tools[1:]] + ["coffer/best peer"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for step in STEPS:
            if title.startswith("Vault") and step in ("restore",):
                continue
            vals = [getter(t, step) for t in tools]
            if all(v is None for v in vals):
                continue
            cells = [step] + [fmt(v) for v in vals]
            for v in vals[1:]:
                cells.append(f"{vals[0] / v:.2f}" if vals[0] is not None and v else "–")
            # Coffer's own write-only mode is not a peer to beat.
            peers = [v for t, v in zip(tools[1:], vals[1:]) if v and t != "coffer-wo"]
            cells.append(f"{vals[0] / min(peers):.2f}" if vals[0] is not None and peers else "–")
            print("| " + " | ".join(cells) + " |")
        print()
    if any(k[0] == "coffer-wo" for k in rows):
        print("### A write-only credential against the vault key (coffer-wo / coffer, wall)\n")
        print("| step | ratio |")
        print("|---|---|")
        for step in ["first", "unchanged", "changed"]:
            w, c = med("coffer-wo", step, "wall_s"), med("coffer", step, "wall_s")
            if w and c:
                print(f"| {step} | {w / c:.2f} |")
        print()
    base = {s: med("machine", s, "wall_s") for s in ["read", "stat", "copy"]}
    if any(base.values()):
        print("### What the machine allows (wall s)\n")
        print("| read the tree (tar) | stat every entry (find) | two parallel cp -a |")
        print("|---|---|---|")
        print(f"| {fmt(base['read'])} | {fmt(base['stat'])} | {fmt(base['copy'])} |\n")
        pairs = [("first", "read"), ("unchanged", "stat"), ("restore", "copy")]
        print("| Coffer step | Coffer / machine baseline |")
        print("|---|---|")
        for step, b in pairs:
            c = med("coffer", step, "wall_s")
            if c and base[b]:
                print(f"| {step} vs {b} | {c / base[b]:.2f} |")
        print()


def fmt(v):
    if v is None:
        return "–"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


if __name__ == "__main__":
    main(sys.argv[1])
