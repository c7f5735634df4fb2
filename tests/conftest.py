"""Hermetic tests: no toolkit setting leaks in from the shell or a ``.env`` file."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import toolkit.config
from toolkit.config import ENV_FILE_VARIABLE, ENV_VARIABLES


@pytest.fixture(autouse=True)
def hermetic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clear every variable ``Settings.from_env`` reads (and any ``TOOLKIT_*``); disable ``.env``.

    ``TOOLKIT_ENV_FILE`` is set empty rather than removed, so subprocesses and notebook kernels the
    tests start inherit "no ``.env``" too. A test sets what it needs with ``monkeypatch.setenv``.
    """
    for name in list(os.environ):
        if name in ENV_VARIABLES or name.startswith("TOOLKIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv(ENV_FILE_VARIABLE, "")


@pytest.fixture(autouse=True)
def private_default_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``Settings()``'s default data directory is a fresh folder, never the checkout's ``data/``.

    After a ``make demo`` the checkout's ``data/`` holds a catalogue, an HTTP cache and a rate
    budget: a test that builds default settings must see none of them (nor write there).
    """
    folder = tmp_path_factory.mktemp("default-data")
    monkeypatch.setattr(toolkit.config, "default_data_dir", lambda: folder)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis server: ``$TEST_REDIS_URL`` (``make test`` starts one with scripts/redis.sh),
    else a private ``redis-server`` started here on a free port, with no persistence.

    Skips (fails under CI, which must install it) only when ``redis-server`` is not installed.
    """
    configured = os.environ.get("TEST_REDIS_URL", "").strip()
    if configured:
        yield configured
        return
    from toolkit.budget.redisserver import private_redis, redis_server_binary

    if redis_server_binary() is None:
        reason = "redis-server is not installed; `make test` installs it (scripts/redis.sh)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    with private_redis() as url:
        yield url
