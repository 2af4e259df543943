#!/usr/bin/env python3
"""The chosen scheme of one budget of the contribution table, trained on the emulated board:

    .venv/bin/python tools/contrib_board_check.py [--budget 256KB] [--seed 1]

Needs tools/contrib_table.py to have run (build/contrib-table/table.json and budget-*/scheme.json).
Builds the shipped model with that scheme for qemu_m7 (its own build folder), boots it in QEMU, streams
exactly the run of the table's final protocol for one seed (the same 1,000 mnist:train digits in the
same order, the same linear learning-rate decay, the stochastic-rounding PRNG seeded alike), scores
mnist:test on the board and compares with the accuracy the NumPy run of the table measured for that
seed. Also checks the measured peak SRAM (STATS) against the budget. Writes
build/contrib-table/board-<budget>.json; exits non-zero unless both hold.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tools"))

from contrib_table import FINAL, MODEL  # noqa: E402
from tinytrain.board.builds import build_firmware  # noqa: E402
from tinytrain.learn.contribution import sample_order  # noqa: E402
from tinytrain.board.emulator import QemuBoard  # noqa: E402
from tinytrain.board.engine_client import EngineClient  # noqa: E402
from tinytrain.board.link import Link  # noqa: E402
from tinytrain.model.loader import load_model  # noqa: E402
from tinytrain.learn.sample_input import model_samples  # noqa: E402
from tinytrain.compile.sram_budget import parse_bytes  # noqa: E402
from tinytrain.board.streaming import evaluate, stream  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="256KB")
    ap.add_argument("--seed", type=int, default=FINAL.seeds[0], choices=FINAL.seeds)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "contrib-table")
    args = ap.parse_args()
    budget = parse_bytes(args.budget)
    label = f"{budget // 1024}KB"
    table = json.loads((args.out / "table.json").read_text())
    row = next(r for r in table["rows"] if r["budget"] == budget and r["row"] == "chosen")
    expected = row["accuracy"][str(args.seed)]
    scheme = (args.out / f"budget-{label}" / "scheme.json").resolve()
    if json.loads(scheme.read_text())["n_bias_update"] != row["scheme"]["n_bias_update"]:
        raise SystemExit(f"{scheme} is not the scheme of table.json; rerun tools/contrib_table.py.")

    t0 = time.monotonic()
    # No build budget: with one, the compiler spends spare SRAM on speed (int32 input gradients), a
    # different (equally exact) program from the one the contribution runs measured.
    options = {"TINYTRAIN_MODEL": str(MODEL), "TINYTRAIN_SCHEME": str(scheme), "TINYTRAIN_CLASSES": "10",
               "TINYTRAIN_NEW_HEAD": "1", "TINYTRAIN_BUDGET": "", "TINYTRAIN_LR": str(FINAL.lr),
               "TINYTRAIN_SEED": str(args.seed), "TINYTRAIN_ROUNDING": "stochastic", "TINYTRAIN_QAS": "1"}
    elf = build_firmware("qemu_m7", model_options=options, build_dir=ROOT / ".pio" / f"build-contrib-{label}")
    model = load_model(MODEL, 10, new_head=True, head_seed=0)
    x, y = model_samples(FINAL.data, model)
    order = sample_order(len(y), FINAL.fit_samples, args.seed)
    test_x, test_y = model_samples(FINAL.eval_data, model)
    scale = model.tensors[model.output].qparams.scale
    with QemuBoard(elf) as qemu, Link(qemu.url) as link:
        link.wait_ready(15.0)
        engine = EngineClient(link)
        trained = stream(engine, x[order], y[order], scale, 1, FINAL.schedule)
        result = evaluate(engine, test_x, test_y)
        stats = link.stats()
    doc = {"budget_bytes": budget, "scheme": row["describe"], "seed": args.seed,
           "board_accuracy": result.accuracy, "numpy_accuracy": expected,
           "identical": abs(result.accuracy - expected) < 1e-12,
           "measured_peak_sram_bytes": stats.peak_sram_bytes, "within_budget": stats.peak_sram_bytes <= budget,
           "planned_peak_sram_bytes": row["peak_sram_bytes"], "train_steps": len(order),
           "instructions_per_train_step": float(sum(trained.counts) / len(trained.counts)) if trained.counts else None,
           "seconds": time.monotonic() - t0}
    (args.out / f"board-{label}.json").write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))
    return 0 if doc["identical"] and doc["within_budget"] else 1


if __name__ == "__main__":
    sys.exit(main())
