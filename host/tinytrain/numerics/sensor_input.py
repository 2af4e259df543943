"""Raw sensor counts to a model's int8 input: the per-channel integer scaling the board applies.

A sensor gives int16 counts per axis. A model trained on scaled values (e.g. per-channel
standardized, then quantized by the input tensor's scale and zero point) stores in its
metadata, as `sensor_to_input`, one integer affine map per channel c:

    q = clamp(zero_point + ((raw - center[c]) * multiplier[c] + 2^(shift[c]-1)) >> shift[c], -128, 127)

with raw the int16 count, the product and the sum in 64-bit integers, >> an arithmetic
(flooring) shift, so the division by 2^shift rounds half up; zero_point is the input tensor's.
The firmware applies the same map to the int16 samples it receives (engine/sensor_input.c),
so a host can forward a live sensor's readings unchanged; this module is the specification
both follow. Channels are the innermost axis of the sample (HWC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MULTIPLIER_BITS = 15  # multiplier in [2^14, 2^15): (raw - center) * multiplier fits 32 bits + sign


class SensorScalingError(ValueError):
    """A sensor_to_input entry that is incomplete or out of the integer ranges the board uses."""


@dataclass(frozen=True)
class SensorScaling:
    channels: tuple[str, ...]
    center: tuple[int, ...]
    multiplier: tuple[int, ...]
    shift: tuple[int, ...]
    units: tuple[str, ...] = ()
    lsb: tuple[float, ...] = ()  # real units per count, for people and plots; the map does not use it

    def __post_init__(self) -> None:
        n = len(self.channels)
        if n == 0 or not len(self.center) == len(self.multiplier) == len(self.shift) == n:
            raise SensorScalingError(f"sensor_to_input needs one center, multiplier and shift per channel "
                                     f"({n} channels).")
        for c, m, s in zip(self.center, self.multiplier, self.shift):
            if not -32768 <= c <= 32767:
                raise SensorScalingError(f"sensor_to_input center {c} is not an int16 count.")
            if not 0 < m < 2 ** 31:
                raise SensorScalingError(f"sensor_to_input multiplier {m} is not in 1..2^31-1.")
            if not 1 <= s <= 62:
                raise SensorScalingError(f"sensor_to_input shift {s} is not in 1..62.")

    @classmethod
    def from_factors(cls, channels, center, factor, units=(), lsb=()) -> "SensorScaling":
        """The integer map closest to q = zero_point + (raw - center) * factor (factor > 0 per channel):
        multiplier in [2^14, 2^15) and the matching shift."""
        mults, shifts = [], []
        for f in factor:
            if not f > 0:
                raise SensorScalingError(f"a scaling factor must be positive, got {f}.")
            m, e = math.frexp(float(f))  # f = m 2^e, m in [0.5, 1)
            mult, shift = round(m * 2 ** MULTIPLIER_BITS), MULTIPLIER_BITS - e
            if mult == 2 ** MULTIPLIER_BITS:
                mult, shift = mult // 2, shift - 1
            mults.append(int(mult))
            shifts.append(int(shift))
        return cls(tuple(channels), tuple(int(c) for c in center), tuple(mults), tuple(shifts),
                   tuple(units), tuple(float(v) for v in lsb))

    @classmethod
    def from_json(cls, d: dict) -> "SensorScaling":
        try:
            return cls(tuple(str(c) for c in d["channels"]), tuple(int(v) for v in d["center"]),
                       tuple(int(v) for v in d["multiplier"]), tuple(int(v) for v in d["shift"]),
                       tuple(str(u) for u in d.get("units", ())), tuple(float(v) for v in d.get("lsb", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise SensorScalingError(f"sensor_to_input needs channels, center, multiplier and shift ({exc}).") from exc

    def to_json(self) -> dict:
        d = {"channels": list(self.channels), "center": list(self.center), "multiplier": list(self.multiplier),
             "shift": list(self.shift)}
        if self.units:
            d["units"] = list(self.units)
        if self.lsb:
            d["lsb"] = list(self.lsb)
        return d

    def factor(self) -> np.ndarray:
        """The real factor each channel's integer map stands for (multiplier / 2^shift)."""
        return np.array([m / 2.0 ** s for m, s in zip(self.multiplier, self.shift)])


def sensor_to_int8(raw: np.ndarray, scaling: SensorScaling, zero_point: int) -> np.ndarray:
    """int16 counts [..., channels] -> int8 input values of the same shape (the module's formula)."""
    raw = np.asarray(raw)
    if raw.dtype != np.int16:
        raise SensorScalingError(f"sensor samples are int16 counts, not {raw.dtype}.")
    if raw.shape[-1] != len(scaling.channels):
        raise SensorScalingError(f"sensor samples have {raw.shape[-1]} channels; the scaling has "
                                 f"{len(scaling.channels)}.")
    center = np.asarray(scaling.center, np.int64)
    mult = np.asarray(scaling.multiplier, np.int64)
    shift = np.asarray(scaling.shift, np.int64)
    v = (raw.astype(np.int64) - center) * mult
    q = int(zero_point) + ((v + (np.int64(1) << (shift - 1))) >> shift)
    return np.clip(q, -128, 127).astype(np.int8)
