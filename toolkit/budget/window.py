"""The moving window every process shares, written once over a small storage interface.

The rules live in plain functions over a :class:`WindowState` (the window's entries, a shared
pause, the last interactive demand); a :class:`WindowStorage` only runs one of them atomically
against its copy of the state (SQLite ``BEGIN IMMEDIATE``, Redis ``WATCH``/``MULTI``), the
``limits`` library's split between strategy and storage. :class:`SharedWindowLimiter` is a
:class:`~toolkit.ratelimit.SlidingWindowLimiter` whose window lives in such a storage, so the
transport uses it unchanged.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from toolkit.ratelimit import SlidingWindowLimiter, Slot

__all__ = [
    "DEFAULT_RESERVE",
    "Entry",
    "Rule",
    "SharedSlot",
    "SharedWindowLimiter",
    "WindowState",
    "WindowStorage",
    "complete",
    "observe_remaining",
    "pause_until",
    "process_owner",
    "try_acquire",
]

T = TypeVar("T")

#: Requests per window a background pull leaves to interactive calls (of Discogs' 60).
DEFAULT_RESERVE = 5
#: Within any 1/PACE of a window PACE x reserve of a pull's slots free up for a person.
PACE = 3
#: Owner of the entries added because the server said fewer remain than the window held.
SERVER = "server"


@dataclass
class Entry:
    """One request in the window: dated ``stamp``; ``pending`` until its response returned."""

    id: str
    stamp: float
    owner: str
    pending: bool = False


@dataclass
class WindowState:
    """What the storage keeps per API host; ``events`` (completions) are appended to its history."""

    entries: list[Entry] = field(default_factory=list)
    paused_until: float = 0.0
    interactive_until: float = 0.0
    limit: int = 0
    window: float = 0.0
    events: list[tuple[float, str]] = field(default_factory=list)

    def dumps(self) -> str:
        """The persistent part as compact JSON (events are not part of it)."""
        return json.dumps(
            {
                "e": [[e.id, e.stamp, e.owner, int(e.pending)] for e in self.entries],
                "p": self.paused_until,
                "i": self.interactive_until,
                "l": self.limit,
                "w": self.window,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, raw: str | bytes | None) -> WindowState:
        """Inverse of :meth:`dumps`; None (nothing stored yet) is an empty window."""
        if not raw:
            return cls()
        data: dict[str, Any] = json.loads(raw)
        entries = [Entry(str(i), float(s), str(o), bool(p)) for i, s, o, p in data.get("e", [])]
        return cls(
            entries,
            float(data.get("p", 0.0)),
            float(data.get("i", 0.0)),
            int(data.get("l", 0)),
            float(data.get("w", 0.0)),
        )


@dataclass(frozen=True)
class Rule:
    """How one process may use the window: its limit, window, reserve and whether it is background.

    ``grace`` extends how long a slot whose response never came back (its process died) counts:
    the server dated it on arrival, a little after we did. ``hold`` is how long one interactive
    request keeps background requests waiting, so a person's next call finds the slot free.
    """

    limit: int
    window: float
    reserve: int = DEFAULT_RESERVE
    background: bool = False
    grace: float = 0.0
    hold: float = 0.0

    @property
    def ceiling(self) -> int:
        """The most requests in the window this caller may add to: the reserve is not its own."""
        if not self.background:
            return self.limit
        return self.limit - min(max(0, self.reserve), self.limit - 1)

    @property
    def paced(self) -> tuple[int, float] | None:
        """At most ``cap`` background requests per ``span`` seconds (None: unpaced, no reserve).

        A pull that took its whole ceiling at once would leave interactive calls nothing but the
        reserve until a full window passed. Holding the last two thirds of a window to
        ``ceiling - 3 x reserve`` requests means that within any third of a window at least
        ``3 x reserve`` of the pull's slots expire and go to a waiting person: at Discogs'
        60/min, 5 at once and 15 more within 20 s. With a large limit (a simulator at 900/min)
        this is hardly a brake; with a small one, at least half the ceiling is allowed.
        """
        if not self.background or self.reserve <= 0:
            return None
        ceiling = self.ceiling
        cap = max(math.ceil(ceiling / 2), ceiling - PACE * min(self.reserve, self.limit - 1))
        return cap, self.window * (PACE - 1) / PACE


def _expiry(entry: Entry, rule: Rule) -> float:
    return entry.stamp + rule.window + (rule.grace if entry.pending else 0.0)


def prune(state: WindowState, now: float, rule: Rule) -> None:
    """Drop entries no longer in the window (pending ones count ``grace`` longer)."""
    # ``now - stamp`` (not ``stamp + window``), as SlidingWindowLimiter rounds it.
    state.entries = [
        e for e in state.entries if now - e.stamp < rule.window + (rule.grace if e.pending else 0)
    ]


def _wait_for(expiries: list[float], over: int, now: float) -> float:
    """Seconds until ``over`` of the ``expiries`` have passed."""
    expiries.sort()
    return max(1e-6, expiries[over - 1] - now)


def _demand(state: WindowState, now: float, rule: Rule, wait: float) -> float:
    """An interactive caller's demand holds background ones until ``hold`` after it can go.

    Covering the wait too means a slot that frees while a person waits is theirs, not the pull's.
    """
    if not rule.background:
        state.interactive_until = max(state.interactive_until, now + wait + rule.hold)
    return wait


def try_acquire(
    state: WindowState,
    now: float,
    rule: Rule,
    owner: str,
    slot_id: str,
    count: int = 1,
    *,
    pending: bool = True,
) -> float:
    """Add ``count`` entries and return 0.0, or return the seconds to wait first.

    ``pending`` entries are slots whose response is awaited (:func:`complete` re-dates them).

    Interactive callers may fill the window to ``limit`` and mark their demand, which holds
    background callers for ``rule.hold``; background callers stop at ``ceiling`` and are
    :attr:`Rule.paced`.
    """
    state.limit, state.window = rule.limit, rule.window
    if state.paused_until > now:
        return _demand(state, now, rule, state.paused_until - now)
    prune(state, now, rule)
    if rule.background and state.interactive_until > now:
        return state.interactive_until - now
    over = len(state.entries) + count - rule.ceiling
    if over > 0:
        return _demand(
            state, now, rule, _wait_for([_expiry(e, rule) for e in state.entries], over, now)
        )
    paced = rule.paced
    if paced is not None:
        cap, span = paced
        recent = [e.stamp + span for e in state.entries if now - e.stamp < span]
        over = len(recent) + count - cap
        if over > 0:
            return _wait_for(recent, over, now)
    _demand(state, now, rule, 0.0)
    for n in range(count):
        state.entries.append(Entry(slot_id if n == 0 else f"{slot_id}.{n}", now, owner, pending))
    return 0.0


def complete(state: WindowState, now: float, slot_id: str, owner: str) -> None:
    """Re-date a slot to ``now`` (its response returned); one that already left counts anew."""
    state.events.append((now, owner))
    for entry in state.entries:
        if entry.id == slot_id:
            entry.stamp, entry.pending = now, False
            return
    state.entries.append(Entry(slot_id, now, owner, False))


def observe_remaining(state: WindowState, now: float, rule: Rule, remaining: int) -> int:
    """Add entries dated now until the window leaves at most ``remaining``; returns how many.

    The server counts every program on the address; when it says fewer remain than the window
    holds, the difference is someone else's, and every process sharing the window backs off.
    """
    prune(state, now, rule)
    excess = rule.limit - len(state.entries) - max(0, remaining)
    for n in range(max(0, excess)):
        state.entries.append(Entry(f"{SERVER}:{now!r}:{n}", now, SERVER, False))
    return max(0, excess)


def pause_until(state: WindowState, now: float, deadline: float, max_pause: float) -> float:
    """Hold every caller until ``deadline`` (at most ``max_pause`` from now); seconds held."""
    state.paused_until = max(state.paused_until, min(deadline, now + max_pause))
    return max(0.0, state.paused_until - now)


class WindowStorage(Protocol):
    """Where the shared window lives: one atomic read-modify-write of a key's state, and the
    processes spending it (published by each for ``status``)."""

    #: Where it is, for people (no password).
    where: str

    def clock(self) -> float:
        """Seconds on the clock every user of this storage shares."""
        ...

    def update(self, key: str, step: Callable[[WindowState], T]) -> T:
        """Run ``step`` on the key's state atomically and store the result; ``step``'s return."""
        ...

    def read(self, key: str) -> WindowState:
        """The key's state as stored (no change)."""
        ...

    def hosts(self) -> list[str]:
        """The API hosts that have a window here."""
        ...

    def publish(self, key: str, owner: str, info: dict[str, Any]) -> None:
        """Store what process ``owner`` is doing (``info`` holds ``updated``, its clock time)."""
        ...

    def withdraw(self, key: str, owner: str) -> None:
        """Forget process ``owner`` (it ended)."""
        ...

    def processes(self, key: str) -> dict[str, dict[str, Any]]:
        """Every published process by owner."""
        ...

    def history(self, key: str, since: float) -> list[tuple[float, str]]:
        """Completed requests (time, owner) since clock time ``since``."""
        ...

    def close(self) -> None:
        """Release connections (idempotent)."""
        ...


_counter = itertools.count()


def process_owner() -> str:
    """A name for this process that no other process on any machine shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SharedSlot(Slot):
    """A slot of a :class:`SharedWindowLimiter`, known to the storage by ``id``."""

    __slots__ = ("id",)

    def __init__(self, limiter: SharedWindowLimiter, stamp: float, slot_id: str) -> None:
        super().__init__(limiter, stamp)
        self.id = slot_id


class SharedWindowLimiter(SlidingWindowLimiter):
    """A :class:`SlidingWindowLimiter` whose window is shared through ``storage`` under ``key``.

    Every process and machine using the same storage and key (the API host) counts in one moving
    window; slots are dated when their response returns, a pause holds them all, and what the
    server says remains is shared. Inside :meth:`background` (a pull) requests leave ``reserve``
    slots per window to interactive ones and are paced (:attr:`Rule.paced`) so more keep
    freeing for them.
    """

    def __init__(
        self,
        storage: WindowStorage,
        key: str,
        limit: int,
        window: float = 60.0,
        *,
        reserve: int = DEFAULT_RESERVE,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_pause: float | None = None,
        owner: str | None = None,
    ) -> None:
        if reserve < 0:
            raise ValueError(f"reserve must be >= 0, got {reserve!r}")
        super().__init__(
            limit, window, clock=clock or storage.clock, sleep=sleep, max_pause=max_pause
        )
        self._storage = storage
        self._key = key
        self._reserve = int(reserve)
        self._owner = owner or process_owner()
        self._background = 0
        self._local = threading.local()
        # Pending slots of a process that died count a little longer than a window (the server
        # dated them on arrival); interactive demand holds background callers a thirtieth of it.
        self._grace = min(1.0, self._window / 20)
        self._hold = self._window / 30

    @property
    def storage(self) -> WindowStorage:
        """Where the window lives."""
        return self._storage

    @property
    def key(self) -> str:
        """The API host the window is kept for."""
        return self._key

    @property
    def owner(self) -> str:
        """This process's name in the shared state."""
        return self._owner

    @property
    def reserve(self) -> int:
        """Slots per window a background caller leaves to interactive ones."""
        return self._reserve

    @property
    def is_background(self) -> bool:
        """True inside :meth:`background`."""
        return self._background > 0

    @contextlib.contextmanager
    def background(self) -> Iterator[None]:
        """Within this block the limiter's requests are a pull's: they leave the reserve alone."""
        with self._cond:
            self._background += 1
        try:
            yield
        finally:
            with self._cond:
                self._background -= 1

    def rule(self) -> Rule:
        """The rule this limiter's next request follows."""
        return Rule(
            self._limit, self._window, self._reserve, self._background > 0, self._grace, self._hold
        )

    # -- SlidingWindowLimiter's hooks, on the shared state ------------------------------------

    def _try_locked(self, tokens: float, now: float) -> float:
        rule = self.rule()
        slot_id = f"{self._owner}:{next(_counter)}"
        now = self._clock()  # the storage's clock at the moment of the transaction
        pending = getattr(self._local, "slotting", False)
        wait = self._storage.update(
            self._key,
            lambda s: try_acquire(s, now, rule, self._owner, slot_id, int(tokens), pending=pending),
        )
        if wait == 0.0:
            self._local.slot = (slot_id, now)
        return wait

    def _wait_locked(self, tokens: float, now: float) -> float:
        state = self._storage.read(self._key)
        return try_acquire(state, now, self.rule(), self._owner, "peek", int(tokens))

    def acquire_slot(self, timeout: float | None = None) -> Slot | None:
        """Wait for one slot of the shared window (None on timeout); complete it on response."""
        self._local.slotting = True
        try:
            if self._wait_loop(1, timeout) is None:
                return None
        finally:
            self._local.slotting = False
        slot_id, stamp = self._local.slot
        return SharedSlot(self, stamp, slot_id)

    def _redate(self, slot: Slot) -> None:
        if slot._done:
            return
        slot._done = True
        slot_id = slot.id if isinstance(slot, SharedSlot) else f"{self._owner}:{next(_counter)}"
        now = self._clock()
        self._storage.update(self._key, lambda s: complete(s, now, slot_id, self._owner))
        slot._stamp = now

    def pause(self, seconds: float) -> float:
        """Hold every process sharing the window for ``seconds`` (capped); seconds held from now."""
        now = self._clock()
        deadline = now + max(0.0, seconds)
        max_pause = self._max_pause
        return self._storage.update(self._key, lambda s: pause_until(s, now, deadline, max_pause))

    def _pause_locked(self, now: float, deadline: float) -> None:
        max_pause = self._max_pause
        self._storage.update(self._key, lambda s: pause_until(s, now, deadline, max_pause))

    def paused_for(self) -> float:
        """Seconds the shared pause still holds every process (0 when not paused)."""
        return max(0.0, self._storage.read(self._key).paused_until - self._clock())

    def observe_remaining(self, remaining: int) -> None:
        """Share what the server says remains: every process slows down when it is less."""
        rule = self.rule()
        now = self._clock()
        # Almost always the window already holds at least what the server counted: a plain read
        # says so without taking the write lock (other processes only ever add entries).
        seen = self._storage.read(self._key)
        prune(seen, now, rule)
        if rule.limit - len(seen.entries) - max(0, remaining) <= 0:
            return
        self._storage.update(self._key, lambda s: observe_remaining(s, now, rule, remaining))

    def in_window(self) -> int:
        """Requests of every process counted in the shared window now."""
        state = self._storage.read(self._key)
        prune(state, self._clock(), self.rule())
        return len(state.entries)

    def get_tokens(self) -> float:
        """``limit`` minus the shared window's requests (never below 0)."""
        return float(max(0, self._limit - self.in_window()))

    def __repr__(self) -> str:
        return (
            f"SharedWindowLimiter(key={self._key!r}, limit={self._limit}, "
            f"window={self._window:g}, reserve={self._reserve}, at={self._storage.where})"
        )
