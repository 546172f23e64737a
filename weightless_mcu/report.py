"""Flash and RAM of a firmware image from its ELF: the whole image (equal to
arm-none-eabi-size's text+data and data+bss), the model alone (the generated
library and the runtime kernels: every symbol named wl_*), and per layer."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import OptionError
from .stack_usage import StackPath


@dataclass
class ImageSizes:
    text: int  # allocated, not writable: code, constants, vectors (flash)
    data: int  # writable with contents: in RAM, and its load image in flash
    bss: int  # writable, no contents (RAM)
    symbols: dict[str, tuple[int, bool]] = field(default_factory=dict)  # name -> (size, in RAM)
    functions: set[str] = field(default_factory=set)  # the symbols that are code

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


def read_elf(elf: Path) -> ImageSizes:
    text = data = bss = 0
    symbols: dict[str, tuple[int, bool]] = {}
    functions: set[str] = set()
    with open(elf, "rb") as f:
        try:
            ef = ELFFile(f)
        except ELFError:
            raise OptionError(f"{elf} is not an ELF file") from None
        writable_sections = set()
        for idx, sec in enumerate(ef.iter_sections()):
            flags = sec["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            size = sec["sh_size"]
            if not flags & SH_FLAGS.SHF_WRITE:
                text += size
            elif sec["sh_type"] == "SHT_NOBITS":
                bss += size
                writable_sections.add(idx)
            else:
                data += size
                writable_sections.add(idx)
        symtab = ef.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols() if symtab else []:
            if sym["st_info"]["type"] not in ("STT_FUNC", "STT_OBJECT") or sym["st_size"] == 0:
                continue
            shndx = sym["st_shndx"]
            in_ram = isinstance(shndx, int) and shndx in writable_sections
            symbols[sym.name] = (sym["st_size"], in_ram)
            if sym["st_info"]["type"] == "STT_FUNC":
                functions.add(sym.name)
    return ImageSizes(text, data, bss, symbols, functions)


def is_model_symbol(name: str) -> bool:
    """The generated library and runtime kernels use the wl_ prefix; the harness and board code use wlh_."""
    return name.startswith("wl_")


def model_sizes(image: ImageSizes) -> tuple[int, int]:
    """(flash, RAM) of the model's own symbols."""
    flash = sum(size for name, (size, ram) in image.symbols.items() if is_model_symbol(name) and not ram)
    ram = sum(size for name, (size, ram) in image.symbols.items() if is_model_symbol(name) and ram)
    return flash, ram


# What each constant of a layer is, by the suffix of its symbol (see templates/).
_PARTS = (("_cells", "table"), ("_block_word", "table"), ("_weights", "table"), ("_codebook", "codebook"),
          ("_bias", "bias"), ("_bias_index", "bias"), ("_bias_codebook", "bias"), ("_params", "params"))
FLASH_PARTS = ("table", "codebook", "bias", "weights", "params")  # "weights": dense float32 constants


def _part(symbol: str, prefix: str) -> str:
    rest = symbol[len(prefix) - 1:]
    return next((part for suffix, part in _PARTS if rest == suffix), "weights")


def layer_sizes(image: ImageSizes, manifest: dict) -> list[dict]:
    """Flash of each layer's constants and params struct from the symbol table, split
    into the Bloomier/codebook table, the codebook, the bias, dense weights and params."""
    rows = []
    for step in manifest["steps"]:
        prefix = step["symbol_prefix"] + "_"
        parts = dict.fromkeys(FLASH_PARTS, 0)
        for name, (size, ram) in image.symbols.items():
            if name.startswith(prefix) and not ram and name not in image.functions:
                parts[_part(name, prefix)] += size
        weights = sum(c["bytes"] for c in step["consts"].values()) + (step["encoding"]["bytes"] if step.get("encoding") else 0)
        rows.append({"layer": step["layer"], "kernel": step["kernel"], "flash_bytes": sum(parts.values()),
                     "weight_bytes": weights, "parts": parts, "macs": step.get("macs", 0)})
    return rows


def code_sizes(image: ImageSizes) -> dict[str, int]:
    """Bytes of code of each runtime and model function (wl_*), largest first."""
    code = {n: image.symbols[n][0] for n in image.functions if is_model_symbol(n)}
    return dict(sorted(code.items(), key=lambda kv: (-kv[1], kv[0])))


def size_report(image: ImageSizes, manifest: dict, stack: StackPath | None = None) -> dict:
    """Flash and RAM of an image built from a compiled output, with the
    manifest's arena and compression figures, the per-layer rows and the
    inference's deepest stack path (RAM = arena + statics + stack)."""
    flash, ram = model_sizes(image)
    return {
        "flash_bytes": flash,
        "ram_bytes": ram,
        "stack": None if stack is None else stack.as_dict(),
        "ram_total_bytes": ram + (stack.bytes if stack is not None else 0),
        "arena_bytes": manifest["arena_bytes"],
        "arena_lower_bound_bytes": manifest["arena_lower_bound_bytes"],
        "image_flash_bytes": image.flash,
        "image_ram_bytes": image.ram,
        "compression_ratio": manifest["compression_ratio"],
        "weights_float32_bytes": manifest["weights_float32_bytes"],
        "weights_stored_bytes": manifest["weights_stored_bytes"],
        "layers": manifest["layers"],
        "steps": layer_sizes(image, manifest),
        "code": code_sizes(image),
    }
