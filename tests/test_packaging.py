"""templates/, firmware/ and qemu/ ship inside the wheel: every file in them is
matched by the package-data patterns of pyproject.toml."""
from __future__ import annotations

import fnmatch
import tomllib

from .conftest import REPO


def test_package_data_covers_every_data_file():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pkg, src in cfg["package-dir"].items():
        patterns = cfg["package-data"][pkg]
        files = [p.relative_to(REPO / src).as_posix() for p in (REPO / src).rglob("*") if p.is_file()]
        assert files, src
        missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) and f.count("/") == pat.count("/") for pat in patterns)]
        assert missing == [], f"{src}/ files not shipped in the wheel: {missing}"


def test_every_python_package_and_native_source_is_listed():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    pkg_dirs = {p.parent.relative_to(REPO).as_posix().replace("/", ".") for p in (REPO / "weightless_mcu").rglob("__init__.py")}
    assert pkg_dirs <= set(cfg["packages"]), pkg_dirs - set(cfg["packages"])
    native = [p.relative_to(REPO / "weightless_mcu").as_posix() for p in (REPO / "weightless_mcu").rglob("*.c")]
    assert native and all(any(fnmatch.fnmatch(f, pat) for pat in cfg["package-data"]["weightless_mcu"]) for f in native)
