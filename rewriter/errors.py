"""Typed errors. The CLI prints ``str(error)`` as its one-line message and exits with ``exit_code``."""

from __future__ import annotations


class RewriterError(Exception):
    """Base class of every error rewriter raises on purpose."""

    exit_code: int = 2


class BadModelError(RewriterError):
    """The input is not a readable, valid ONNX model (or its external data is missing or unsafe)."""

    exit_code = 2


class UsageError(RewriterError):
    """The command line or API call is inconsistent (bad option, contradicting --input-shape...)."""

    exit_code = 2


class NotExactError(RewriterError):
    """A node cannot be made to run identically on the requested target."""

    exit_code = 1


class VerificationError(RewriterError):
    """A rewrite was checked numerically and did not match."""

    exit_code = 1


class UnsupportedOpError(RewriterError):
    """An exporter met ONNX ops it cannot translate (the message lists every op type and its nodes)."""

    exit_code = 1


class PassError(RewriterError):
    """A pass failed unexpectedly (a bug in rewriter); the message names the pass, the node and the passes before it."""

    exit_code = 2


def input_shape_option(name: str, dims) -> str:
    """``--input-shape NAME=DIMS`` that runs as written: fixed dims kept, every other one 1."""
    example = "x".join(str(d) if isinstance(d, int) and d > 0 else "1" for d in dims) or "1"
    return f"--input-shape {name}={example}"


def dynamic_input_error(name: str, dims: list[int | str], alternative: str | None = None) -> UsageError:
    """The one message for a graph input whose shape a command needs static (every command says it alike)."""
    shown = "x".join(str(d) for d in dims) or "?"
    more = f" or {alternative}" if alternative else ""
    return UsageError(f"input {name!r} has a dynamic shape {shown}: pass {input_shape_option(name, dims)}{more}")
