# SCons build script of the tinytrain development platform (run by PlatformIO).
#
# Debian's arm-none-eabi-gcc from PATH, no framework, no downloaded packages.
# Sources: every .c/.S under firmware/ except firmware/tests/ and the board
# folders of other boards (the board JSON lists this board's folders), plus any
# .c in $BUILD_DIR/generated/, which a `pre:` extra script may fill before this
# script runs (that folder is also on the include path).

import os
import shutil
import sys

from elftools.elf.elffile import ELFFile
from SCons.Script import COMMAND_LINE_TARGETS, AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()

TT_BOARD = board.get("build.tinytrain_board")
BOARD_DIRS = board.get("build.tinytrain_board_dirs")
RAM_LIMIT = int(board.get("upload.maximum_ram_size"))
FLASH_LIMIT = int(board.get("upload.maximum_size"))
BOARDS_SRC = os.path.join(env.subst("$PROJECT_SRC_DIR"), "boards")
GENERATED_DIR = os.path.join(env.subst("$BUILD_DIR"), "generated")

# Functions that would need a heap. Wrapping them without defining the wrappers
# turns any reference into a link error ("undefined reference to __wrap_malloc").
HEAP_FUNCTIONS = [
    "malloc", "calloc", "realloc", "free", "_sbrk",
    "_malloc_r", "_calloc_r", "_realloc_r", "_free_r", "_sbrk_r",
]

MACHINE = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]

env.Replace(
    AR="arm-none-eabi-gcc-ar",
    AS="arm-none-eabi-gcc",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="gdb-multiarch",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-gcc-ranlib",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
)

if "nobuild" not in COMMAND_LINE_TARGETS and not shutil.which(env.subst("$CC")):
    sys.stderr.write(
        "Error: arm-none-eabi-gcc is not on PATH; run `make setup` "
        "(it installs Debian's gcc-arm-none-eabi and libnewlib-arm-none-eabi).\n"
    )
    env.Exit(1)

env.Append(
    ASFLAGS=MACHINE,
    ASPPFLAGS=MACHINE + ["-x", "assembler-with-cpp"],
    CCFLAGS=MACHINE + [
        "-O2",
        "-g",
        "-ffunction-sections",
        "-fdata-sections",
        # Bit-exact agreement with the NumPy reference: never fuse a*b+c.
        "-ffp-contract=off",
        "-fno-common",
        "-Wall",
        "-Wextra",
        "-Werror",
    ],
    CFLAGS=["-std=c11"],
    CPPDEFINES=[("TT_BOARD_" + TT_BOARD.upper(), 1)],
    CPPPATH=["$PROJECT_SRC_DIR", GENERATED_DIR],
    LINKFLAGS=MACHINE + [
        "-nostartfiles",
        "--specs=nano.specs",
        "-Wl,--gc-sections",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
        "-Wl,--no-warn-rwx-segments",
        # sections.ld is shared by the Cortex-M boards and INCLUDEd by their scripts.
        "-L", os.path.join(BOARDS_SRC, "cortex_m"),
    ] + ["-Wl,--wrap=%s" % name for name in HEAP_FUNCTIONS],
)

if not env.get("LDSCRIPT_PATH"):
    env.Replace(LDSCRIPT_PATH=os.path.join(BOARDS_SRC, TT_BOARD, TT_BOARD + ".ld"))

if not env.get("SRC_FILTER"):
    # `build_src_filter` in platformio.ini, when set, replaces this.
    env.Replace(
        SRC_FILTER=["+<*>", "-<tests/>", "-<boards/>", "+<boards/*.c>"]
        + ["+<boards/%s/>" % name for name in BOARD_DIRS]
    )

# Generated sources: a `pre:` extra script has already run and written them.
if os.path.isdir(GENERATED_DIR):
    env.BuildSources(os.path.join("$BUILD_DIR", "generated_obj"), GENERATED_DIR, ["+<*.c>"])


def checkpoint_bytes(elf):
    """Flash the linker script reserved for the two checkpoint slots (symbol __tt_nv_bytes__)."""
    symtab = elf.get_section_by_name(".symtab")
    found = symtab.get_symbol_by_name("__tt_nv_bytes__") if symtab is not None else None
    return int(found[0]["st_value"]) if found else 0


def size_report(target, source, env):
    """Print RAM/flash use of the linked ELF; fail when it does not fit the board (its flash less the
    checkpoint slots, which the linker script reserves at the top)."""
    elf_path = str(source[0])
    ram_lo = 0x20000000  # both boards
    with open(elf_path, "rb") as fh:
        elf = ELFFile(fh)
        reserved = checkpoint_bytes(elf)
        # Flash holds every loaded byte whose load address is not in RAM (.data's image included).
        flash = sum(
            seg["p_filesz"]
            for seg in elf.iter_segments()
            if seg["p_type"] == "PT_LOAD" and not ram_lo <= seg["p_paddr"] < ram_lo + RAM_LIMIT
        )
        ram_sections = [
            (sec.name, sec["sh_size"])
            for sec in elf.iter_sections()
            if sec["sh_flags"] & 0x2  # SHF_ALLOC
            and ram_lo <= sec["sh_addr"] < ram_lo + RAM_LIMIT
            and sec["sh_size"]
        ]
    ram = sum(size for _, size in ram_sections)
    detail = " + ".join("%s %d" % item for item in ram_sections)
    image_limit = FLASH_LIMIT - reserved
    slots = " (+ %d reserved for the checkpoint slots)" % reserved if reserved else " (no checkpoint slots)"
    # One write, so that parallel build steps do not interleave with it.
    sys.stdout.write(
        "tinytrain size report (%s, %s)\n" % (TT_BOARD, os.path.relpath(elf_path))
        + "  RAM:   %7d of %7d bytes (%5.1f%%): %s\n" % (ram, RAM_LIMIT, 100.0 * ram / RAM_LIMIT, detail)
        + "  Flash: %7d of %7d bytes (%5.1f%%)%s\n" % (flash, image_limit, 100.0 * flash / image_limit, slots)
    )
    sys.stdout.flush()
    if ram > RAM_LIMIT or flash > image_limit:
        sys.stderr.write("Error: the firmware does not fit the board's %d bytes of RAM and the %d bytes of flash "
                         "left beside its checkpoint slots.\n" % (RAM_LIMIT, image_limit))
        return 1
    return 0


program = env.BuildProgram()
binary = env.Command(
    os.path.join("$BUILD_DIR", "firmware.bin"),
    program,
    env.VerboseAction("$OBJCOPY -O binary $SOURCE $TARGET", "Building $TARGET"),
)
size = AlwaysBuild(env.Alias("tinytrain_size", program, env.VerboseAction(size_report, "Checking size")))
Default([program, binary, size])

# Upload: `pio run -e ENV -t upload`.
protocol = env.subst("$UPLOAD_PROTOCOL") or board.get("upload.protocol")
if protocol == "openocd":
    env.Replace(
        UPLOADCMD='openocd -f %s -c "program {$SOURCE} verify reset exit"'
        % board.get("upload.openocd_config")
    )
elif protocol == "pyocd":
    env.Replace(
        UPLOADCMD='"$PYTHONEXE" -m pyocd flash --target %s "$SOURCE"' % board.get("upload.pyocd_target")
    )
elif protocol == "qemu":
    # Boots the image and serves its UART as socket://127.0.0.1:PORT until Ctrl-C.
    port_arg = " --port $UPLOAD_PORT" if env.subst("$UPLOAD_PORT") else ""
    env.Replace(UPLOADCMD='"$PYTHONEXE" -m tinytrain emulate --elf "$SOURCE"' + port_arg)
else:
    sys.stderr.write("Error: unknown upload_protocol `%s` for board %s.\n" % (protocol, TT_BOARD))
    env.Exit(1)

AlwaysBuild(env.Alias("upload", [program, size], env.VerboseAction("$UPLOADCMD", "Uploading $SOURCE")))
