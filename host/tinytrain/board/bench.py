"""Benchmark: the paper's models on the Cortex-M7 (QEMU mps2-an500, -icount shift=0), measured the
way ../shared/anchors/README.md measures the authors' engine: instructions per training step and
inference from SysTick, peak SRAM = .data + .bss + stack high-water mark."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytrain.learn.progress import progress
from tinytrain.board.builds import firmware_elf, pio_executable, project_root
from tinytrain.compile.build_config import read_build_info
from tinytrain.board.elf_memory import static_memory
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.engine_client import EngineClient
from tinytrain.errors import TinytrainError
from tinytrain.board.link import Link

PAPER_MODELS = ("mbv2-w0.35", "proxyless-w0.3", "mcunet-5fps")

# ../shared/anchors/README.md
PAPER_PEAK_KB = {"mbv2-w0.35": 141, "proxyless-w0.3": 135, "mcunet-5fps": 173}
PAPER_LATENCY_MS = {"mbv2-w0.35": 373, "proxyless-w0.3": 443, "mcunet-5fps": 546}
AUTHORS_ENGINE = {("mcunet-5fps", "49kb"): {"instructions_per_train_step": 106.4e6, "peak_sram_bytes": 255016}}


def shared_dir() -> Path:
    return project_root().parent / "shared"


# The targets of the benchmark: MCUNet-5fps with the authors' 49kb scheme, against their engine measured
# the same way (../shared/anchors/README.md): at most 128 KB of measured peak SRAM and 53 M instructions.
TARGET = {"model": "mcunet-5fps", "scheme": "49kb", "peak_sram_bytes": 128 * 1024, "instructions_per_train_step": 53e6}
SCALING_MODEL = "mcunet-5fps"
SCALING_RESOLUTIONS = (96, 160)


@dataclass
class BenchCase:
    model: str
    scheme: str  # budget label of ../shared/anchors/sparse_schemes.json, or a scheme spec
    resolution: int = 128
    budget: str = ""  # SRAM budget of the build ("" = the smallest plan; with one, spare memory buys speed)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.scheme}@{self.resolution}" + (f" budget {self.budget}" if self.budget else "")

    @property
    def model_path(self) -> Path:
        return shared_dir() / "models" / "tiny-training" / f"{self.model}.pkl"

    @property
    def scheme_spec(self) -> str:
        if self.scheme.endswith("kb"):
            return f"{shared_dir() / 'anchors' / 'sparse_schemes.json'}:{self.model}/{self.scheme}"
        return self.scheme


def authors_cases(models: list[str] | None = None, schemes: list[str] | None = None) -> list[BenchCase]:
    path = shared_dir() / "anchors" / "sparse_schemes.json"
    if not path.exists():
        raise TinytrainError(f"{path} is missing; the benchmark needs ../shared/anchors (see its README).")
    doc = json.loads(path.read_text())
    cases = []
    for m in models or PAPER_MODELS:
        if m not in doc:
            raise TinytrainError(f"no schemes for model {m!r} in {path} (models: {', '.join(k for k in doc if k[0] != '_')}).")
        for label in doc[m]:
            if schemes is None or label in schemes:
                cases.append(BenchCase(m, label))
    return cases


def default_cases() -> list[BenchCase]:
    """Every scheme of the three models at 128x128; the scaling study (one model, every scheme, at
    96 and 160); the target configuration built with the target's memory as its budget."""
    cases = authors_cases()
    cases += [BenchCase(c.model, c.scheme, r) for c in authors_cases([SCALING_MODEL]) for r in SCALING_RESOLUTIONS]
    cases.append(BenchCase(TARGET["model"], TARGET["scheme"], 128, f"{TARGET['peak_sram_bytes'] // 1024}KB"))
    return cases


def test_images(size: int) -> np.ndarray:
    """Real photos bundled with scikit-image, resized to size x size (uint8 RGB)."""
    from PIL import Image
    from skimage import data

    photos = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.cat()]
    return np.stack([np.asarray(Image.fromarray(p).convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
                     for p in photos])


def build(case: BenchCase, env_name: str = "qemu_m7") -> tuple[Path, dict]:
    if not case.model_path.exists():
        raise TinytrainError(f"{case.model_path} is missing: the paper's models belong in "
                             "../shared/models/tiny-training/ (mit-han-lab/tiny-training, algorithm/assets/mcu_models).")
    env = dict(os.environ, TINYTRAIN_MODEL=str(case.model_path), TINYTRAIN_SCHEME=case.scheme_spec,
               TINYTRAIN_CLASSES="10", TINYTRAIN_NEW_HEAD="1", TINYTRAIN_RESOLUTION=str(case.resolution),
               TINYTRAIN_BUDGET=case.budget,
               # The paper's models take more than the 512 KB of flash left beside checkpoint slots.
               TINYTRAIN_CHECKPOINTS="0")
    cmd = [pio_executable(), "run", "-e", env_name, "-d", str(project_root())]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "error" in ln.lower() or "overflow" in ln.lower()]
        raise TinytrainError(f"{case.label} does not build: "
                             f"{lines[-1].strip() if lines else 'see pio run'}")
    build_dir = project_root() / ".pio" / "build" / env_name
    return firmware_elf(env_name), read_build_info(build_dir)[1]


def measure(case: BenchCase, steps: int = 3, warmup: int = 1) -> dict:
    elf, info = build(case)
    cfg, _ = read_build_info(elf.parent)
    model = cfg.load_model()
    from tinytrain.learn.datasets import to_model_input

    xs = to_model_input(test_images(case.resolution), model)
    mem = static_memory(elf)
    with QemuBoard(elf) as qemu, Link(qemu.url) as link:
        link.wait_ready(15.0)
        engine = EngineClient(link, train_timeout=600.0)
        for i in range(warmup):
            engine.train(xs[i % len(xs)], i % 10)
            engine.infer(xs[i % len(xs)])
        train = [engine.train(xs[i % len(xs)], (i + warmup) % 10).count for i in range(steps)]
        profile = engine.profile("train")
        infer = [engine.infer(xs[i % len(xs)]).count for i in range(steps)]
        stats = link.stats()
    macs = info["macs_forward"] + info["macs_backward"]
    per_train = float(np.mean(train))
    return {
        "model": case.model, "scheme": case.scheme, "resolution": case.resolution, "budget": case.budget or None,
        "input_streamed": engine.model.input_streamed,
        "planned_peak_sram_bytes": info["planned_peak_sram_bytes"],
        "measured_peak_sram_bytes": stats.peak_sram_bytes,
        "static_sram_bytes": stats.data_bytes + stats.bss_bytes,
        "stack_bytes": stats.stack_used_bytes,
        "arena_bytes": info["arena_bytes"],
        "trainable_sram_bytes": info["trainable_sram_bytes"],
        "flash_bytes": mem.flash_bytes,
        "instructions_per_train_step": per_train,
        "instructions_per_inference": float(np.mean(infer)),
        "macs_forward": info["macs_forward"],
        "macs_backward": info["macs_backward"],
        "instructions_per_mac_train": per_train / macs if macs else None,
        "ms_at_216mhz_if_1_ipc": per_train / 216e3,
        "per_op": [{"op": r.op, "kind": r.kind, "macs": r.macs, "instructions": r.count} for r in profile],
    }


def run(cases: list[BenchCase], steps: int = 3) -> list[dict]:
    rows = []
    with progress(len(cases), "bench", "config") as bar:
        for case in cases:
            bar.set_postfix_str(case.label)
            try:
                rows.append(measure(case, steps))
            except TinytrainError as exc:
                rows.append({"model": case.model, "scheme": case.scheme, "resolution": case.resolution,
                             "budget": case.budget or None, "error": str(exc)})
            bar.update(1)
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["| model | scheme | res | budget | planned peak | measured peak (static + stack) | paper peak | flash | "
           "M instr / train step | M instr / inference | instr / MAC (train) | authors' engine (measured here) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        budget = r.get("budget") or "-"
        if "error" in r:
            out.append(f"| {r['model']} | {r['scheme']} | {r['resolution']} | {budget} | {r['error']} |||||||||")
            continue
        anchor = AUTHORS_ENGINE.get((r["model"], r["scheme"]))
        authors = (f"{anchor['instructions_per_train_step'] / 1e6:.1f} M instr, {anchor['peak_sram_bytes'] / 1024:.0f} KB"
                   if anchor and r["resolution"] == 128 else "")
        paper = f"{PAPER_PEAK_KB[r['model']]} KB" if r["scheme"] in ("99kb", "98kb") and r["resolution"] == 128 else ""
        out.append(
            f"| {r['model']} | {r['scheme']} | {r['resolution']} | {budget} | {r['planned_peak_sram_bytes'] / 1024:.1f} KB | "
            f"{r['measured_peak_sram_bytes'] / 1024:.1f} KB ({r['static_sram_bytes'] / 1024:.1f} + "
            f"{r['stack_bytes'] / 1024:.1f}) | {paper} | {r['flash_bytes'] / 1024:.0f} KB | "
            f"{r['instructions_per_train_step'] / 1e6:.1f} | {r['instructions_per_inference'] / 1e6:.1f} | "
            f"{r['instructions_per_mac_train']:.2f} | {authors} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if "error" not in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for model in sorted({r["model"] for r in good}):
        rs = [r for r in good if r["model"] == model]
        a.scatter([(r["macs_forward"] + r["macs_backward"]) / 1e6 for r in rs],
                  [r["instructions_per_train_step"] / 1e6 for r in rs], label=model)
        b.scatter([r["resolution"] for r in rs], [r["measured_peak_sram_bytes"] / 1024 for r in rs], label=model)
    a.set_xlabel("MACs per training step (M, forward + backward)")
    a.set_ylabel("instructions per training step (M)")
    a.set_title("cost grows with work")
    b.set_xlabel("input resolution")
    b.set_ylabel("measured peak SRAM (KB)")
    b.axhline(256, color="gray", ls="--", lw=0.8)
    b.set_title("memory vs resolution")
    for ax in (a, b):
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
