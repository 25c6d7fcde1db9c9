"""Per-model settings from ``rewriter.toml`` or ``[tool.rewriter]`` in ``pyproject.toml``.

One file serves a repository of many models (and so one pre-commit hook entry): top-level keys are the
defaults, and each ``[[models]]`` entry applies its keys to the model paths matching its ``paths`` globs
(relative to the file's directory; ``*`` stays within a directory, ``**`` crosses directories). Every
matching entry applies, in file order, later keys replacing earlier ones. A command-line flag beats both.

    # rewriter.toml (in pyproject.toml: the same under [tool.rewriter] and [[tool.rewriter.models]])
    targets = ["onnx"]

    [[models]]
    paths = ["ios/**/*.onnx"]
    targets = ["onnx", "coreml"]
    deployment-target = "iOS16"
    input-shapes = { image = "1x3x512x512" }

The file is found from the working directory upwards (``rewriter.toml`` first, then a ``pyproject.toml``
with a ``[tool.rewriter]`` table), stopping at the repository root (a directory holding ``.git``);
``rewriter --config FILE`` names one explicitly.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rewriter.errors import UsageError

TARGET_NAMES = ("onnx", "coreml", "caffe", "openvino", "tract", "mnn", "rknn", "ncnn", "torch", "tflite")  # the registry's names (tests keep them equal), known without importing it
DEFAULT_TARGETS = ("onnx", "coreml", "caffe")  # the registry's DEFAULT_TARGETS: inspect / report without --target

_KEYS = {
    "targets": "targets",
    "target": "targets",
    "input-shapes": "input_shapes",
    "input-values": "input_values",
    "inputs": "inputs",
    "deployment-target": "deployment_target",
    "flavor": "flavor",
    "atol": "atol",
    "lower": "lower",
    "border": "border",
}


@dataclass(frozen=True)
class Settings:
    """The settings of one model: every field None (or empty) when neither the file nor a flag sets it."""

    targets: tuple[str, ...] = ()
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    input_values: dict[str, list[float]] = field(default_factory=dict)  # run-time inputs pinned to constants
    inputs: Path | None = None  # .npz of input values, for fix-resize --verify full
    deployment_target: str | None = None
    flavor: str | None = None
    atol: float | None = None
    lower: str | None = None
    border: str | None = None

    def overridden(self, **flags: Any) -> Settings:
        """These settings with every flag that was given (not None, not empty) taking precedence."""
        given = {k: v for k, v in flags.items() if v not in (None, (), [], {})}
        if "targets" in given:
            given["targets"] = tuple(given["targets"])
        return replace(self, **given)

    def options(self) -> dict[str, str | None]:
        """Target options in the form ``make_target`` reads."""
        return {"deployment_target": self.deployment_target, "flavor": self.flavor}


@dataclass(frozen=True)
class _Entry:
    patterns: tuple[re.Pattern[str], ...]
    settings: dict[str, Any]


@dataclass(frozen=True)
class Config:
    path: Path | None  # None: no file found, built-in defaults only
    defaults: dict[str, Any] = field(default_factory=dict)
    entries: tuple[_Entry, ...] = ()

    @property
    def root(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def settings_for(self, model: str | os.PathLike) -> Settings:
        merged = dict(self.defaults)
        rel = _relative(Path(model), self.root)
        for entry in self.entries:
            if rel is not None and any(p.fullmatch(rel) for p in entry.patterns):
                merged.update(entry.settings)
        return Settings(**merged)


def parse_shape(spec: str, what: str) -> tuple[int, ...]:
    """``1x3x224x224`` -> (1, 3, 224, 224); UsageError naming ``what`` otherwise."""
    try:
        dims = tuple(int(d) for d in spec.lower().split("x"))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise UsageError(f"{what}: expected D0xD1x... with positive integers, e.g. 1x3x224x224")
    return dims


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``--input-shape NAME=D0xD1x...`` flags -> {name: dims}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--input-shape {spec!r}: expected NAME=D0xD1x..., e.g. input=1x3x224x224")
        shapes[name] = parse_shape(dims, f"--input-shape {spec!r}")
    return shapes


def check_atol(value: float, what: str = "--atol") -> float:
    """A tolerance must be a finite number >= 0 (NaN would make every comparison pass)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{what} {value!r}: expected a finite number >= 0, e.g. 1e-5")
    return float(value)


def find_config(start: Path | None = None) -> Path | None:
    """The nearest rewriter.toml, or pyproject.toml with [tool.rewriter], from ``start`` up to the repository root."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "rewriter.toml").is_file():
            return folder / "rewriter.toml"
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and re.search(r"^\[tool\.rewriter[\].]", pyproject.read_text(encoding="utf-8", errors="replace"), re.MULTILINE):
            return pyproject
        if (folder / ".git").exists():
            return None
    return None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """The configuration at ``path``, or the one found from the working directory (empty if none)."""
    found = Path(path) if path is not None else find_config()
    if found is None:
        return Config(None)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"--config {found}: cannot read ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{found}: not valid TOML ({e})") from None
    if found.name == "pyproject.toml":
        data = data.get("tool", {}).get("rewriter", {})
    return _parse(found, data)


def _parse(path: Path, data: dict) -> Config:
    where = str(path)
    models = data.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, dict) for m in models):
        raise UsageError(f"{where}: 'models' must be an array of tables ([[models]])")
    defaults = _settings({k: v for k, v in data.items() if k != "models"}, path, where)
    entries = []
    for k, entry in enumerate(models, 1):
        at = f"{where}: models entry {k}"
        paths = entry.get("paths")
        if isinstance(paths, str):
            paths = [paths]
        if not paths or not all(isinstance(p, str) for p in paths):
            raise UsageError(f"{at}: 'paths' must be a glob or a list of globs")
        entries.append(_Entry(tuple(glob_pattern(p) for p in paths), _settings({k: v for k, v in entry.items() if k != "paths"}, path, at)))
    return Config(path, defaults, tuple(entries))


def _settings(raw: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _KEYS:
            raise UsageError(f"{where}: unknown key {key!r} (known: paths, {', '.join(sorted(_KEYS))})")
        name = _KEYS[key]
        if name == "targets":
            value = [value] if isinstance(value, str) else value
            if not isinstance(value, list) or not value or any(v not in TARGET_NAMES for v in value):
                raise UsageError(f"{where}: {key} = {raw[key]!r}: expected target names from {', '.join(TARGET_NAMES)}")
            value = tuple(value)
        elif name == "input_shapes":
            if not isinstance(value, dict):
                raise UsageError(f"{where}: input-shapes must be a table, e.g. {{ image = \"1x3x224x224\" }}")
            value = {n: _shape(v, f"{where}: input-shapes.{n}") for n, v in value.items()}
        elif name == "input_values":
            if not isinstance(value, dict) or not all(_is_number_list(v) for v in value.values()):
                raise UsageError(f"{where}: input-values must be a table of number lists, e.g. {{ scales = [1, 1, 2, 2] }}")
        elif name == "inputs":
            if not isinstance(value, str):
                raise UsageError(f"{where}: inputs must be the path of an .npz file")
            value = path.parent / value
        elif name == "atol":
            value = check_atol(value, f"{where}: atol")
        elif not isinstance(value, str):
            raise UsageError(f"{where}: {key} must be a string")
        out[name] = value
    return out


def _is_number_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def parse_input_values(specs: list[str] | None) -> dict[str, list[float]]:
    """``--input-value NAME=v1,v2,...`` flags -> {name: values} (cast to the input's type when the model is read)."""
    values: dict[str, list[float]] = {}
    for spec in specs or []:
        name, sep, text = spec.partition("=")
        try:
            numbers = [float(v) for v in text.split(",")] if text.strip() else []
        except ValueError:
            numbers = []
        if not sep or not name or not numbers:
            raise UsageError(f"--input-value {spec!r}: expected NAME=V1,V2,..., e.g. scales=1,1,2,2")
        values[name] = numbers
    return values


def _shape(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, list) and value and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value):
        return tuple(value)
    if isinstance(value, str):
        return parse_shape(value, what)
    raise UsageError(f"{what}: expected \"D0xD1x...\" or a list of positive integers")


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A path glob as a regex over '/'-separated relative paths: ``**/`` any directories, ``*`` / ``?`` within one."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


def _relative(model: Path, root: Path) -> str | None:
    try:
        return model.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


__all__ = ["Config", "Settings", "check_atol", "find_config", "load_config", "parse_input_shapes", "parse_input_values", "parse_shape"]
