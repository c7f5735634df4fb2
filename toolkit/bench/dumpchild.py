"""``discogs-toolkit catalogue load`` in a fresh process that reports its own peak RSS.

``python -m toolkit.bench.dumpchild '<json>'`` runs the CLI command (``{"paths": [...],
"data_dir": ...}``) in this interpreter and prints one JSON line: the exit code, the wall time of
the command and ``VmHWM``. A fresh interpreter keeps the benchmark's own heap out of the figure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Child entry point: ``python -m toolkit.bench.dumpchild '<json config>'``."""
    from toolkit.bench.child import peak_rss_kib

    args = sys.argv[1:] if argv is None else argv
    config: dict[str, Any] = json.loads(args[0])
    # The CLI reads its data dir from the environment, as a user's shell would give it.
    os.environ["TOOLKIT_DATA_DIR"] = str(config["data_dir"])
    from toolkit.cli import main as cli

    started = time.perf_counter()
    code = cli(["catalogue", "load", *map(str, config["paths"]), "--no-progress"])
    elapsed = time.perf_counter() - started
    print(json.dumps({"code": code, "elapsed": elapsed, "maxrss_kib": peak_rss_kib()}))
    return 0


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # everything is written and reported: skip the interpreter teardown
