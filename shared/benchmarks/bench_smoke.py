"""Wall time of `train.py --help` (imports only) and `train.py --smoke` (imports + a few steps) for every project.

    uv run python shared/benchmarks/bench_smoke.py [--repeats 3] [--out shared/benchmarks/smoke.json]

Each command runs in a fresh interpreter from the project folder, with `--threads 2`, into a temporary folder;
the median of the repeats is reported, with the machine's load average before and after (the figures are
only comparable within one run of this script). The root README's table is generated from the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} in {cwd} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "shared/benchmarks/smoke.json")
    parser.add_argument("--projects", nargs="*", default=None)
    args = parser.parse_args(argv)
    projects = args.projects or sorted(p.name for p in (ROOT / "projects").iterdir() if (p / "train.py").is_file())
    env_python = sys.executable
    load_before = os.getloadavg()
    rows, raw = [], {}
    for name in projects:
        folder = ROOT / "projects" / name
        helps, smokes = [], []
        for _ in range(args.repeats):
            helps.append(timed([env_python, "train.py", "--help"], folder))
            with tempfile.TemporaryDirectory() as out:
                smokes.append(timed([env_python, "train.py", "--smoke", "--quiet", "--threads", "2", "--out", out],
                                    folder))
        raw[name] = {"help_s": helps, "smoke_s": smokes}
        help_s, smoke_s = statistics.median(helps), statistics.median(smokes)
        rows.append([name, round(help_s, 1), round(smoke_s, 1), round(help_s / smoke_s, 2)])
        print(f"{name:12s} --help {help_s:6.1f} s   --smoke {smoke_s:6.1f} s", flush=True)
    result = {
        "tables": {"smoke": {"columns": ["project", "--help (s)", "--smoke (s)", "import share of --smoke"],
                             "rows": rows, "floatfmt": ".2f"}},
        "raw": raw, "repeats": args.repeats, "threads": 2, "load_average_before": load_before,
        "load_average_after": os.getloadavg(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "seeds": [], "versions": {}, "wall_time_s": None,
        "command": "uv run python shared/benchmarks/bench_smoke.py",
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
