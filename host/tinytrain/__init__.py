"""tinytrain: on-device training of real-quantized int8 networks on microcontrollers."""

__version__ = "0.1.0"
