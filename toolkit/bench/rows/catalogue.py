"""Rows 16-17: loading a Discogs dump into the catalogue, and what the catalogue saves a pull.

Row 16 builds a releases dump of 100,000 releases (5,000 in quick mode) from the bundled real
sample (the 1,000 records repeated under new ids, gzipped) and loads it end to end with
``discogs-toolkit catalogue load`` in a fresh process, then converts the same file with
discogskit (PyPI, its defaults: Parquet, decompressing to disk first) in the same run. Both are
watched from outside at 20 Hz: the memory of the whole process tree (PSS, so a page shared by
forked workers counts once), and the disk used beside the input and in the output folder. Our
main process's own ``VmHWM`` is reported too. Big releases files are parsed by worker processes
(:mod:`toolkit.catalogue.parallel`), as discogskit parses in workers too.

Row 17 compares a 1,000-item pull with details from the API at Discogs' 60/min (computed from
its request count and the rate bound; waiting ~16 minutes proves nothing more) with a real
``pull --details-from auto`` after loading the simulator's dump, measured.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from toolkit.bench.model import BenchContext, RowResult

__all__ = ["build_releases_dump", "catalogue_pull", "dump_load"]

_SAMPLE = "discogs_20200806_releases.xml.gz"
_RELEASE = re.compile(rb'<release id="\d+"(.*?)</release>', re.S)
_POLL = 0.05
MIB = 1024 * 1024


def build_releases_dump(path: Path, releases: int) -> Path:
    """Write ``releases`` real sample records renumbered 1..N as a gzipped releases dump at ``path``.

    Kept when it exists with that many releases (named in a sidecar file): building 100,000
    takes a while and the content never changes.
    """
    stamp = path.with_name(path.name + ".releases")
    if path.is_file() and stamp.is_file() and stamp.read_text().strip() == str(releases):
        return path
    data = resources.files("toolkit.discogs").joinpath("data", _SAMPLE)
    with data.open("rb") as raw, gzip.open(raw) as xml:
        records = [m.group(1) for m in _RELEASE.finditer(xml.read())]
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    with gzip.open(temp, "wb", compresslevel=6) as out:
        out.write(b"<releases>\n")
        for number in range(1, releases + 1):
            body = records[(number - 1) % len(records)]
            out.write(b'<release id="%d"%s</release>\n' % (number, body))
        out.write(b"</releases>\n")
    os.replace(temp, path)
    stamp.write_text(f"{releases}\n")
    return path


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _pss_kib(pid: int) -> int:
    """The process's proportional set size: shared pages (forked workers, libraries) split
    between the processes sharing them, so a tree's sum counts each page once."""
    with suppress(OSError, ValueError), open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def _tree_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with suppress(OSError):  # renamed or removed while walked
                total += os.lstat(os.path.join(root, name)).st_size
    return total


@dataclass
class _Watch:
    """What a watched command used at its peak: the tree's memory (PSS) and disk, at 20 Hz."""

    peak_pss_kib: int = 0
    peak_disk: int = 0
    samples: int = 0
    xml_files: set[str] = field(default_factory=set)


@contextmanager
def _watching(pid: int, folders: list[Path]) -> Iterator[_Watch]:
    watch = _Watch()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rss = sum(_pss_kib(p) for p in (pid, *_children(pid)))
            disk = sum(_tree_bytes(f) for f in folders)
            watch.peak_pss_kib = max(watch.peak_pss_kib, rss)
            watch.peak_disk = max(watch.peak_disk, disk)
            for folder in folders:
                for _root, _dirs, files in os.walk(folder):
                    watch.xml_files.update(n for n in files if ".xml" in n and ".gz" not in n)
            watch.samples += 1
            stop.wait(_POLL)

    thread = threading.Thread(target=sample, name="bench-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        stop.set()
        thread.join()


def _run_watched(
    argv: list[str], folders: list[Path]
) -> tuple[subprocess.CompletedProcess[str], float, float, _Watch]:
    """Run ``argv`` watched; returns it done, its wall time, CPU seconds (its tree) and the watch."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with _watching(proc.pid, folders) as watch:
        out, err = proc.communicate(timeout=3600)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the child and what it waited for
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), elapsed, cpu, watch


def _discogskit() -> str | None:
    """The discogskit command beside this interpreter, or None when it is not installed."""
    import importlib.util

    if importlib.util.find_spec("discogskit") is None:  # found without importing it
        return None
    command = Path(sys.executable).with_name("discogskit")
    return str(command) if command.is_file() else shutil.which("discogskit")


@dataclass
class _Run:
    """One timed run of a converter over the input."""

    seconds: float
    cpu: float
    watch: _Watch
    hwm_mib: float = 0.0


def _ours(source: Path, out: Path) -> _Run:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = json.dumps({"paths": [str(source)], "data_dir": str(out)})
    done, elapsed, cpu, watch = _run_watched(
        [sys.executable, "-m", "toolkit.bench.dumpchild", config], [source.parent, out]
    )
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"catalogue load failed: {done.stderr.strip()[-500:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    if child["code"] != 0:
        raise RuntimeError(f"catalogue load exited {child['code']}: {done.stderr.strip()[-500:]}")
    return _Run(elapsed, cpu, watch, child["maxrss_kib"] / 1024)


def _theirs(command: str, source: Path, out: Path) -> _Run | str:
    """discogskit's run, or why it failed."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    done, elapsed, cpu, watch = _run_watched(
        [command, "convert", str(source), "--output", str(out), "--no-progress"],
        [source.parent, out],
    )
    for leftover in source.parent.glob(source.name.removesuffix(".gz") + "*"):
        if leftover != source:  # its decompressed XML, lock or marker, if left behind
            leftover.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        return f"discogskit exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return _Run(elapsed, cpu, watch)


def dump_load(ctx: BenchContext, row: RowResult) -> None:
    """Releases/s, peak memory and extra disk of loading a gzipped releases dump, against discogskit.

    Full mode runs each twice, alternating (ours, discogskit, discogskit, ours), and keeps each
    side's faster run: on a shared machine that is the one least disturbed.
    """
    releases: int = ctx.pick(5_000, 100_000)
    folder = ctx.work_dir / "dump"
    source = build_releases_dump(folder / "input" / "discogs_20200806_releases.xml.gz", releases)
    input_bytes = source.stat().st_size
    command = _discogskit()
    ctx.log(f"  {releases:,} releases ({input_bytes / MIB:.0f} MiB gzipped) ...")
    order = ["ours", "discogskit"] if ctx.quick else ["ours", "discogskit", "discogskit", "ours"]
    runs: dict[str, list[_Run]] = {"ours": [], "discogskit": []}
    failure = ""
    for side in order:
        if side == "ours":
            runs["ours"].append(_ours(source, folder / "ours"))
        elif command is not None and not failure:
            result = _theirs(command, source, folder / "discogskit")
            if isinstance(result, str):
                failure = result
            else:
                runs["discogskit"].append(result)
    ours = min(runs["ours"], key=lambda run: run.seconds)
    ours_rate = releases / ours.seconds
    ours_tree = max(run.watch.peak_pss_kib for run in runs["ours"]) / 1024
    ours_hwm = max(run.hwm_mib for run in runs["ours"])
    ours_disk = max(run.watch.peak_disk for run in runs["ours"]) - input_bytes
    no_copy = not any(run.watch.xml_files for run in runs["ours"])
    row.median = ours_rate
    row.repeats = len(runs["ours"])
    row.others = {
        "releases": float(releases),
        "input MiB (gzipped)": input_bytes / MIB,
        "ours s": ours.seconds,
        "ours CPU s": ours.cpu,
        "ours releases per CPU s": releases / ours.cpu if ours.cpu else 0.0,
        "ours peak tree PSS MiB (20 Hz)": ours_tree,
        "ours main process VmHWM MiB": ours_hwm,
        "ours peak extra disk MiB": ours_disk / MIB,
    }
    labels = [f"catalogue load (ours), {releases:,} releases"]
    medians = [ours_rate]
    if command is None:
        row.baseline_name = "discogskit (unavailable: not installed; pip install -e '.[bench]')"
        row.passed = None
        verdict = "baseline unavailable"
    elif failure:
        row.baseline_name = "discogskit (failed here)"
        row.passed = None
        verdict = f"baseline failed: {failure}"
    else:
        theirs = min(runs["discogskit"], key=lambda run: run.seconds)
        dk_rate = releases / theirs.seconds
        dk_tree = max(run.watch.peak_pss_kib for run in runs["discogskit"]) / 1024
        dk_disk = max(run.watch.peak_disk for run in runs["discogskit"]) - input_bytes
        row.baseline_name = "discogskit convert (Parquet, defaults)"
        row.baseline_median = dk_rate
        row.ratio = ours_rate / dk_rate
        row.ratio_note = "ours / discogskit (releases/s; higher is better)"
        row.others.update(
            {
                "discogskit s": theirs.seconds,
                "discogskit CPU s": theirs.cpu,
                "discogskit releases per CPU s": releases / theirs.cpu if theirs.cpu else 0.0,
                "discogskit peak tree PSS MiB (20 Hz)": dk_tree,
                "discogskit peak extra disk MiB": dk_disk / MIB,
            }
        )
        labels.append("discogskit convert (defaults)")
        medians.append(dk_rate)
        row.passed = row.ratio >= 1.5 and max(ours_hwm, ours_tree) <= 400 and no_copy
        copy = any(run.watch.xml_files for run in runs["discogskit"])
        verdict = (
            f"{row.ratio:.2f}x discogskit's {dk_rate:,.0f} releases/s ({theirs.cpu:.0f} CPU s, "
            f"peak PSS {dk_tree:.0f} MiB, {dk_disk / MIB:.0f} MiB extra disk at its peak, "
            f"{'a decompressed copy' if copy else 'no XML copy'})"
        )
    best = "best of 2 each, alternating" if len(runs["ours"]) > 1 else "one run each"
    row.note = (
        f"{releases:,} real releases (the 2020-08-06 sample renumbered), "
        f"{input_bytes / MIB:.0f} MiB gzipped, {best}: loaded end to end in {ours.seconds:.1f} s "
        f"({ours.cpu:.0f} CPU s), {ours_rate:,.0f} releases/s, peak memory {ours_tree:.0f} MiB "
        f"(PSS of the process and its parsing workers; main process VmHWM {ours_hwm:.0f} MiB), "
        f"{ours_disk / MIB:.0f} MiB extra disk (the Parquet catalogue; no decompressed copy: "
        f"{'yes' if no_copy else 'NO'}); {verdict}."
    )
    row.series = {
        "kind": "bars",
        "labels": labels,
        "medians": medians,
        "unit": "releases/s (higher is better)",
        "log": False,
    }


def catalogue_pull(ctx: BenchContext, row: RowResult) -> None:
    """A 1,000-item pull's details from the catalogue (measured) vs the API at 60/min (computed)."""
    import datetime as dt

    from toolkit.bench.rows.network import USER, _client
    from toolkit.bench.simproc import SimProcess
    from toolkit.catalogue import load_dumps
    from toolkit.config import Settings
    from toolkit.db import Database
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.pull import pull_collection, rate_bound_seconds

    items: int = ctx.pick(200, 1_000)
    limit, window = 60, 60.0
    folder = ctx.work_dir / "catalogue-pull"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # The simulator's own dump (seed 0, as SimProcess serves): what `make demo` loads.
    dump = SimCatalogue(releases=5_000, seed=0).write_dump(folder / "dump", dt.date(2020, 8, 6))
    with SimProcess(user=USER, releases=5_000, items=items, rate_limit=limit, window=window,
                    latency=0.05, jitter=0.02) as sim:  # fmt: skip
        owned = sim.user_release_ids()
        started = time.perf_counter()
        load_dumps(dump, folder / "data")
        loaded = time.perf_counter()
        with _client(sim, limit=limit, window=window) as client:
            # A real `pull --details-from auto`: every release the catalogue holds is copied from
            # it, and only the rest (none here: the dump has them all) is asked of the API.
            report = pull_collection(USER, folder / "collection.duckdb", client=client,
                                     progress=False, details_from="auto",
                                     settings=Settings(data_dir=folder / "data"))  # fmt: skip
        with Database.connect(folder / "collection.duckdb", read_only=True) as db:
            found = int(db.scalar(
                "SELECT count(*) FROM releases WHERE source = 'catalogue' AND release_id IN "
                "(SELECT release_id FROM collection_items)"
            ))  # fmt: skip
        finished = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    ours_requests = report.network_requests
    ours = finished - started
    api_requests = report.pages + len(owned)
    api_seconds = rate_bound_seconds(api_requests, limit, window)
    row.median = ours
    row.repeats = 1
    row.baseline_name = f"details from the API at {limit}/min (rate bound, computed)"
    row.baseline_median = api_seconds
    row.ratio = api_seconds / ours if ours else None
    row.ratio_note = "API time / catalogue time (x faster)"
    row.others = {
        "items": float(items),
        "distinct releases": float(len(owned)),
        "catalogue requests": float(ours_requests),
        "API requests": float(api_requests),
        "catalogue load s": loaded - started,
        "pull s": finished - loaded,
        "releases from the catalogue": float(report.from_catalogue),
        "releases from the API": float(report.from_api),
        "/releases requests": float(report.release_requests),
    }
    row.passed = (
        found == len(owned) == report.from_catalogue
        and report.release_requests == 0
        # The listing, plus at most the custom field names (asked once items use a field whose
        # name the database does not hold yet): never a request for a release's details.
        and ours_requests <= report.pages + 1
    )
    row.note = (
        f"{items:,} items ({len(owned):,} releases): from the catalogue {ours:.1f} s and "
        f"{ours_requests} requests (loading the simulator's dump {loaded - started:.1f} s, then "
        f"`pull --details-from auto` at {limit}/min {finished - loaded:.1f} s: "
        f"{report.from_catalogue:,} of {len(owned):,} releases from the catalogue, "
        f"{report.release_requests} /releases requests) vs {api_requests:,} requests from the "
        f"API, at least {api_seconds / 60:.1f} min at {limit}/min."
    )
    row.series = {
        "kind": "bars",
        "labels": ["details from the catalogue", f"details from the API ({limit}/min)"],
        "medians": [ours, api_seconds],
        "unit": "seconds (lower is better)",
        "log": True,
    }
