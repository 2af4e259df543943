"""tinytrain checkpoint: the board's checkpoints in flash: what it restored, take one, erase them."""

from __future__ import annotations

import argparse

from tinytrain.board.engine_client import NO_STREAM
from tinytrain.board.session import add_board_arguments, open_board


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checkpoint", help="show, take or erase the board's checkpoints",
                       description="The board keeps its learned state in two flash slots written alternately "
                                   "(docs/checkpoints.md) and restores the newest valid one when it starts. Without "
                                   "an option: what it restored and holds now.")
    add_board_arguments(p)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--take", action="store_true", help="checkpoint the learned state now")
    what.add_argument("--clear", action="store_true", help="erase both slots (the learned state in SRAM stays)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_board(args) as s:
        e = s.engine
        if args.take:
            t = e.checkpoint()
            print(f"checkpoint {t.sequence} of step {t.step_count} written to slot {t.slot} "
                  f"({t.erases_since_boot} sector erases since the board started)")
        elif args.clear:
            erases = e.checkpoint_clear()
            print(f"both checkpoint slots erased ({erases} sector erases since the board started)")
        st = e.checkpoint_status()
        if not st.slot_bytes:
            print("this build has no checkpoints")
            return 0
        boot = {"none": "found no valid checkpoint at start",
                "restored": f"restored checkpoint {st.restored_sequence} (step {st.restored_step_count}) at start",
                "foreign": "found checkpoints of another build at start and kept its power-on state"}[st.boot]
        print(f"the board {boot}")
        if st.has_newest:
            origin = ("a pushed state" if st.newest_stream_base == NO_STREAM
                      else f"a stream that started at step {st.newest_stream_base}")
            print(f"newest checkpoint: {st.newest_sequence} in slot {st.newest_slot}, step {st.newest_step_count}, "
                  f"from {origin}")
        else:
            print("no checkpoint of this build")
        kind = "flash" if st.persistent else "RAM (lost when the emulator stops: give it a file)"
        print(f"slots of {st.slot_bytes} bytes in {kind}; sector erases: {st.slot_erases[0]} and "
              f"{st.slot_erases[1]} recorded, {st.erases_since_boot} since the board started")
    return 0
