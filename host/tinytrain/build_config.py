"""The configuration a firmware image was built with, shared by the build and the host tools.

`pio run` (tools/platformio/scripts/generate_model.py) compiles the model with a
BuildConfig and writes it, with the compile report, to
.pio/build/<env>/generated/tinytrain.json; `tinytrain stream/check/...` read
that file to rebuild exactly the same reference program.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from . import codegen_c, sparse_scheme
from .compiler import Compiled, compile_model
from .errors import TinytrainError
from .ir import Model
from .model_loader import load_model
from .sram_budget import parse_bytes
from .training_program import CompileOptions


@dataclass
class BuildConfig:
    model: str
    scheme: str = "classifier"
    classes: int | None = None
    budget: str | None = None
    lr: float = 0.05
    rounding: str = "stochastic"
    seed: int = 1
    qas: bool = True
    new_head: bool = False
    head_seed: int = 0
    resolution: int | None = None

    @classmethod
    def from_strings(cls, d: dict[str, str], model_path: Path, project: Path) -> "BuildConfig":
        def flag(v: str) -> bool:
            return v.strip().lower() in ("1", "true", "yes", "on")

        scheme = d["scheme"]
        file_part, sep, key = scheme.partition(":")
        if file_part.endswith(".json") and not Path(file_part).is_absolute():
            scheme = str(project / file_part) + sep + key
        try:
            return cls(str(model_path), scheme, int(d["classes"]) if d.get("classes") else None, d.get("budget") or None,
                       float(d.get("lr", 0.05)), d.get("rounding", "stochastic"), int(d.get("seed", 1)),
                       flag(d.get("qas", "1")), flag(d.get("new_head", "0")), int(d.get("head_seed", 0)),
                       int(d["resolution"]) if d.get("resolution") else None)
        except ValueError as exc:
            raise TinytrainError(f"a tinytrain build option is not a number ({exc}).") from exc

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "BuildConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def load_model(self) -> Model:
        return load_model(self.model, self.classes, self.new_head, self.head_seed, self.resolution)

    def options(self) -> CompileOptions:
        return CompileOptions(lr=self.lr, qas=self.qas, rounding=self.rounding, seed=self.seed)

    def compile(self) -> Compiled:
        model = self.load_model()
        scheme = sparse_scheme.load(self.scheme, model)
        return compile_model(model, scheme, self.options(), parse_bytes(self.budget) if self.budget else None)


def compile_for_build(cfg: BuildConfig, out_dir: Path) -> dict:
    compiled = cfg.compile()
    codegen_c.generate(compiled, out_dir)
    info = compiled.report()
    info["input_bytes"] = compiled.program.model.input_spec.size
    info["program_hash"] = compiled.program_hash  # what the board's MODEL reply must report
    info["state_hash"] = compiled.state_hash
    info["config"] = cfg.to_json()
    (out_dir / "tinytrain.json").write_text(json.dumps(info, indent=1))
    return info


def read_build_info(path: Path) -> tuple[BuildConfig, dict]:
    """Reads a build's tinytrain.json (a file, or a PlatformIO build folder holding generated/tinytrain.json)."""
    if path.is_dir():
        path = path / "generated" / "tinytrain.json"
    if not path.exists():
        raise TinytrainError(f"{path} does not exist; build the firmware first (pio run -e qemu_m7).")
    try:
        info = json.loads(path.read_text())
        return BuildConfig.from_json(info["config"]), info
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TinytrainError(f"{path} is not a build's tinytrain.json ({type(exc).__name__}); rebuild the "
                             "firmware.") from None
