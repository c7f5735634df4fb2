"""The live view of the shared rate budget: ``discogs-toolkit status`` and ``toolkit.monitor()``.

Everything shown is read from the shared state itself (the window each API host has, and what
every process spending it published: pid, host, activity, progress, 429s, cache hits), never
guessed from this process.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.budget import open_storage
from toolkit.budget.window import Rule, WindowStorage, prune
from toolkit.config import Settings

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "BUDGET_CAPTION",
    "BudgetStatus",
    "HostStatus",
    "Monitor",
    "ProcessStatus",
    "format_status",
    "monitor",
    "read_status",
    "requests_frame",
    "watch",
]


@dataclass(frozen=True)
class ProcessStatus:
    """One process spending a budget, as it last published itself."""

    owner: str
    pid: int
    host: str
    activity: str
    state: str  # "running", "not responding" (silent a while) or "gone" (its pid is dead)
    done: int | None
    total: int | None
    eta_seconds: float | None
    network_requests: int
    rate_limited: int
    cache_hit_rate: float | None
    background: bool
    seconds_since_update: float


@dataclass(frozen=True)
class HostStatus:
    """The window of one API host now: used of limit, pending, pause, when the next slot frees."""

    key: str
    limit: int
    window: float
    used: int
    pending: int
    paused_for: float
    next_free_in: float
    processes: list[ProcessStatus] = field(default_factory=list)


@dataclass(frozen=True)
class BudgetStatus:
    """Every API host's window in one storage (the data dir's file, or Redis)."""

    where: str
    hosts: list[HostStatus]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process(owner: str, info: dict[str, Any], now: float) -> ProcessStatus:
    pid, host = int(info.get("pid", 0)), str(info.get("host", "?"))
    age = max(0.0, now - float(info.get("updated", now)))
    interval = float(info.get("interval", 1.0))
    state = "running"
    if host == socket.gethostname() and pid and not _alive(pid):
        state = "gone"
    elif age > 3 * interval + 1:
        state = "not responding"
    done = info.get("done")
    total = info.get("total")
    eta = None
    if done is not None and total is not None and state == "running":
        elapsed = now - float(info.get("activity_since", now))
        if done >= total:
            eta = 0.0
        elif done > 0 and elapsed > 0:
            eta = (total - done) * elapsed / done
    network = int(info.get("network_requests", 0))
    hits = int(info.get("cache_hits", 0)) + int(info.get("memory_hits", 0))
    rate = hits / (hits + network) if hits + network else None
    return ProcessStatus(
        owner=owner,
        pid=pid,
        host=host,
        activity=str(info.get("activity", "?")),
        state=state,
        done=None if done is None else int(done),
        total=None if total is None else int(total),
        eta_seconds=eta,
        network_requests=network,
        rate_limited=int(info.get("rate_limited", 0)),
        cache_hit_rate=rate,
        background=bool(info.get("background", False)),
        seconds_since_update=age,
    )


def read_status(storage: WindowStorage) -> BudgetStatus:
    """The shared state of every API host in ``storage``, now."""
    now = storage.clock()
    hosts = []
    for key in storage.hosts():
        state = storage.read(key)
        window = state.window or 60.0
        rule = Rule(limit=max(1, state.limit or 60), window=window, grace=min(1.0, window / 20))
        prune(state, now, rule)
        used = len(state.entries)
        paused = max(0.0, state.paused_until - now)
        next_free = 0.0
        if used >= rule.limit and state.entries:
            oldest = min(e.stamp + window for e in state.entries)
            next_free = max(0.0, oldest - now)
        processes = sorted(
            (_process(owner, info, now) for owner, info in storage.processes(key).items()),
            key=lambda p: (p.host, p.pid),
        )
        hosts.append(
            HostStatus(
                key=key,
                limit=rule.limit,
                window=window,
                used=used,
                pending=sum(1 for e in state.entries if e.pending),
                paused_for=paused,
                next_free_in=max(next_free, paused),
                processes=processes,
            )
        )
    return BudgetStatus(storage.where, hosts)


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 90:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min"


def format_status(status: BudgetStatus) -> str:
    """``status`` as the lines ``discogs-toolkit status`` prints."""
    lines = [f"shared rate budget: {status.where}"]
    if not status.hosts:
        lines.append("  no requests made through it yet")
    for host in status.hosts:
        lines.append(
            f"{host.key}: {host.used}/{host.limit} requests in the last {host.window:g} s"
            f" ({host.pending} awaiting answers); next slot frees in {_seconds(host.next_free_in)}"
            + (f"; PAUSED {host.paused_for:.0f} s (Retry-After)" if host.paused_for else "")
        )
        if not host.processes:
            lines.append("  no process is using it now")
        for p in host.processes:
            progress = ""
            if p.total is not None:
                progress = f" {p.done or 0}/{p.total}, ETA {_seconds(p.eta_seconds)}"
            hit = "—" if p.cache_hit_rate is None else f"{p.cache_hit_rate:.0%}"
            kind = "pull" if p.background else "interactive"
            lines.append(
                f"  pid {p.pid} on {p.host} [{p.state}, {kind}]: {p.activity}{progress}; "
                f"{p.network_requests} requests, {p.rate_limited} x 429, cache hits {hit}"
            )
    return "\n".join(lines)


def requests_frame(storage: WindowStorage, key: str, since: float) -> pd.DataFrame:
    """Completed requests per window and process since clock time ``since`` (for a chart)."""
    import pandas as pd

    events = storage.history(key, since)
    window = storage.read(key).window or 60.0
    frame = pd.DataFrame(events, columns=["t", "owner"])
    if frame.empty:
        return pd.DataFrame()
    frame["window"] = ((frame["t"] - frame["t"].min()) // window).astype(int)
    frame["process"] = frame["owner"].str.split(":").str[:2].str.join(":")
    return frame.pivot_table(
        index="window", columns="process", values="t", aggfunc="count", fill_value=0
    )


def _html(status: BudgetStatus) -> str:
    import html

    rows = "".join(
        f"<tr><td>{html.escape(h.key)}</td><td>{h.used}/{h.limit}</td>"
        f"<td>{_seconds(h.next_free_in)}</td></tr>"
        for h in status.hosts
    )
    procs = "".join(
        f"<tr><td>{p.pid}</td><td>{html.escape(p.host)}</td><td>{html.escape(p.activity)}</td>"
        f"<td>{'' if p.total is None else f'{p.done or 0}/{p.total}'}</td>"
        f"<td>{_seconds(p.eta_seconds)}</td><td>{p.rate_limited}</td>"
        f"<td>{'—' if p.cache_hit_rate is None else f'{p.cache_hit_rate:.0%}'}</td>"
        f"<td>{p.state}</td></tr>"
        for h in status.hosts
        for p in h.processes
    )
    return (
        f"<b>shared rate budget</b> ({html.escape(status.where)})"
        "<table><tr><th>API host</th><th>used</th><th>next slot</th></tr>"
        f"{rows}</table><table><tr><th>pid</th><th>host</th><th>doing</th><th>progress</th>"
        f"<th>ETA</th><th>429s</th><th>cache hits</th><th>state</th></tr>{procs}</table>"
    )


#: The one-line caption of the chart :meth:`Monitor.chart` saves (``budget-windows.png``).
BUDGET_CAPTION = (
    "Requests per moving rate window since the pull started, by process; dashed: the limit."
)


class Monitor:
    """A display of the shared budget refreshed every ``interval`` s until :meth:`stop`.

    ``show`` receives the HTML each time (in a notebook, an updating ``display``); :meth:`chart`
    draws requests per window and process since the monitor started, also after :meth:`stop`;
    :meth:`close` releases the shared state.
    """

    def __init__(
        self,
        storage: WindowStorage,
        show: Callable[[str], None],
        *,
        interval: float = 1.0,
    ) -> None:
        self.storage = storage
        self.started = storage.clock()
        self._show = show
        self._interval = interval
        self._stop = threading.Event()
        self._closer = weakref.finalize(self, storage.close)
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="budget-monitor", daemon=True)
        self._thread.start()

    def refresh(self) -> BudgetStatus:
        """Read the shared state and show it now."""
        status = read_status(self.storage)
        self._show(_html(status))
        return status

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except Exception:  # a display must never take the kernel down; try again next time
                continue

    def stop(self) -> None:
        """Stop refreshing (idempotent); :meth:`chart` still works until :meth:`close`."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()

    def close(self) -> None:
        """Stop refreshing and close the shared state (also done when the monitor is collected)."""
        self.stop()
        self._closer()

    def chart(self, key: str | None = None, path: str | Path | None = None) -> Figure:
        """Requests per window across processes since the monitor started, one colour each.

        Saved as a PNG at ``path`` when given (e.g. ``reports/budget-windows.png``).
        """
        from toolkit import chart_style

        keys = [key] if key else self.storage.hosts()
        fig, ax = chart_style.new_figure(9.0, 3.8)
        drawn = False
        with chart_style.styled():
            for name in keys:
                frame = requests_frame(self.storage, name, self.started)
                if frame.empty:
                    continue
                window = self.storage.read(name).window or 60.0
                frame.index = [f"{i * window:g}–{(i + 1) * window:g} s" for i in frame.index]
                frame.plot.bar(stacked=True, ax=ax, width=0.9, rot=0)
                drawn = True
                limit = self.storage.read(name).limit
                if limit:
                    ax.axhline(limit, color="black", linestyle="--", linewidth=1, label="limit")
            if drawn:
                ax.legend(title="process", loc="upper left", bbox_to_anchor=(1.01, 1.0))
            else:
                ax.text(0.5, 0.5, "no requests since the monitor started", ha="center",
                        va="center", transform=ax.transAxes, color="#666666")  # fmt: skip
        ax.set_xlabel("time since the monitor started, one rate window per bar")
        ax.set_ylabel("requests")
        chart_style.integer_ticks(ax.yaxis)
        chart_style.title(
            ax, "Requests per rate window, by process", "the shared budget; dashed: limit"
        )
        if path is not None:
            chart_style.save(fig, path)
        import matplotlib.pyplot as plt

        plt.close(fig)
        return fig


def monitor(settings: Settings | None = None, *, interval: float = 1.0) -> Monitor:
    """In a notebook: a live view of the shared rate budget, updating every ``interval`` s.

    Run it in a cell before (or while) a pull runs; ``.stop()`` ends it and ``.chart()`` draws
    requests per window across every process afterwards. Settings default to ``from_env()``.
    """
    from IPython.display import HTML, display

    settings = settings or Settings.from_env()
    handle = display(HTML("shared rate budget: starting…"), display_id=True)  # type: ignore[no-untyped-call]

    def show(markup: str) -> None:
        if handle is not None:
            handle.update(HTML(markup))  # type: ignore[no-untyped-call]

    return Monitor(open_storage(settings), show, interval=interval)


def watch(
    storage: WindowStorage,
    write: Callable[[str], None],
    *,
    interval: float = 1.0,
    rounds: int | None = None,
) -> None:
    """Print the status every ``interval`` s (clearing the terminal), ``rounds`` times or forever."""
    count = 0
    while rounds is None or count < rounds:
        if count:
            time.sleep(interval)
        write("\x1b[2J\x1b[H" + format_status(read_status(storage)) + "\n")
        count += 1
