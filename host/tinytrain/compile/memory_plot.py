"""The memory plan as a picture: arena offset over the step sequence, one band per buffer."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

ROLE_COLORS = {
    "input": "#4c72b0", "activation": "#8fb0d9", "mask": "#dd8452", "saved": "#55a868",
    "grad": "#c44e52", "grad32": "#e89a9c", "wgrad": "#8172b3", "scratch": "#937860",
}


def plot_memory(compiled, path: Path) -> None:
    prog = compiled.program
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _bands(ax, compiled.train_plan, prog.buffers)
    n_fwd = forward_steps(prog.train_steps)
    for a in (ax, ax2):
        a.axvline(n_fwd - 0.5, color="k", lw=0.8, ls="--")
    ax.set_ylabel("arena offset (KB)")
    ax.set_title(f"{prog.model.name} / {prog.scheme.name}: arena {compiled.train_plan.arena_bytes / 1024:.1f} KB, "
                 f"planned peak SRAM {compiled.sram.total / 1024:.1f} KB "
                 f"(without reordering {compiled.sram_without_reordering / 1024:.1f} KB)")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in ROLE_COLORS.values()]
    ax.legend(handles, list(ROLE_COLORS), loc="upper right", fontsize=8, ncol=4)
    xs = range(-1, len(prog.train_steps))
    ax2.step(list(xs), [b / 1024 for b in compiled.train_plan.live_bytes_per_step], where="mid",
             label="with reordering")
    plain = compiled.plain_plan
    ax2.step(list(range(-1, len(compiled.plain_program.train_steps))), [b / 1024 for b in plain.live_bytes_per_step],
             where="mid", label="without reordering", alpha=0.7)
    ax2.set_ylabel("live KB")
    ax2.set_xlabel("step (forward | backward + updates)")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def forward_steps(steps) -> int:
    """Where the divider goes: the training step's forward steps come first."""
    return sum(1 for s in steps if s.kind.is_forward)


def _bands(ax, plan, buffers) -> None:
    for name, (start, end) in plan.lifetimes.items():
        off = plan.offsets[name] / 1024
        size = plan.sizes[name] / 1024
        ax.add_patch(Rectangle((start - 0.45, off), end - start + 0.9, size, color=ROLE_COLORS[buffers[name].role],
                               ec="k", lw=0.2))
    ax.set_xlim(-1.5, max((e for _, e in plan.lifetimes.values()), default=0) + 1.5)
    ax.set_ylim(0, plan.arena_bytes / 1024 * 1.05 + 0.1)
