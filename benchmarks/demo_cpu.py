"""Record the demo table: edgecv-tiny, PyTorch source vs every CPU bundle, on the
shapes validation split, side by side in one run on this machine.

    python benchmarks/demo_cpu.py [--count 200] [--out benchmarks/results]

Writes ``demo-<date>.json`` (rows + machine) and ``demo-<date>.md`` (the table).
Latencies on a shared machine are noisy: compare them within one run only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import warnings
from pathlib import Path

from edgecv.demo import format_table, run_demo


def machine() -> dict:
    flags = ""
    try:
        line = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
        flags = line.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        pass
    return {
        "cpu": flags or platform.processor(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--work", default="build/bench-demo")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    rows = run_demo(args.work, count=args.count, say=lambda m: print(m, file=sys.stderr), progress=False)
    stamp = dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = format_table(rows)
    info = machine()
    (out / f"demo-{stamp}.json").write_text(json.dumps({"machine": info, "count": args.count, "rows": rows}, indent=2))
    (out / f"demo-{stamp}.md").write_text(
        f"# edgecv demo, {stamp}\n\nedgecv-tiny on {args.count} shapes validation images; {info['cpu']}, "
        f"{info['cores']} cores, Python {info['python']}.\n\n```\n{table}\n```\n"
    )
    print(table)


if __name__ == "__main__":
    main()
