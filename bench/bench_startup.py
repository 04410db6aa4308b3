"""`backend-review --help` start-up time (DESIGN.md target: <= 0.3 s)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    exe = shutil.which("backend-review", path=str(Path(sys.executable).parent)) or "backend-review"
    runs = []
    for _ in range(7):
        started = time.perf_counter()
        subprocess.run([exe, "--help"], check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    print(
        f"backend-review --help: median {statistics.median(runs) * 1000:.0f} ms, "
        f"min {min(runs) * 1000:.0f} ms over {len(runs)} runs (target <= 300 ms)"
    )


if __name__ == "__main__":
    main()
