"""libFuzzer targets of the firmware (firmware/tests/fuzz, docs/fuzzing.md): built with Debian's clang
under ASan and UBSan, one per message handler plus the frame receiver, the main loop on raw bytes and
the restore of a checkpoint at boot, each over a small synthetic model whose generated code is the
firmware's own. Seeds are in firmware/tests/fuzz/corpus/<target>/.

    python -m tinytrain.board.fuzzing --seconds 60       # make fuzz: every target, FUZZ_SECONDS each
    python -m tinytrain.board.fuzzing --write-seeds      # regenerate the seed corpus

The run ends with one line `fuzz: N targets, M executions, K crashes` and a non-zero status on any
crash; each target's line says how many executions it made and what kind of finding it had, if any
(a sanitizer report, a silent change of the learned state, a board that stopped answering INFO).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tinytrain.board.builds import BuildError, firmware_sources, host_build_dir, project_root
from tinytrain.errors import TinytrainError

CLANG = "clang"
FLAGS = ["-std=c11", "-g", "-O1", "-fno-omit-frame-pointer", "-fsanitize=fuzzer-no-link,address,undefined",
         "-fno-sanitize-recover=all", "-ffp-contract=off", "-Wall", "-Wextra", "-Werror",
         # clang warns about unused static inline functions in .c files, which gcc (the firmware's compiler) does not.
         "-Wno-unused-function", "-DTT_CHECKED", "-DCALIBRATE_MAX_ITERATIONS=1000u"]
LINK = ["-fsanitize=fuzzer,address,undefined"]
MESSAGE_TYPES = {"info": 0x01, "echo": 0x02, "stats": 0x03, "calibrate": 0x04, "model": 0x10, "train": 0x11,
                 "infer": 0x12, "params_get": 0x13, "params_set": 0x14, "profile": 0x15, "checkpoint": 0x16}
CORPUS = Path("firmware/tests/fuzz/corpus")
MAX_LEN = 8192


@dataclass(frozen=True)
class FuzzModel:
    name: str
    size: int  # input height and width
    scheme: str


# A small model whose steps take microseconds; and one whose frozen front is streamed, so that TRAIN
# and INFER pull their samples from the line while they compute (the CREDIT path).
MODELS = {"small": FuzzModel("small", 8, "last:3"), "streamed": FuzzModel("streamed", 40, "last:2")}


@dataclass(frozen=True)
class Target:
    name: str
    define: str
    model: str = "small"


TARGETS = ([Target("frame_rx", "-DFUZZ_TARGET_FRAME_RX"), Target("app", "-DFUZZ_TARGET_APP"),
            Target("restore", "-DFUZZ_TARGET_RESTORE")]
           + [Target(name, f"-DFUZZ_TARGET_TYPE=0x{t:02x}u") for name, t in MESSAGE_TYPES.items()]
           + [Target("train_streamed", "-DFUZZ_TARGET_TYPE=0x11u", "streamed"),
              Target("infer_streamed", "-DFUZZ_TARGET_TYPE=0x12u", "streamed")])


class FuzzError(TinytrainError):
    """A fuzz target could not be built or run."""


def fuzz_dir() -> Path:
    return host_build_dir().parent / "fuzz"


def _model_build(model: FuzzModel) -> tuple[Path, dict]:
    """The generated code and tinytrain.json of a fuzz model (compiled once per compiler version)."""
    from tinytrain.compile.build_config import BuildConfig, build_key, compile_for_build
    from tinytrain.model import ttm as model_file
    from tinytrain.model.synthetic import random_model

    out = fuzz_dir() / model.name
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.ttm"
    data = random_model(31, size=model.size, classes=4, width=8)
    model_file.save(data, path)
    cfg = BuildConfig(str(path), model.scheme, lr=0.02)
    key = build_key(cfg)
    generated = out / "generated"
    if not (generated / "tinytrain.key").exists() or (generated / "tinytrain.key").read_text() != key:
        compile_for_build(cfg, generated)
        (generated / "tinytrain.key").write_text(key)
    return generated, json.loads((generated / "tinytrain.json").read_text())


def _compile(src: Path, obj: Path, flags: list[str]) -> None:
    deps = [src] + list((project_root() / "firmware").rglob("*.h"))
    stamp = obj.with_suffix(".flags")  # the flags it was compiled with: other flags, another object
    line = " ".join([CLANG, *flags])
    if obj.exists() and stamp.exists() and stamp.read_text() == line and \
            obj.stat().st_mtime >= max(p.stat().st_mtime for p in deps):
        return
    obj.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([CLANG, *flags, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
    if r.returncode != 0:
        raise FuzzError(f"compiling {src.name} for the fuzz targets failed:\n{r.stderr.strip()}")
    stamp.write_text(line)


def build_targets(names: list[str] | None = None) -> dict[str, Path]:
    """Builds the fuzz targets (incrementally) and returns their executables by name."""
    if shutil.which(CLANG) is None:
        raise FuzzError("clang is not installed; run `make setup` (Debian packages clang and libclang-rt-14-dev).")
    fw = project_root() / "firmware"
    chosen = [t for t in TARGETS if names is None or t.name in names]
    exes: dict[str, Path] = {}
    for model_name in sorted({t.model for t in chosen}):
        generated, info = _model_build(MODELS[model_name])
        flags = FLAGS + ["-I", str(fw), "-I", str(generated),
                         f"-DTT_MAX_PAYLOAD={max(4096, info['input_bytes'] + 12)}u", "-DTT_RX_BUFFER_BYTES=4096u",
                         f"-DTT_MODEL_CLASSES={info['classes']}u"]
        objdir = fuzz_dir() / model_name / "obj"
        sources = [s for s in firmware_sources([]) if s.parts[-2] != "boards" and s.name != "main.c"]
        sources += sorted(generated.glob("*.c")) + [fw / "tests" / "fuzz" / "fuzz_board.c"]
        objs = [objdir / (src.relative_to(fw).as_posix().replace("/", "_") if src.is_relative_to(fw)
                          else "gen_" + src.name).replace(".c", ".o") for src in sources]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda so: _compile(so[0], so[1], flags), zip(sources, objs)))
        mine = [t for t in chosen if t.model == model_name]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda t: _compile(fw / "tests" / "fuzz" / "fuzz_target.c", objdir / f"target_{t.name}.o",
                                             flags + [t.define]), mine))
        for t in mine:
            obj = objdir / f"target_{t.name}.o"
            exe = fuzz_dir() / "bin" / f"fuzz_{t.name}"
            exe.parent.mkdir(parents=True, exist_ok=True)
            if not exe.exists() or exe.stat().st_mtime < max(o.stat().st_mtime for o in objs + [obj]):
                r = subprocess.run([CLANG, *LINK, *(str(o) for o in objs), str(obj), "-o", str(exe)],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise FuzzError(f"linking fuzz_{t.name} failed:\n{r.stderr.strip()}")
            exes[t.name] = exe
    return exes


@dataclass
class FuzzResult:
    target: str
    executions: int = 0
    seconds: float = 0.0
    corpus: int = 0
    crash: str | None = None  # the kind of finding
    artifact: str | None = None
    log_tail: list[str] = field(default_factory=list)

    def line(self) -> str:
        what = f"CRASH ({self.crash}, {self.artifact})" if self.crash else "ok"
        return (f"{self.target:15s} {self.executions:>11,d} executions in {self.seconds:5.0f} s, corpus {self.corpus:>5d}: "
                f"{what}")


def classify(log: str) -> str:
    if "tinytrain-fuzz: silent tensor change" in log:
        return "silent tensor change"
    if "tinytrain-fuzz:" in log:
        return re.search(r"tinytrain-fuzz: ([^\n]*)", log).group(1)  # type: ignore[union-attr]
    if "runtime error:" in log:
        return "UBSan report"
    if "ERROR: AddressSanitizer" in log or "ERROR: LeakSanitizer" in log:
        return "ASan report"
    if "tt_check:" in log:
        return "arena write outside a step's outputs"
    if "ERROR: libFuzzer: timeout" in log:
        return "timeout"
    return "crash"


def run_target(name: str, exe: Path, seconds: float, work: Path) -> FuzzResult:
    """Runs one target for `seconds` over its seeds (firmware/tests/fuzz/corpus/NAME) and a work corpus."""
    seeds = project_root() / CORPUS / name
    corpus = work / "corpus" / name
    artifacts = work / "artifacts" / name
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [str(exe), f"-max_total_time={max(1, int(seconds))}", f"-max_len={MAX_LEN}", "-timeout=20",
           "-rss_limit_mb=4096", "-print_final_stats=1", f"-artifact_prefix={artifacts}/", str(corpus)]
    if seeds.is_dir():
        cmd.append(str(seeds))
    t0 = time.monotonic()
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds * 3 + 300)
    log = r.stdout + r.stderr
    res = FuzzResult(name, seconds=time.monotonic() - t0)
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", log) or re.search(r"Done (\d+) runs", log)
    if m:
        res.executions = int(m.group(1))
    else:
        runs = re.findall(r"#(\d+)\s", log)
        res.executions = int(runs[-1]) if runs else 0
    res.corpus = sum(1 for _ in corpus.iterdir())
    if r.returncode != 0:
        res.crash = classify(log)
        found = sorted(artifacts.glob("*"), key=lambda p: p.stat().st_mtime)
        res.artifact = str(found[-1]) if found else "no artifact"
        res.log_tail = log.splitlines()[-40:]
    return res


def run(seconds: float, names: list[str] | None = None, out=sys.stdout, work: Path | None = None,
        jobs: int = 1) -> list[FuzzResult]:
    """Runs the targets, `jobs` at a time; work holds their growing corpora and findings (default
    build/fuzz/run, kept between runs)."""
    exes = build_targets(names)
    work = work if work is not None else fuzz_dir() / "run"

    def one(item: tuple[str, Path]) -> FuzzResult:
        res = run_target(item[0], item[1], seconds, work)
        print(res.line() + "".join(f"\n    {line}" for line in res.log_tail), file=out, flush=True)
        return res

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, exes.items()))


def summary(results: list[FuzzResult]) -> str:
    return (f"fuzz: {len(results)} targets, {sum(r.executions for r in results)} executions, "
            f"{sum(1 for r in results if r.crash)} crashes")


# ---------------------------------------------------------------- seeds

def _frame(type_: int, seq: int, payload: bytes) -> bytes:
    from tinytrain.board.framing import encode_frame

    return encode_frame(type_, seq, payload)


def _record(flags: int, payload: bytes) -> bytes:
    return struct.pack("<BH", flags, len(payload)) + payload


def seeds(info: dict, streamed_info: dict | None = None) -> dict[str, list[bytes]]:
    """Seed inputs per target: valid requests of every kind and a few near misses."""
    n_in = info["input_bytes"]
    classes = info["classes"]
    state_hash = bytes.fromhex(info["state_hash"])
    sample = bytes((i * 7) & 0xFF for i in range(n_in))

    def train(step: int, label: int = 1, lr: int = 65536, reserved: int = 0, x: bytes = sample) -> bytes:
        return struct.pack("<HHII", label, reserved, lr, step) + x

    out: dict[str, list[bytes]] = {}
    out["info"] = [_record(0, b""), _record(0, b"x"), _record(4 | (3 << 3), b"")]
    out["echo"] = [_record(0, b"hello"), _record(0, bytes(300)), _record(0x80, bytes(64))]
    out["stats"] = [_record(0, b""), _record(0, b"\x00")]
    out["calibrate"] = [_record(0, struct.pack("<I", 10)), _record(0, struct.pack("<I", 0)),
                        _record(0, struct.pack("<I", 1001)), _record(0, b"\x01")]
    out["model"] = [_record(0, b""), _record(2, bytes([5]) + train(1))]
    out["train"] = [_record(0, train(1)) + _record(0, train(2, 3)) + _record(0, train(2, 3)),
                    _record(0, train(1, classes)) + _record(0, train(1, 0, 1 << 20)) + _record(0, train(1, 0, reserved=1)),
                    _record(0, train(5)) + _record(0, train(0)),
                    _record(3, b"\x02") + _record(3, b"\x01") + _record(0x80 | 3, b"\x00"),
                    _record(4 | (6 << 3), train(1)) + _record(0, train(1)[:-1]),
                    _record(3, b"\x01") + _record(2, bytes([10]) + struct.pack("<B", 2) + bytes(36))
                    + _record(3, b"\x01")]
    out["infer"] = [_record(0, sample), _record(0, sample[:-1]), _record(0x80, sample),
                    _record(4 | (9 << 3), sample) + _record(0, sample)]
    out["params_get"] = [_record(0, struct.pack("<II", 0, 4)), _record(0, struct.pack("<II", 0, 4000)),
                         _record(0, struct.pack("<II", 0xFFFFFFF0, 32)), _record(0, struct.pack("<II", 4, 64))]
    begin = b"\x00" + state_hash + struct.pack("<I", info["state_bytes"])
    data0 = b"\x01" + struct.pack("<I", 0) + bytes(64)
    out["params_set"] = [_record(0, begin) + _record(0, data0) + _record(0, b"\x02" + hashlib.sha256(b"x").digest()),
                         _record(3, bytes(range(40))),
                         _record(0, b"\x00" + bytes(32) + struct.pack("<I", info["state_bytes"])),
                         _record(0, begin) + _record(0, b"\x01" + struct.pack("<I", 8) + bytes(8)),
                         _record(0, data0), _record(0, b"\x07"), _record(0, b"")]
    out["profile"] = [_record(0, b"\x00\x00\x00"), _record(0, b"\x01\x00\x00"), _record(0, b"\x00\xff\x00"),
                      _record(2, bytes([5]) + train(1)) + _record(0, b"\x00\x00\x00")]
    take = b"\x00" + struct.pack("<I", 0) + bytes(32)
    out["checkpoint"] = [_record(0, take) + _record(0, b"\x01") + _record(0, b"\x02") + _record(0, b"\x01"),
                         _record(2, bytes([5]) + train(1)) + _record(0, take) + _record(0, take),
                         _record(3, b"") + _record(2, bytes([8]) + begin) + _record(0, take)
                         + _record(2, bytes([8]) + data0),
                         _record(0, b"\x09"), _record(0, b"\x01\x00")]
    out["app"] = [_frame(0x01, 1, b""), _frame(0x11, 2, train(1)) + _frame(0x12, 3, sample),
                  _frame(0x14, 4, begin) + _frame(0x14, 5, data0), b"\xa5\x5a" + bytes(20),
                  _frame(0x16, 6, take) + _frame(0x16, 7, b"\x01")]
    frame = _frame(0x11, 9, train(1))
    out["frame_rx"] = [b"\x00\x10\x03\x05" + frame, b"\x00\x10\x08\x04" + _frame(0x12, 3, sample),
                       b"\x00\x01\x00\x01" + frame, b"\xff\xff\x0f\x1f" + frame[:30] + frame,
                       b"\x00\x10\x00\x01" + b"\xa5\xa5\x5a" + frame]
    st = info["state_bytes"]
    valid = bytes([1]) + struct.pack("<I", 3) + bytes((i * 5) & 0xFF for i in range(st))
    older = bytes([1]) + struct.pack("<I", 2) + bytes((i * 3) & 0xFF for i in range(st))
    out["restore"] = [valid + older, older + valid, bytes([5]) + valid[1:] + bytes([3]) + older[1:],
                      bytes([0]) + valid[1:] + older, b""]
    if streamed_info is not None:
        s_sample = bytes((i * 11) & 0xFF for i in range(streamed_info["input_bytes"]))
        s_train = [struct.pack("<HHII", 1, 0, 65536, 1) + s_sample, struct.pack("<HHII", 2, 0, 65536, 2) + s_sample]
        out["train_streamed"] = [_record(0, s_train[0]) + _record(0, s_train[1]) + _record(0, s_train[1]),
                                 _record(4 | (12 << 3), s_train[0]) + _record(0x80, s_train[0]),
                                 _record(3, b"\x01") + _record(3, b"\x03")]
        out["infer_streamed"] = [_record(0, s_sample), _record(4 | (15 << 3), s_sample), _record(0x80, s_sample)]
    return out


def write_seeds() -> int:
    _, info = _model_build(MODELS["small"])
    _, streamed = _model_build(MODELS["streamed"])
    info["state_bytes"] = 4 + info["trainable_sram_bytes"]
    n = 0
    for target, inputs in seeds(info, streamed).items():
        d = project_root() / CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for i, data in enumerate(inputs):
            (d / f"seed-{i:02d}").write_bytes(data)
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinytrain.board.fuzzing", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=float(os.environ.get("FUZZ_SECONDS", "60")),
                   help="fuzzing time per target (default: FUZZ_SECONDS or 60)")
    p.add_argument("--targets", help="comma-separated target names (default: all)")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("FUZZ_JOBS", "1")),
                   help="targets fuzzed at the same time (default: FUZZ_JOBS or 1)")
    p.add_argument("--write-seeds", action="store_true", help="regenerate firmware/tests/fuzz/corpus and exit")
    p.add_argument("--list", action="store_true", help="list the targets and exit")
    args = p.parse_args(argv)
    try:
        if args.list:
            print("\n".join(f"{t.name} ({t.model} model)" for t in TARGETS))
            return 0
        if args.write_seeds:
            print(f"wrote {write_seeds()} seed inputs to {CORPUS}")
            return 0
        results = run(args.seconds, args.targets.split(",") if args.targets else None, jobs=args.jobs)
    except (TinytrainError, BuildError) as exc:
        print(f"fuzz: error: {exc}", file=sys.stderr)
        return 2
    print(summary(results))
    return 1 if any(r.crash for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
