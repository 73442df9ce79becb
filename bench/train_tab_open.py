"""Benchmark: what the Train tab, open in a browser on the same machine, costs the training job it shows.

    python bench/train_tab_open.py [--warmup-s 25] [--window-s 60] [--idle | --whole-run] [--out bench/results/train_tab_open.json]

Starts `python app.py` over a fresh workspace (the demo dataset), opens it in headless Chromium, starts the demo cGAN
from the Train tab as a first-time user would, waits --warmup-s, then over --window-s reads the job's step from the
page's status line and the CPU time of the job, the app and Chromium from /proc. With --idle, nothing is started:
what the open page alone costs. With --whole-run, also the wall time from Start to the status line's "Finished" (the
default run: 3,500 steps). Linux only (/proc); needs Chromium and playwright (the browser tests' own).

Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from conftest import running_app  # noqa: E402  (the browser tests' way to start the app)

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the job, the app and Chromium (every process of each)."""
    used: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        who = ("chromium" if "chrom" in cmd else "job" if "studio" in cmd and " job " in cmd
               else "app" if "app.py" in cmd else None)
        if who:
            used[who] = used.get(who, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
    return used


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup-s", type=float, default=25)
    p.add_argument("--window-s", type=float, default=60)
    p.add_argument("--idle", action="store_true", help="start no job: the open page's own cost")
    p.add_argument("--whole-run", action="store_true", help="then wait for the run to finish and time it from Start")
    p.add_argument("--out", type=Path, default=Path("bench/results/train_tab_open.json"))
    args = p.parse_args()

    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory() as d, running_app(Path(d)) as (url, _), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(url)
        expect(page.locator("#dataset-counts")).not_to_be_empty(timeout=120_000)
        page.get_by_role("tab", name="Train").click()
        page.locator("#train-method input[value=cgan]").check()
        started = time.monotonic()
        if not args.idle:
            page.locator("#train-start").click()
        time.sleep(args.warmup_s)

        def step() -> int:
            found = re.search(r"step (\d+)/", page.locator("#train-status").inner_text())
            return int(found.group(1)) if found else 0

        s0, c0, t0 = step(), cpu_seconds(), time.monotonic()
        time.sleep(args.window_s)
        s1, c1, t1 = step(), cpu_seconds(), time.monotonic()
        if args.whole_run:
            expect(page.locator("#train-status")).to_contain_text("Finished", timeout=3_600_000)
            whole_s = time.monotonic() - started
        browser.close()
    span = t1 - t0
    row = {"idle": args.idle, "window_s": round(span, 1), "steps_per_s": round((s1 - s0) / span, 2),
           "cpu_percent": {who: round(100 * (c1[who] - c0.get(who, 0.0)) / span) for who in sorted(c1)}}
    if args.whole_run:
        row["whole_run_s"] = round(whole_s)
    print(f"job {row['steps_per_s']:.2f} steps/s over {span:.0f} s; CPU (100% = one core): "
          + " · ".join(f"{who} {pct}%" for who, pct in row["cpu_percent"].items())
          + (f"; the whole run {whole_s / 60:.1f} min from Start" if args.whole_run else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
