"""Three nights on the bundled documents, with and without replay, side by side: per night, accuracy on
the facts of earlier nights' documents (old), on that night's new and changed documents (new), the
general check, and held-out facts answered with a confident wrong value.

    .venv/bin/python benchmarks/nightly_forgetting.py                     # both arms, ~1 h on 2 CPU cores
    .venv/bin/python benchmarks/nightly_forgetting.py --arms replay --out /tmp/nf
    .venv/bin/python benchmarks/nightly_forgetting.py --parallel      # both arms at once, a core each

Night 1: the service manual and the quick start; night 2: + troubleshooting and the warranty policy;
night 3: + the cleaning card, and the quick start changed (its brew pressure 8.5 → 9.5 bar). Arm
"replay" runs `orgtune nightly` as shipped: earlier documents' rows replayed (`--replay`) and the
general self-distillation mixed into SFT. Arm "none" turns both off (`--replay 0`, general_replay 0).
The gate is opened wide (threshold 0, margins 1) so that both arms go through all three nights and
the figures of every night are the candidate's, measured by the same gate on the same probes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orgtune.nightly.gate import general_figures  # noqa: E402
from orgtune.nightly.run import base_general_path  # noqa: E402

DOCS = ROOT / "orgtune" / "data" / "samples" / "docs"
NIGHTS = [
    ["halvo-service-manual.md", "halvo-quick-start.txt"],
    ["halvo-troubleshooting.html", "halvo-warranty-policy.docx"],
    ["halvo-cleaning-card.pdf"],
]


def run_arm(arm: str, out: Path, extra: list[str], threads: int | None = None) -> list[dict]:
    docs, project = out / arm / "docs", out / arm / "project"
    docs.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, names in enumerate(NIGHTS, 1):
        for n in names:
            shutil.copy(DOCS / n, docs / n)
        if i == 3:
            q = docs / "halvo-quick-start.txt"
            q.write_text(q.read_text().replace("Brew pressure: 8.5 bar", "Brew pressure: 9.5 bar"))
        cmd = [
            sys.executable,
            "-m",
            "orgtune",
            "nightly",
            "--docs",
            str(docs),
            "--project",
            str(project),
            "--night",
            f"night{i}",
            "--threshold",
            "0",
            "--old-margin",
            "1",
            "--general-margin",
            "1",
            *extra,
        ]
        if arm == "none":
            cmd += ["--replay", "0", "--general-replay", "0"]
        started = time.time()
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise SystemExit(f"{arm} night {i} failed:\n{r.stderr[-3000:]}")
        gate = json.loads((project / "nights" / f"night{i}" / "gate.json").read_text())
        f = gate["figures"]
        g = gate["general"]
        base = json.loads(base_general_path(project, g["items"], g.get("samples", 0)).read_text())
        against_base = general_figures(g, base)
        f["general"]["worse_than_base"] = against_base["worse"]
        f["general"]["sampled_worse_than_base"] = against_base.get("sampled", {}).get("worse")
        rows.append(
            {
                "arm": arm,
                "night": i,
                "seconds": round(time.time() - started),
                "new": f["new"],
                "old": f["old"],
                "general": f["general"],
                "held_out": f["held_out"],
                "stale": len(f["changed_facts"]["old_value_survives"]),
                "mix": gate["mix"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arms", default="replay,none")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--parallel",
        action="store_true",
        help="run the arms at the same time, the CPU's cores split between them (one torch thread pool each)",
    )
    ap.add_argument("extra", nargs="*", help="more `orgtune nightly` flags for both arms (after --)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="orgtune-nightly-"))
    arms = args.arms.split(",")
    if args.parallel:
        threads = max(1, (os.cpu_count() or 1) // len(arms))
        with ThreadPoolExecutor(len(arms)) as pool:
            per_arm = list(pool.map(lambda arm: run_arm(arm, out, args.extra, threads), arms))
    else:
        per_arm = [run_arm(arm, out, args.extra) for arm in arms]
    rows = [r for arm_rows in per_arm for r in arm_rows]
    print(
        f"\n| arm | night | new docs | old docs (promoted → night) | general check (base {rows[0]['general']['reference']}"
        f"/{rows[0]['general']['items']}) | sampled rule: worse than base | held-out confident wrong | "
        "old value survives | minutes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, g, h = r["old"], r["general"], r["held_out"]
        old = f"{pct(o['promoted'])} → {pct(o['accuracy'])} ({o['n']})" if o["n"] else "-"
        print(
            f"| {r['arm']} | {r['night']} | {pct(r['new']['accuracy'])} ({r['new']['n']}) | {old} | "
            f"{g['right']} ({g['worse_than_base']} worse than base) | {g.get('sampled_worse_than_base', '-')} | "
            f"{h['confident_wrong']}/{h['n']} | {r['stale']} | {r['seconds'] / 60:.1f} |"
        )
    print(f"\nrun folders: {out}")


if __name__ == "__main__":
    main()
