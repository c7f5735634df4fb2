"""The Discogs simulator in a child process, so its work never competes with the measured client.

A real Discogs server does not share our interpreter: when the simulator runs in the benchmark's
own process its handler threads take the GIL from the client threads being timed, and its memory
shows up in the client's RSS. :class:`SimProcess` starts ``python -m toolkit.bench.simproc`` with a
JSON configuration, reads the simulator's URL from the child's first output line, and talks to it
over stdin/stdout with one JSON object per line (``stats``, ``set``, ``release_ids``,
``user_release_ids``, ``quit``). The child stops when its stdin closes, so it never outlives the
benchmark.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

__all__ = ["SimCounters", "SimProcess"]


@dataclass(frozen=True)
class SimCounters:
    """The simulator's counters (see :class:`toolkit.discogs.simulator.SimStats`)."""

    requests: int
    throttled: int
    by_kind: dict[str, int]


class SimProcess:
    """A :class:`~toolkit.discogs.simulator.DiscogsSimulator` serving from a child process.

    ``releases`` catalogue releases, user ``user`` with ``items`` collection items, and the
    simulator's ``rate_limit`` per ``window`` seconds, ``latency`` ± ``jitter`` per response.
    """

    def __init__(
        self,
        *,
        user: str,
        releases: int = 5_000,
        items: int = 100,
        rate_limit: int = 60,
        window: float = 60.0,
        latency: float = 0.05,
        jitter: float = 0.02,
    ) -> None:
        self.config: dict[str, Any] = {
            "user": user,
            "releases": max(releases, items),
            "items": items,
            "rate_limit": rate_limit,
            "window": window,
            "latency": latency,
            "jitter": jitter,
        }
        self.user = user
        self.rate_limit = rate_limit
        self.window = window
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> SimProcess:
        """Start the child and wait up to ``timeout`` s for its URL.

        Raises RuntimeError if the child exits, answers an error or stays silent that long; the
        child is then killed and reaped, so a failed start leaves no process behind.
        """
        if self._proc is not None:
            return self
        proc = subprocess.Popen(
            [sys.executable, "-m", "toolkit.bench.simproc", json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._proc = proc
        try:
            self._wait_for_output(timeout)
            self.url = str(self._read()["url"])
        except BaseException:
            self._proc = None
            proc.kill()
            _reap(proc)
            raise
        return self

    def stop(self) -> None:
        """Ask the child to quit (closing its stdin); kill it if it does not within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
        finally:
            _reap(proc)

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- commands ---------------------------------------------------------------------------------

    def _wait_for_output(self, timeout: float) -> None:
        """Block until the child has written something (or closed stdout), at most ``timeout`` s."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError("the simulator process is not running")
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"the simulator process did not start within {timeout:g} s")

    def _read(self) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError("the simulator process is not running")
        line = proc.stdout.readline()
        if not line:
            error = proc.stderr.read() if proc.stderr is not None else ""
            proc.wait(timeout=10)
            raise RuntimeError(f"the simulator process exited: {error.strip()[-500:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"simulator process: {answer['error']}")
        return answer

    def _ask(self, command: str, **args: Any) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("the simulator process is not running")
        proc.stdin.write(json.dumps({"command": command, **args}) + "\n")
        proc.stdin.flush()
        return self._read()

    def stats(self) -> SimCounters:
        """The counters since the start (or the last ``reset_counters``)."""
        data = self._ask("stats")
        return SimCounters(int(data["requests"]), int(data["throttled"]), dict(data["by_kind"]))

    def reset_counters(self) -> None:
        """Zero the counters (the rate-limit windows are kept)."""
        self._ask("reset_counters")

    def set(self, **values: float) -> None:
        """Change ``latency``, ``jitter`` (seconds) or ``rate_limit`` of the running simulator."""
        self._ask("set", values=values)

    def release_ids(self) -> list[int]:
        """Every release id of the catalogue, ascending."""
        return [int(v) for v in self._ask("release_ids")["ids"]]

    def user_release_ids(self) -> list[int]:
        """The distinct release ids of the user's collection, in collection order."""
        return [int(v) for v in self._ask("user_release_ids")["ids"]]


def _reap(proc: subprocess.Popen[str]) -> None:
    """Wait for a child that was asked to stop or killed, and close its pipes."""
    try:
        proc.wait(timeout=10)
    finally:
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):  # stdin of a dead child: broken pipe on flush
                    stream.close()


# -- the child ------------------------------------------------------------------------------------


def _serve(config: dict[str, Any], commands: IO[str], out: IO[str]) -> None:
    from toolkit.discogs.simdata import SimCatalogue
    from toolkit.discogs.simulator import DiscogsSimulator

    catalogue = SimCatalogue(releases=int(config["releases"]), seed=0)
    user = catalogue.user(str(config["user"]), items=int(config["items"]))
    sim = DiscogsSimulator(
        catalogue,
        rate_limit=int(config["rate_limit"]),
        window=float(config["window"]),
        latency=float(config["latency"]),
        jitter=float(config["jitter"]),
    )

    def say(data: dict[str, Any]) -> None:
        out.write(json.dumps(data) + "\n")
        out.flush()

    with sim:
        say({"url": sim.url})
        for line in commands:
            if not line.strip():
                continue
            try:
                request = json.loads(line)
                command = request.get("command")
                if command == "quit":
                    say({"ok": True})
                    break
                if command == "stats":
                    stats = sim.stats()
                    say(
                        {
                            "requests": stats.requests,
                            "throttled": stats.throttled,
                            "by_kind": stats.by_kind,
                        }
                    )
                elif command == "reset_counters":
                    sim.reset_counters()
                    say({"ok": True})
                elif command == "set":
                    for name, value in dict(request.get("values", {})).items():
                        if name not in {"latency", "jitter", "rate_limit"}:
                            raise ValueError(f"cannot set {name!r}")
                        setattr(sim, name, int(value) if name == "rate_limit" else float(value))
                    say({"ok": True})
                elif command == "release_ids":
                    say({"ids": catalogue.release_ids()})
                elif command == "user_release_ids":
                    say({"ids": list(dict.fromkeys(int(item["id"]) for item in user.items))})
                else:
                    raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # answer, never die: the parent is waiting for a line
                say({"error": f"{type(exc).__name__}: {exc}"})


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m toolkit.bench.simproc '<json config>'``."""
    args = sys.argv[1:] if argv is None else argv
    _serve(json.loads(args[0]), sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Nothing left to clean up (the server is stopped); skip the ~0.5 s interpreter teardown.
    os._exit(0)
