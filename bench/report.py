#!/usr/bin/env python3
"""Part of bench/run: turns the measurements in RESULTS (hyperfine JSON exports, peak memory in KB)
into the one table, prints it, and writes BENCHMARKS.md (the whole file: bench/run owns it).

Usage: bench/report.py RESULTS BENCHMARKS.md

Growth curves: the fitted exponent k of time (and of peak memory) against the input size n is the
least-squares slope of log(y(n) - y(0)) against log(n), where y(0) is the same command on an
empty input of the same kind; time is each size's fastest run (other load on the machine only
ever adds to a run, so the minimum is the steadiest estimate of the work; the table shows medians) (the constant start-up cost: process start, configuration, state,
index of no packages). Only sizes whose excess over y(0) is above the noise floor (0.3 ms and 5 %
of y(0) for time; 256 KB for memory) take part; with fewer than two there is no fit ("n/a"). k ≈ 1
is linear; n log n over these ranges fits k ≈ 1.1; the target is k ≤ 1.2.
"""

import datetime
import glob
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys

res, out = sys.argv[1], sys.argv[2]
params = json.load(open(f"{res}/params.json"))
quick = bool(params["quick"])


def load(name):
    return json.load(open(f"{res}/{name}.json"))["results"]


def fmt_ms(s):
    ms = s * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def fmt_n(n):
    return f"{n:,}"


rows = []


def row(figure, ours, peer, ratio, target, ok, notes=""):
    mark = "" if ok is None else (" ✓" if ok else " ✗")
    rows.append(f"| {figure} | {ours} | {peer} | {ratio}{mark} | {target} | {notes} |")


def versus(figure, ours, peer, peer_name, limit, notes=""):
    ratio = ours["median"] / peer["median"]
    row(figure, fmt_ms(ours["median"]), f"{fmt_ms(peer['median'])} ({peer_name})",
        f"{ratio:.3f}", "—" if limit is None else f"≤ {limit}",
        None if limit is None else ratio <= limit, notes)


h = load("hooks")
versus(f"hook phase, {fmt_n(params['hooks'])} trivial hooks", h[0], h[1], "`run-parts`", 1.05)
p = load("packages")
versus(f"install a {fmt_n(params['packages'])}-package release", p[0], p[1], "bare `rpm -U`", 1.15)
ho = load("holdout")  # ours, peer, peer, ours: each side's runs pooled
calls = json.load(open(f"{res}/holdout-calls.json"))
versus(f"hold-out fresh install: {params['holdout_packages']} packages, "
       f"{fmt_n(params['holdout_hooks'])} pre and {fmt_n(params['holdout_hooks'])} post hooks",
       {"median": statistics.median(ho[0]["times"] + ho[3]["times"])},
       {"median": statistics.median(ho[1]["times"] + ho[2]["times"])},
       "`run-parts` + `rpm -U` + `run-parts`", 1.05,
       f"{len(ho[0]['times']) + len(ho[3]['times'])} runs a side in two orders (ours first: "
       f"{ho[0]['median'] / ho[1]['median']:.3f}, peer first: "
       f"{ho[3]['median'] / ho[2]['median']:.3f}); one run under `strace` (`bench/count-calls`): "
       f"rpm commands {calls['rpm']}, queries (`rpm -q…`) {calls['rpm_queries']}; "
       f"state.db opens {calls['state_db_opens']}")
ms = load("migrations-sqlite")
versus(f"{fmt_n(params['migrations'])} migrations from empty, SQLite", ms[0], ms[1],
       "`sqlx migrate run`", 1.0)
mp = load("migrations-postgres")
versus(f"{fmt_n(params['migrations'])} migrations from empty, PostgreSQL", mp[0], mp[1],
       "`sqlx migrate run`", 1.0)
versus(f"{fmt_n(params['migrations'])} migrations from empty, PostgreSQL: the floor", mp[0], mp[2],
       "`psql -1 -f`", None, "one transaction of the concatenated files, no ledger")

sv = load("services")
svp = json.load(open(f"{res}/services-params.json"))
critical = svp["levels"] * svp["delay_ms"] / 1000
n_sv = svp["levels"] * svp["width"]
ours = sv[0]["median"]
row(f"restart {n_sv} services ({svp['levels']} levels × {svp['delay_ms']} ms to ready)",
    fmt_ms(ours), f"{fmt_ms(critical)} (the graph's critical path)", f"{ours / critical:.3f}",
    "≤ 1.2", ours / critical <= 1.2)
row(f"restart {n_sv} services: one by one", fmt_ms(ours),
    f"{fmt_ms(sv[1]['median'])} (one by one, `jobs = 1`)", f"{ours / sv[1]['median']:.3f}",
    "< 0.5", ours / sv[1]["median"] < 0.5)

d = load("download")
v = load("verify")
dp = json.load(open(f"{res}/downloads-params.json"))
mb = dp["bytes"] / 1e6
versus(f"download + verify {dp['count']} artifacts ({mb:.0f} MB, loopback HTTP)", d[0], d[1],
       "`curl` one by one + `sha256sum`", 0.6)
tp = v[1]["median"] / v[0]["median"]
row(f"sha256 verification of the same files (throughput)",
    f"{fmt_ms(v[0]['median'])}, {mb / v[0]['median']:.0f} MB/s",
    f"{fmt_ms(v[1]['median'])}, {mb / v[1]['median']:.0f} MB/s (`openssl dgst -sha256`)",
    f"{tp:.3f}", "≥ 0.9 (peer ÷ ours)", tp >= 0.9,
    f"`sha256sum`: {fmt_ms(v[2]['median'])}")

st = load("status")
mem = json.load(open(f"{res}/status-memory.json"))
status_ok = st[0]["median"] < 0.050 and mem["ours"] < 30 * 1024
versus(f"`status`, up-to-date root, {fmt_n(params['status'])}-package index", st[0], st[1],
       "`rpm -q` of one package", None,
       f"peak memory {mem['ours'] / 1024:.1f} MB (`rpm -q`: {mem['peer'] / 1024:.1f} MB); "
       f"target < 50 ms and < 30 MB:{' ✓' if status_ok else ' ✗'}")


# growth curves
def curve(family):
    points = []
    for path in glob.glob(f"{res}/curve-{family}-*.json"):
        n = int(re.search(r"-(\d+)\.json$", path).group(1))
        r = json.load(open(path))["results"][0]
        kb = int(open(path[:-5] + ".kb").read())
        points.append((n, r["median"], kb, r["min"]))
    return sorted(points)


def exponent(points, floor):
    base = points[0][1]
    xs, ys = [], []
    for n, y in points[1:]:
        excess = y - base
        if excess > floor(base):
            xs.append(math.log(n))
            ys.append(math.log(excess))
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def last_slope(points, floor):
    """The log-log slope between the two largest sizes: the growth where the work dominates."""
    (n1, y1), (n2, y2) = points[-2], points[-1]
    base = points[0][1]
    if y1 - base <= floor(base) or y2 - base <= floor(base):
        return None
    return math.log((y2 - base) / (y1 - base)) / math.log(n2 / n1)


def fmt_k(k):
    if k is None:
        return "n/a (growth within noise)", True
    return f"{k:.2f}", k <= 1.2


curves = [
    ("plan-packages", "`plan`, index packages (fresh root, empty rpm db)"),
    ("status-packages", "`status`, index packages (up-to-date root)"),
    ("plan-migrations", "`plan`, migrations"),
    ("plan-hooks", "`plan`, hooks (per phase, pre and post)"),
    ("plan-services", "`plan`, services"),
]
curve_rows = []
fits = {}
for family, title in curves:
    pts = curve(family)
    if not pts or pts[0][0] != 0:
        continue
    kt = exponent([(n, tmin) for n, _, _, tmin in pts], lambda b: max(0.0003, 0.05 * b))
    km = exponent([(n, kb) for n, _, kb, _ in pts], lambda b: 256)
    lt = last_slope([(n, tmin) for n, _, _, tmin in pts], lambda b: max(0.0003, 0.05 * b))
    lm = last_slope([(n, kb) for n, _, kb, _ in pts], lambda b: 256)
    (st_, okt), (sm, okm) = fmt_k(kt), fmt_k(km)
    (slt, oklt), (slm, oklm) = fmt_k(lt), fmt_k(lm)
    fits[family] = (st_, sm)
    sizes = "; ".join(f"{fmt_n(n)}: {fmt_ms(t)}, {kb / 1024:.1f} MB" for n, t, kb, _ in pts[1:])
    curve_rows.append(
        f"| {title} | {fmt_ms(pts[0][1])}, {pts[0][2] / 1024:.1f} MB | {sizes} | "
        f"{st_}{' ✓' if okt else ' ✗'} | {sm}{' ✓' if okm else ' ✗'} | "
        f"{slt}{' ✓' if oklt else ' ✗'}, {slm}{' ✓' if oklm else ' ✗'} |")

pk = {n: (t, kb) for n, t, kb, _ in curve("plan-packages")}
if 50000 in pk:
    t = pk[50000][0]
    row("`plan`, 50,000-package index (fresh root: empty rpm db)", fmt_ms(t), "—", "—",
        "< 300 ms", t < 0.300, f"peak memory {pk[50000][1] / 1024:.0f} MB")
sk = {n: (t, kb) for n, t, kb, _ in curve("status-packages")}
if 10000 in sk:
    t, kb = sk[10000]
    row("`status`, 10,000-package index (growth curve point)", fmt_ms(t), "—", "—",
        "< 50 ms, < 30 MB", t < 0.050 and kb < 30 * 1024, f"peak memory {kb / 1024:.1f} MB")

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
            if l.startswith("model name")), "?")
nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
load = open("/proc/loadavg").read().split()[2] if os.path.exists("/proc/loadavg") else "?"
curves_note = (" The growth curves were measured again afterwards (`bench/run --curves-only`) "
               "on the same machine." if params.get("curves_only") else "")
mode = (f"**quick mode** (`bench/run --quick`: {params['runs']} runs, small peer figures) — a "
        f"smoke test, not the reference figures: the targets are set for the full sizes, and small "
        f"inputs weigh fixed costs (start-up, one readiness poll) more" if quick else
        f"full mode (`bench/run`: {params['runs']} runs per figure)")
table = "\n".join([
    "| figure | real-upgrade (median) | peer (median) | ratio (ours ÷ peer) | target | notes |",
    "|---|---|---|---|---|---|", *rows])
curve_table = "\n".join([
    "| curve | start-up (n = 0) | median time, peak memory by size | exponent, time | exponent, memory | "
    "slope between the two largest sizes, time, memory |",
    "|---|---|---|---|---|---|", *curve_rows])

text = f"""# Benchmarks

<!-- generated by bench/run, do not edit by hand -->
Measured by `bench/run` in {mode}; hyperfine, each figure side by side with its peer in the same
run, medians; peak memory is `/usr/bin/time -f %M` (maximum resident set size, the least of three
runs). Machine: {cpu}, {nproc} cores, {platform.system()} {platform.release()}, 15-minute load
average {load} when the report was written (other work on the machine inflates absolute times;
the ratios compare runs made side by side);
{datetime.date.today().isoformat()}. Regenerate with `bench/run` (it rewrites this whole file).{curves_note}
Earlier figures, and the before/after of each scale fix, are in the history: `git log -p BENCHMARKS.md`.

{table}

## Growth curves

`real-upgrade plan` (and `status` for index sizes) at each size, {params['curve_runs']} runs each.
The exponent is fitted after subtracting the start-up cost, measured with the same command on an
empty input (n = 0): least squares of log(y(n) − y(0)) on log(n), with y the fastest of the runs
for time (load from elsewhere only adds; the table shows medians) and the peak memory, over the
sizes whose excess is above the noise floor (0.3 ms and 5 % of y(0) for time, 256 KB for memory); "n/a" means fewer than
two sizes rose above it. 1 is linear, n log n fits about 1.1 over these ranges; the target is ≤ 1.2. The
last column is the same log-log slope between the two largest sizes alone, where the work
dominates the start-up cost most: a quadratic loop shows there first.

{curve_table}

## What is measured

- Hook phase: a whole `real-upgrade --yes` run of a release without packages whose only work is
  {fmt_n(params['hooks'])} `#!/bin/sh` hooks that exit 0 (plan, journal, output capture and all),
  against `run-parts` on the same directory.
- Package step: a whole fresh-install run of a {fmt_n(params['packages'])}-package release (verify
  into the cache, one `rpm -U`, journal) against one bare `rpm -U` of the same files into an empty
  root.
- Hold-out fresh install: the package and hook inputs above together, in a release of
  {params['holdout_packages']} packages with {fmt_n(params['holdout_hooks'])} hooks in each of
  `pre-upgrade.d` and `post-upgrade.d`: a whole `real-upgrade --yes` run into a fresh copy of a
  root (hooks, verify into the cache, one `rpm -U`, journal) against a shell running `run-parts`
  on the pre directory, one bare `rpm -U` of the same files with the flags our tool gives rpm, and
  `run-parts` on the post directory, into another fresh copy. Whichever command hyperfine runs
  second came out slower on this machine, so it runs both orders (ours, peer, peer, ours, half
  the runs each) and the medians are of each side's runs together. Its sizes are the same in quick
  mode. The counts in its notes come from `strace -f` of one more run (`bench/count-calls`).
- Migrations: a whole fresh-install run of a release without packages and
  {fmt_n(params['migrations'])} migrations of two statements each (create a table, insert a row),
  against `sqlx migrate run` (sqlx-cli) on the same SQL into a new database; the floor is
  `psql -1 -f` of the concatenated files.
- Services (`bench/services`): a graph in levels under a real runit supervisor, each service
  taking the stated time to become ready (a TCP connect); one `real-upgrade services restart`
  stops all (dependents first) and starts all (dependencies first). The one-by-one peer is the
  same command with `[services] jobs = 1`, what an upgrade script looping over `systemctl
  restart` does. Each run starts 1.1 s after the last (runsv pauses a second after a service
  that lived less than a second exits).
- Downloads (`bench/downloads`): artifacts of 1.05 MiB of random bytes listed by a signed index,
  served by `examples/serve-repo` on 127.0.0.1: a whole `real-upgrade --download-only` (index,
  signature, plan, parallel download with sha256 computed as the bytes arrive) against one `curl`
  per file and one `sha256sum`; then the same command with every artifact cached (hashing only)
  against `openssl dgst -sha256`.
- `status`: an up-to-date root (installed 1.9.0, the newest release) whose index lists
  {fmt_n(params['status'])} package entries over 10 releases; it reads the index's releases and
  skips its package tables (signature, expiry and rollback checks unchanged). Peer: `rpm -q` of
  one package, the floor for "is there anything to do".
- Plan curves run on a fresh root, so the rpm database is empty and `rpm -qa` is not the cost
  measured; the index's packages are split over 10 releases and the plan installs the newest
  release's. The migrations, hooks and services curves plan a fresh install of a release without
  packages with that many migrations, hooks (in each of pre and post) or services (in levels of
  10, each after two of the level before). Hooks 5,000 and services 2,000 are measured beyond the
  issue's sizes, so that these cheap curves have two sizes whose cost stands clear of start-up.
<!-- /generated by bench/run -->
"""
open(out, "w").write(text)
print(table)
print()
print(curve_table)
