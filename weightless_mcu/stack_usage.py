"""Static stack use of the inference: GCC's per-function frame sizes and call
graph (-fstack-usage -fcallgraph-info=su, one .ci file per object), and the
deepest call path from the model's run function."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# GCC asks for both when compiling the model's sources.
STACK_FLAGS = ("-fstack-usage", "-fcallgraph-info=su")

_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_DIRS = re.compile(r"^[^:]*/(?=[^/:]+:)")
_FRAME = re.compile(r"(\d+) bytes \(([a-z,]+)\)")


@dataclass
class CallGraph:
    frames: dict[str, tuple[int, str]] = field(default_factory=dict)  # function -> (bytes, static|dynamic|...)
    calls: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class StackPath:
    bytes: int
    path: tuple[tuple[str, int], ...]  # (function, its frame) from the root down
    unknown: tuple[str, ...]  # callees without a frame size (C library), not counted
    bounded: bool  # False when a frame on the path is dynamic or the graph has a cycle

    def as_dict(self) -> dict:
        return {"bytes": self.bytes, "path": [{"function": f, "frame_bytes": b} for f, b in self.path],
                "unknown_callees": list(self.unknown), "bounded": self.bounded}


def _function(title: str) -> str:
    """A call graph title without the build's directories: GCC names a static function by its
    source path ('/tmp/.../runtime/wl_conv2d_s8.c:wl_im2col_s8'); the file name is enough."""
    return _DIRS.sub("", title)


def read_callgraph(files) -> CallGraph:
    graph = CallGraph()
    for path in files:
        for line in Path(path).read_text().splitlines():
            m = _NODE.search(line)
            if m:
                frame = _FRAME.search(m.group(2).replace("\\n", "\n"))
                if frame:
                    graph.frames[_function(m.group(1))] = (int(frame.group(1)), frame.group(2))
                continue
            m = _EDGE.search(line)
            if m:
                graph.calls.setdefault(_function(m.group(1)), set()).add(_function(m.group(2)))
    return graph


def deepest_path(graph: CallGraph, root: str) -> StackPath:
    """The call path from root with the largest sum of frames. Callees GCC did not
    compile here (memset, expf) have no frame size: they are listed, not counted."""
    memo: dict[str, tuple[int, tuple[tuple[str, int], ...], bool]] = {}
    unknown: set[str] = set()

    def visit(fn: str, active: frozenset) -> tuple[int, tuple[tuple[str, int], ...], bool]:
        if fn in memo:
            return memo[fn]
        size, kind = graph.frames[fn]
        best: tuple[int, tuple[tuple[str, int], ...], bool] = (0, (), True)
        bounded = kind == "static" or kind.startswith("dynamic,bounded")
        for callee in sorted(graph.calls.get(fn, ())):
            if callee in active:  # recursion: no bound
                bounded = False
                continue
            if callee not in graph.frames:
                unknown.add(callee)
                continue
            sub = visit(callee, active | {callee})
            bounded = bounded and sub[2]
            if sub[0] > best[0]:
                best = sub
        memo[fn] = (size + best[0], ((fn, size),) + best[1], bounded)
        return memo[fn]

    if root not in graph.frames:
        raise KeyError(f"{root} is not in the call graph")
    total, path, bounded = visit(root, frozenset({root}))
    return StackPath(total, path, tuple(sorted(unknown)), bounded)


def inference_stack(build_dir: Path, root: str) -> StackPath | None:
    """The deepest stack path of root from the .ci files of a build, or None without them."""
    files = sorted(Path(build_dir).glob("*.ci"))
    graph = read_callgraph(files)
    return deepest_path(graph, root) if root in graph.frames else None
