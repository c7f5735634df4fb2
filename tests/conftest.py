"""Hermetic tests: no toolkit setting leaks in from the shell or a ``.env`` file."""

from __future__ import annotations

import os

import pytest

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
