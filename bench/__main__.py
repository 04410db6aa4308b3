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
    # leading words pick benches; the rest (from the first option on) goes to the one bench picked,
    # e.g. ``python -m bench quality --case pyjwt-issuer --json``
    args = sys.argv[1:]
    split = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    wanted, passed = set(args[:split]), args[split:]
    if passed and len(wanted) != 1:
        sys.exit("options go to a single bench: python -m bench NAME [OPTIONS]")
    for name in names:
        if wanted and name.removeprefix("bench_") not in wanted and name not in wanted:
            continue
        if not passed:
            print(f"\n## {name.removeprefix('bench_')}", flush=True)
        started = time.perf_counter()
        sys.argv = [f"bench.{name}", *passed]  # each bench parses its own options
        importlib.import_module(f"bench.{name}").main()
        if not passed:
            print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
