"""`python -m bench.docs docs/performance/bench.json`: the measured tables of `docs/performance.md`, written
from the side-by-side benchmark's JSON (`bench/side_by_side.py`) between the markers below; nothing in that
block is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.side_by_side import ratios
from bench.table import default_run_lines

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin (bench/docs.py writes this block) -->", "<!-- bench:end -->"


def step_lines(steps: dict[str, list[dict[str, float]]]) -> list[str]:
    before, after = ratios(steps["before"]), ratios(steps["after"])
    lines = [f"LeNet-5, batch 32, 200 measured steps, one torch thread; median of {len(steps['after'])} rounds, each "
             "checkout in a fresh process per round, alternating; ×: the ratio to the same process's `bare`", "",
             "| mode | before ms | before ×bare | after ms | after ×bare |", "|---|---|---|---|---|"]
    for mode in after:
        b = before.get(mode)
        cells = f"{b[0]:.2f} | ×{b[1]:.2f}" if b else " | "
        lines.append(f"| {mode} | {cells} | {after[mode][0]:.2f} | ×{after[mode][1]:.2f} |")
    return lines


def ops_lines(ops: dict[str, dict[str, dict[str, int]]]) -> list[str]:
    lines = ["ResNet-152, ATen operators the mode adds over `monitor` in one flush window (10 steps: the "
             "instruments' due step and one flush; `bench/ops.py`; views make metadata only, no kernel)", "",
             "| mode | before: extra ops | before: extra views | after: extra ops | after: extra views |",
             "|---|---|---|---|---|"]
    ref = {k: v["monitor"] for k, v in ops.items()}
    for mode in ops["after"]:
        if mode == "monitor":
            continue
        cells = [f"{ops[k][mode]['ops'] - ref[k]['ops']:,} | {ops[k][mode]['views'] - ref[k]['views']:,}"
                 for k in ("before", "after")]
        lines.append(f"| {mode} | {cells[0]} | {cells[1]} |")
    return lines


def block(data: dict) -> str:
    parts = [BEGIN, ""]
    parts += [f"Load (`uptime`): {data['context']['uptime_start']} at the start, "
              f"{data['context']['uptime_end']} at the end.", ""]
    parts += step_lines(data["steps"]) + [""]
    if "default_run" in data:
        lines = default_run_lines(data["default_run"], ())
        parts += [line.replace("default run, baseline", "default run, before").replace("| default run |",
                  "| default run, after |") for line in lines] + [""]
    if "ops" in data:
        source = data.get("ops_source")
        note = f"(counted in a run of their own, `{source}`: its before and after are that run's checkouts)"
        parts += ops_lines(data["ops"]) + ([note, ""] if source else [""])
    return "\n".join([*parts, END])


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.docs A.json [B.json ...]`: the JSONs' keys merged (a later file's `ops` or `context`
    key replaces an earlier one's), then the block written."""
    sources = [Path(p) for p in (argv or sys.argv[1:])]
    data: dict = {}
    for source in sources:
        part = json.loads(source.read_text())
        data.update(part)
        if "ops" in part and "steps" not in part:  # operator counts from a run of their own (`--ops-only`)
            resolved = source.resolve()
            data["ops_source"] = resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else source
        elif "ops" in part:
            data.pop("ops_source", None)
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    doc.write_text(text[:start] + block(data) + text[end:])
    print(f"wrote the measured tables of {doc} from {', '.join(map(str, sources))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
