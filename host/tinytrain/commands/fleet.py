"""tinytrain fleet: boards learning together on Flower (federated sparse fine-tuning)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from tinytrain.commands.options import positive_float, positive_int
from tinytrain.errors import TinytrainError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fleet", help="federated fine-tuning of many boards on Flower",
        description="A Flower server and one Flower client per board: every round each board gets the global "
                    "trained tensors (PARAMS_SET), trains on its own samples (TRAIN), and returns what it learned "
                    "(PARAMS_GET); the server averages only the trained tensors in their int8 layout. Boards on "
                    "this machine run on Flower's simulation engine (default) or behind its deployment engine "
                    "(a SuperLink and one SuperNode per board, separate processes). Writes every round's global "
                    "state (OUT/round-NNN.npz, `tinytrain push`-able), OUT/fleet.json and OUT/fleet.png. "
                    "docs/fleet.md has the details and the run modes.")
    boards = p.add_argument_group("boards (any mix)")
    boards.add_argument("--port", metavar="URL", action="append", default=[],
                        help="the serial line of a running board (repeatable)")
    boards.add_argument("--emulate", metavar="N", type=int, default=0, help="N QEMU boards (the qemu_m7 image)")
    boards.add_argument("--host-boards", metavar="N", type=int, default=0,
                        help="N host builds of the same firmware (Linux processes), for larger fleets on one machine")
    p.add_argument("--build", type=Path, help="the boards' build folder or tinytrain.json (default: platformio.ini's "
                                              "configuration, built for the emulated and host boards)")
    p.add_argument("--engine", choices=["simulation", "deployment"], default="simulation",
                   help="Flower's simulation engine (Ray, in this process) or its deployment engine (SuperLink and "
                        "SuperNodes as separate processes)")
    p.add_argument("--rounds", type=positive_int, default=5)
    p.add_argument("--local-samples", type=positive_int, default=200, help="samples each board trains on per round")
    p.add_argument("--data", default="mnist:train", help="training samples, split over the boards")
    p.add_argument("--eval-data", default="mnist:test",
                   help="held-out samples: the global model is measured on them, each board on its share")
    p.add_argument("--eval-samples", type=positive_int, help="use only the first N held-out samples")
    p.add_argument("--split", choices=["iid", "dirichlet"], default="dirichlet",
                   help="iid, or non-IID: per-class proportions over the boards ~ Dirichlet(alpha)")
    p.add_argument("--alpha", type=positive_float, default=0.5, help="Dirichlet concentration (smaller: more skewed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the sample orders")
    p.add_argument("--out", type=Path, default=Path("fleet"), help="folder for round files, fleet.json, fleet.png")
    p.add_argument("--json", type=Path, help="the summary (default OUT/fleet.json)")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT from its last round file")
    p.add_argument("--baselines", choices=["board", "reference", "none"], default="board",
                   help="train the local-only and centralized baselines on the boards, on the NumPy reference of "
                        "their program, or not at all")
    p.add_argument("--no-local-eval", action="store_true",
                   help="do not measure every board's own model on the held-out samples each round")
    p.add_argument("--round-timeout", type=positive_float, help="seconds the server waits for a round's replies "
                                                                "(default 300 + 2 per local sample)")
    p.add_argument("--kill", metavar="BOARD:ROUND[:STEP]",
                   help="fault injection: kill board BOARD's process (an --emulate or --host-boards board) after "
                        "STEP training steps of round ROUND (default: half the round), then power it on again")
    p.add_argument("--verbose", action="store_true", help="show Flower's and Ray's own logs")
    p.set_defaults(func=run)


def parse_kill(text: str | None, boards: list, rounds: int, local: int) -> tuple[int, int, int] | None:
    if text is None:
        return None
    parts = text.split(":")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        values = []
    if len(values) not in (2, 3) or min(values) < 0:
        raise TinytrainError(f"--kill {text} is not BOARD:ROUND[:STEP] with whole numbers (e.g. 1:2 or 1:2:50).")
    b, r, s = values[0], values[1], values[2] if len(values) == 3 else local // 2
    if b >= len(boards) or boards[b].kind == "port":
        raise TinytrainError(f"--kill {text}: board {b} is not a board this command runs (--emulate, --host-boards).")
    if not 1 <= r <= rounds or not 1 <= s < local:
        raise TinytrainError(f"--kill {text}: the round must be 1..{rounds} and the step 1..{local - 1}.")
    return b, r, s


def _fleet_build(args: argparse.Namespace):
    """(BuildConfig, tinytrain.json path, host executable or None, QEMU image or None)."""
    from tinytrain.board.builds import build_firmware, build_host_firmware, default_build_config
    from tinytrain.compile.build_config import read_build_info

    config = None
    json_path = None
    if args.build is not None:
        config, _ = read_build_info(args.build)
        json_path = args.build / "generated" / "tinytrain.json" if args.build.is_dir() else args.build
    exe = elf = None
    if args.host_boards:
        exe = build_host_firmware(config or default_build_config())
        json_path = json_path or exe.parent / "generated" / "tinytrain.json"
    if args.emulate:
        if args.build is not None and args.build.is_dir() and (args.build / "firmware.elf").exists():
            elf = args.build / "firmware.elf"
        elif args.build is not None:
            raise TinytrainError(f"--emulate needs a PlatformIO build folder holding firmware.elf as --build, not "
                                 f"{args.build}.")
        else:
            print("building the qemu_m7 image ...", flush=True)
            elf = build_firmware("qemu_m7")
        json_path = json_path or elf.parent / "generated" / "tinytrain.json"
    if json_path is None:
        json_path = _build_of_port(args.port[0])
    return json_path, exe, elf


def _build_of_port(url: str) -> Path:
    """The build of a board on a line: the tinytrain.json on this machine with its program hash."""
    from tinytrain.board.builds import host_build_dir, project_root
    from tinytrain.board.engine_client import EngineClient
    from tinytrain.board.link import Link
    from tinytrain.compile.build_config import read_build_info

    with Link(url) as link:
        link.info()
        program = EngineClient(link).model.program_hash
    for path in sorted((project_root() / ".pio" / "build").glob("*/generated/tinytrain.json")) + \
            sorted(host_build_dir().glob("*/generated/tinytrain.json")):
        if read_build_info(path)[1].get("program_hash") == program:
            return path
    raise TinytrainError(f"no build on this machine has the program {program[:12]} of the board at {url}; pass "
                         "--build with the folder its firmware was built in.")


def run(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("flwr") is None:  # the optional extra `fleet`
        raise TinytrainError("tinytrain fleet needs Flower: pip install 'tinytrain[fleet]' (make setup does).") from None
    from tinytrain.board.fleet import round_files
    from tinytrain.board.fleet_engines import LocalBoard

    t0 = time.monotonic()
    n = len(args.port) + args.emulate + args.host_boards
    if args.emulate < 0 or args.host_boards < 0:
        raise TinytrainError("--emulate and --host-boards count boards: give 0 or more.")
    if n == 0:
        raise TinytrainError("a fleet needs boards: give --port URL (repeatable), --emulate N or --host-boards N.")
    json_out = args.json or args.out / "fleet.json"
    if args.out.exists() and not args.out.is_dir():
        raise TinytrainError(f"--out {args.out} is a file; give a folder.")
    if round_files(args.out) and not args.resume:
        raise TinytrainError(f"{args.out} already holds a fleet run; pass --resume to continue it or choose another "
                             "--out.")
    build_json, exe, elf = _fleet_build(args)
    plan = ([LocalBoard(0, "port", url=u) for u in args.port] + [LocalBoard(0, "qemu", elf) for _ in range(args.emulate)]
            + [LocalBoard(0, "host", exe) for _ in range(args.host_boards)])
    for i, b in enumerate(plan):
        b.index = i
    kill = parse_kill(args.kill, plan, args.rounds, args.local_samples)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, n, plan, kill, build_json, json_out, t0)
    except KeyboardInterrupt:
        # The boards and Ray are stopped by now; Flower's ServerApp thread may still wait for replies
        # that will not come, and the interpreter would wait for it.
        print(f"tinytrain: interrupted; the finished rounds are in {args.out} (continue with --resume).",
              file=sys.stderr, flush=True)
        os._exit(130)


def _run(args, n, plan, kill, build_json, json_out, t0) -> int:
    from tinytrain.board.fleet import FleetConfig, load_records, load_round, round_files
    from tinytrain.board.fleet_engines import DeploymentEngine, Supervisor, run_simulation_engine

    with contextlib.ExitStack() as stack:
        for b in plan:
            b.start()
            stack.callback(b.stop)
        cfg = FleetConfig(build=str(Path(build_json).resolve()), boards=n, rounds=args.rounds,
                          local_samples=args.local_samples, data=args.data, eval_data=args.eval_data,
                          eval_samples=args.eval_samples or 0, split=args.split, alpha=args.alpha, seed=args.seed,
                          out=str(args.out.resolve()), resume=args.resume, round_timeout=args.round_timeout or 0.0,
                          local_eval=not args.no_local_eval, board_urls=",".join(b.url for b in plan))
        print(f"fleet of {n} boards on Flower's {args.engine} engine: "
              + ", ".join(b.label for b in plan), flush=True)
        supervisor = Supervisor(cfg, plan, kill)
        supervisor.start()
        try:
            if args.engine == "simulation":
                run_simulation_engine(cfg, args.verbose)
            else:
                with DeploymentEngine(cfg, [b.url for b in plan], args.verbose) as engine:
                    engine.run()
        finally:
            supervisor.finish()
        if supervisor.error is not None:
            raise supervisor.error
        records = load_records(args.out)
        compiled = None
        baselines = None
        if args.baselines != "none":
            from tinytrain.board.fleet_baselines import run_baselines
            from tinytrain.compile.build_config import read_build_info

            compiled = read_build_info(Path(build_json))[0].compile()
            baselines = run_baselines(cfg, compiled, [b.url for b in plan], args.baselines)
        last = load_round(round_files(args.out)[-1])
    summary = make_summary(cfg, args, records, baselines, plan, supervisor, last, time.monotonic() - t0)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(summary, indent=1))
    png = json_out.with_suffix(".png")
    plot_fleet(summary, png)
    print(format_summary(summary))
    print(f"wrote {json_out} and {png}; the global state of every round is in {args.out}/round-NNN.npz")
    return 0


def model_bytes(build_json: str) -> tuple[int, int]:
    """(bytes of all the model's weights and biases, bytes of its model file)."""
    from tinytrain.compile.build_config import read_build_info

    cfg, _ = read_build_info(Path(build_json))
    model = cfg.load_model()
    params = sum(op.weight.size + 4 * op.bias.size for op in model.weighted_ops)
    return int(params), os.path.getsize(cfg.model) if os.path.exists(cfg.model) else 0


def make_summary(cfg, args, records: list[dict], baselines, plan, supervisor, last: dict, seconds: float) -> dict:
    params, file_bytes = model_bytes(cfg.build)
    rounds = [r for r in records if r["round"] >= 1]
    state_bytes = records[0].get("state_bytes", len(last["state"]))
    header = rounds[0]["bytes_down_per_board"] - state_bytes if rounds else 0
    summary = {
        "rounds": rounds,
        "initial_accuracy": records[0]["global_accuracy"],
        "final_global_accuracy": rounds[-1]["global_accuracy"] if rounds else None,
        "local_only_accuracy": baselines.local_only_mean[-1] if baselines else None,
        "centralized_accuracy": baselines.centralized[-1] if baselines else None,
        "local_only_accuracy_per_board": [b[-1] for b in baselines.local_only] if baselines else None,
        "local_only_per_round": baselines.local_only_mean if baselines else None,
        "centralized_per_round": baselines.centralized if baselines else None,
        "baselines_on": baselines.on if baselines else None,
        "state_bytes": state_bytes,
        "whole_model_bytes": params,
        "whole_model_bytes_per_board": 2 * (params + header),
        "model_file_bytes": file_bytes,
        "engine": args.engine,
        "boards": [{"index": b.index, "kind": b.kind, "url": b.url, "restarts": b.restarts} for b in plan],
        "events": [vars(e) for e in supervisor.events],
        "setup": records[0].get("setup"),
        "label_counts": records[0].get("label_counts"),
        "model": last["model_name"],
        "scheme": last["scheme"],
        "model_hash": last["model_hash"],
        "program_hash": last["program_hash"],
        "final_state_sha256": records[-1].get("state_sha256"),
        "seconds": seconds,
    }
    return summary


def format_summary(s: dict) -> str:
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    rounds = s["rounds"]
    lines = [f"global accuracy per round: {', '.join(pct(r['global_accuracy']) for r in rounds)} "
             f"(before: {pct(s['initial_accuracy'])})"]
    if s["local_only_accuracy"] is not None:
        lines.append(f"each board alone on its own share: {pct(s['local_only_accuracy'])} on average "
                     f"({', '.join(pct(a) for a in s['local_only_accuracy_per_board'])}); one board on all the "
                     f"data in sequence: {pct(s['centralized_accuracy'])} (baselines on the {s['baselines_on']})")
    if rounds:
        b = rounds[-1]["bytes_per_board"]
        lines.append(f"on the wire per board per round: {b:,} B (the {s['state_bytes']:,} B of trained tensors down "
                     f"and up) against {s['whole_model_bytes_per_board']:,} B for the whole model "
                     f"({100 * b / s['whole_model_bytes_per_board']:.0f}%)")
    dropped = [(r["round"], d) for r in rounds for d in r.get("dropped", [])]
    for r, d in dropped:
        lines.append(f"round {r}: {'refused' if d.get('refused') else 'dropped'}: {d['reason']}")
    lines.append(f"wall time {s['seconds']:.0f} s")
    return "\n".join(lines)


def plot_fleet(s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = s["rounds"]
    xs = [0] + [r["round"] for r in rounds]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    ax.plot(xs, [100 * s["initial_accuracy"]] + [100 * r["global_accuracy"] for r in rounds], "o-",
            label="global model (federated)")
    local = [(r["round"], r["mean_local_accuracy"]) for r in rounds if r.get("mean_local_accuracy") is not None]
    if local:
        ax.plot([x for x, _ in local], [100 * v for _, v in local], "s--", label="boards' own models before averaging (mean)")
    if s.get("local_only_per_round"):
        ax.plot(xs, [100 * s["initial_accuracy"]] + [100 * v for v in s["local_only_per_round"]], "v:",
                label="each board alone on its share (mean)")
    if s.get("centralized_per_round"):
        ax.plot(xs, [100 * s["initial_accuracy"]] + [100 * v for v in s["centralized_per_round"]], "^:",
                label="one board on all the data in sequence")
    for r in rounds:
        if r.get("dropped"):
            ax.annotate(f"{len(r['dropped'])} dropped", (r["round"], 100 * r["global_accuracy"]),
                        textcoords="offset points", xytext=(0, -16), ha="center", fontsize=8, color="red")
    ax.set_xlabel("round")
    ax.set_ylabel("accuracy on the held-out samples (%)")
    ax.set_ylim(0, 100)
    ax.set_xticks(xs)
    setup = s.get("setup") or {}
    split = setup.get("split", "")
    split = f"Dirichlet alpha {setup.get('alpha')}" if split == "dirichlet" else split
    ax.set_title(f"{len(s['boards'])} boards, {split}, {setup.get('local_samples')} local samples per round",
                 fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    rs = [r["round"] for r in rounds]
    bx.bar(rs, [r["bytes_per_board"] / 1024 for r in rounds], color="tab:blue",
           label="sparse update: trained tensors down and up")
    bx.axhline(s["whole_model_bytes_per_board"] / 1024, color="tab:red", ls="--",
               label=f"whole model down and up ({s['whole_model_bytes_per_board']:,} B)")
    bx.set_xlabel("round")
    bx.set_ylabel("KB per board per round")
    bx.set_xticks(rs)
    bx.set_title(f"bytes on the wire per board (trained tensors: {s['state_bytes']:,} B)", fontsize=10)
    bx.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"tinytrain fleet: {s['model']} on Flower's {s['engine']} engine", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
