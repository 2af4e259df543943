"""The configuration a firmware image was built with, shared by the build and the host tools.

`pio run` (tools/platformio/scripts/generate_model.py) compiles the model with a
BuildConfig and writes it, with the compile report, to
.pio/build/<env>/generated/tinytrain.json; `tinytrain stream/check/...` read
that file to rebuild exactly the same reference program.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import tinytrain
from tinytrain.compile import codegen as codegen_c
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import Compiled, compile_model
from tinytrain.compile.scheme import SparseScheme
from tinytrain.compile.compiler import model_lr
from tinytrain.compile.sram_budget import parse_bytes
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.ir.program import CompileOptions
from tinytrain.model.loader import load_model

DEFAULT_MODEL = "models/fmnist-mbv2/model.ttm"


@dataclass
class BuildConfig:
    """The model options of a firmware build. These defaults are the only ones: platformio.ini
    (custom_tinytrain_<name>) and the environment (TINYTRAIN_<NAME>) override them (`resolve`)."""

    model: str = DEFAULT_MODEL
    scheme: str = "classifier"
    classes: int | None = None
    budget: str | None = None
    lr: float | None = None  # None: the model's own (metadata lr, see `tinytrain tune-lr`), else 0.05
    rounding: str = CompileOptions.rounding
    seed: int = CompileOptions.seed
    qas: bool = CompileOptions.qas
    new_head: bool = False
    head_seed: int = 0
    resolution: int | None = None
    # Checkpoints in flash (docs/checkpoints.md): the last 512 KB of the 1 MB flash hold two slots, so the
    # image gets 512 KB; 0 gives the image the whole flash (the paper's larger models need it).
    checkpoints: bool = True
    source: str | None = None  # HxWxC: samples are images of this size, made into the input on the board

    @classmethod
    def from_strings(cls, d: Mapping[str, str], project: Path) -> "BuildConfig":
        """From option strings (missing or empty ones keep their defaults); relative paths of the model
        and of a scheme file are relative to the project folder."""
        values: dict = {}
        for f in fields(cls):
            text = str(d.get(f.name, "")).strip()
            if not text:
                continue
            kind = f.type.replace(" | None", "")
            try:
                if kind == "bool":
                    values[f.name] = text.lower() in ("1", "true", "yes", "on")
                elif kind == "int":
                    values[f.name] = int(text)
                elif kind == "float":
                    values[f.name] = float(text)
                else:
                    values[f.name] = text
            except ValueError:
                raise TinytrainError(f"the build option {f.name} = {text!r} is not a{'n' if kind == 'int' else ''} "
                                     f"{kind}.") from None
        model = Path(values.get("model", DEFAULT_MODEL))
        values["model"] = str(model if model.is_absolute() else project / model)
        scheme = values.get("scheme", "")
        file_part, sep, key = scheme.partition(":")
        if file_part.endswith(".json") and not Path(file_part).is_absolute():
            values["scheme"] = str(project / file_part) + sep + key
        return cls(**values)

    def to_json(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """Every option with its value and where it came from (resolve records that)."""
        sources = getattr(self, "sources", {})
        def value(name: str) -> str:
            v = getattr(self, name)
            return "the model's" if name == "lr" and v is None else ("none" if v is None else str(v))

        return ", ".join(f"{f.name}={value(f.name)} ({sources.get(f.name, 'given')})" for f in fields(self)
                         if f.name != "model")

    @classmethod
    def from_json(cls, d: dict) -> "BuildConfig":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def load_model(self) -> Model:
        return load_model(self.model, self.classes, self.new_head, self.head_seed, self.resolution, self.source)

    def options(self, model: Model) -> CompileOptions:
        return CompileOptions(lr=self.lr if self.lr is not None else model_lr(model), qas=self.qas,
                              rounding=self.rounding, seed=self.seed)

    def compile(self, auto: Callable[[Model, int | None], SparseScheme] | None = None) -> Compiled:
        """`auto` resolves the scheme `auto` (see compile.scheme.load)."""
        model = self.load_model()
        budget = parse_bytes(self.budget) if self.budget else None
        scheme = sparse_scheme.load(self.scheme, model, budget, auto=auto)
        return compile_model(model, scheme, self.options(model), budget, checkpoints=self.checkpoints)


def option_names(name: str) -> tuple[str, str]:
    """(platformio.ini option, environment variable) of a build option."""
    return f"custom_tinytrain_{name}", f"TINYTRAIN_{name.upper()}"


def resolve(ini: Callable[[str], str | None], project: Path, environ: Mapping[str, str] | None = None) -> BuildConfig:
    """The configuration of a build: each option from the environment (TINYTRAIN_<NAME>), else from
    platformio.ini (`ini(option)`, None when the env does not set it), else BuildConfig's default."""
    environ = os.environ if environ is None else environ
    values, sources = {}, {}
    for f in fields(BuildConfig):
        option, variable = option_names(f.name)
        value = environ.get(variable)
        if value is not None:
            values[f.name], sources[f.name] = value, variable
        else:
            values[f.name] = ini(option) or ""
            sources[f.name] = option if values[f.name] else "default"
    cfg = BuildConfig.from_strings(values, project)
    cfg.sources = sources
    if not Path(cfg.model).exists():
        raise TinytrainError(f"the model {cfg.model} (custom_tinytrain_model / TINYTRAIN_MODEL) does not exist.")
    return cfg


def build_key(cfg: BuildConfig, *extra: bytes) -> str:
    """What decides the generated code: the configuration, the model file and the compiler (every
    module of the package). A build regenerates its code when this changes."""
    package = Path(tinytrain.__file__).parent
    h = hashlib.sha256(json.dumps(cfg.to_json(), sort_keys=True).encode() + Path(cfg.model).read_bytes())
    for p in sorted(package.rglob("*.py")):
        h.update(p.read_bytes())
    for e in extra:
        h.update(e)
    return h.hexdigest()


def compile_for_build(cfg: BuildConfig, out_dir: Path, auto: Callable[[Model, int | None], SparseScheme] | None = None
                      ) -> dict:
    compiled = cfg.compile(auto)
    codegen_c.generate(compiled, out_dir)
    info = compiled.report()
    info["input_bytes"] = compiled.program.model.input_spec.size
    info["budget_bytes"] = parse_bytes(cfg.budget) if cfg.budget else None
    info["program_hash"] = compiled.program_hash  # what the board's MODEL reply must report
    info["state_hash"] = compiled.state_hash
    # A sensor model's samples travel as int16 counts (docs/protocol.md, "Sensor samples").
    info["sample_bytes"] = info["input_bytes"] * (2 if "sensor_to_input" in compiled.program.model.metadata else 1)
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
