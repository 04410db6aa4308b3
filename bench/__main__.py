"""Run every benchmark: ``python -m bench`` (or ``make bench``). Each prints its own figures."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> None:
    names = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
    )
    wanted = set(sys.argv[1:])
    for name in names:
        if wanted and name.removeprefix("bench_") not in wanted and name not in wanted:
            continue
        print(f"\n## {name.removeprefix('bench_')}", flush=True)
        started = time.perf_counter()
        sys.argv = [f"bench.{name}"]  # each bench parses its own options; the runner's are not theirs
        importlib.import_module(f"bench.{name}").main()
        print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
