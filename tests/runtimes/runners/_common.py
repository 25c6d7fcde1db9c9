"""Shared loop of the runners: each runner is run with its runtime's own Python as

    python runners/<runtime>.py JOBS.json PROGRESS.txt

JOBS.json: a list of {"key", "model", "inputs" (.npz, one array per input name), "out" (.npz to write, one
array per output name), "result" (.json to write), "work" (a scratch directory), "input_names" and
"output_names" (the model's, in graph order), "out_shape" (the first output's shape) and optionally
"out_shapes" (output name -> shape)}. For every job the runner appends "START key" to PROGRESS, converts
and runs the model, writes the outputs and a result JSON ({"status": "ran"} or {"status": "rejected",
"stage", "error"}), then appends "DONE key". A job that kills the process (segfault, abort) leaves a START
without DONE: the driver classifies it as crashed and restarts the runner on the remaining jobs.

While a job runs, file descriptors 1 and 2 go to <work>/log.txt: converters print a lot, and some only say
why they refused in their log (the first error-like line of it becomes the message then).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback

import numpy as np


def leave_runner_directory() -> None:
    """Take the runners' directory off ``sys.path``: ``runners/tract.py`` must import the real ``tract`` package."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path_importer_cache.pop(here, None)


class Rejected(Exception):
    """The converter or loader refused the model (a return code, or a model it did not convert)."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


_ERR_LINE = re.compile(r"(^E |error|Error|ERROR|not support|Not support|unsupported|Unsupported|not exists|failed)")


def first_error_line(log_path: str) -> str:
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                line = line.strip()
                if line and _ERR_LINE.search(line):
                    return line[:400]
    except OSError:
        pass
    return ""


def _first_line(text: str) -> str:
    lines = str(text).splitlines()
    if lines and lines[0].startswith("Traceback"):  # a wrapped traceback (RKNN): its last line says what failed
        lines = lines[::-1]
    lines = [ln.strip() for ln in lines if ln.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:  # "Exception from src/core.cpp:84:" (OpenVINO): the reason follows
        rest = lines[1:]
        first += " " + next((ln for ln in rest if "not supported" in ln or "Not support" in ln),
                            next((ln for ln in rest if "rror" in ln), rest[0]))
    return first[:400]


class _Redirect:
    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        os.close(self.saved[0])
        os.close(self.saved[1])
        return False


def to_layout(x: np.ndarray, shape) -> np.ndarray:
    """x as `shape`: itself, its NHWC<->NCHW transpose, or a reshape when only size-1 axes differ."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if x.ndim == 4 and len(shape) == 4:
        if x.transpose(0, 3, 1, 2).shape == shape:
            return x.transpose(0, 3, 1, 2)
        if x.transpose(0, 2, 3, 1).shape == shape:
            return x.transpose(0, 2, 3, 1)
    if x.size == int(np.prod(shape)) and [d for d in x.shape if d != 1] == [d for d in shape if d != 1]:
        return x.reshape(shape)
    return x


def ordered_inputs(inputs: dict, job: dict) -> list:
    """The input arrays in the model's input order (job["input_names"]; the grid's one input is "X")."""
    return [inputs[n] for n in job.get("input_names") or ["X"]]


def output_shape(job: dict, name: str, index: int):
    """ORT's shape of an output (by name, else the first output's shape)."""
    shapes = job.get("out_shapes") or {}
    return shapes.get(name) or (job["out_shape"] if index == 0 else None)


def main(run_one, fresh_after_error: bool = False) -> None:
    """run_one(model_path, inputs: dict[str, ndarray], work_dir, job) -> dict[str, ndarray] (raise Rejected).

    run_one may put notes about the conversion in job["info"] (a dict); they are saved with the result.
    fresh_after_error: stop after a refused job (the driver starts a new process for the rest), for runtimes
    whose state is not trustworthy after an error."""
    jobs_path, progress_path = sys.argv[1], sys.argv[2]
    with open(jobs_path) as f:
        jobs = json.load(f)
    progress = open(progress_path, "a", buffering=1)
    for job in jobs:
        progress.write(f"START {job['key']}\n")
        os.makedirs(job["work"], exist_ok=True)
        log = os.path.join(job["work"], "log.txt")
        t0 = time.time()
        try:
            with np.load(job["inputs"]) as data:
                inputs = {k: data[k] for k in data.files}
            info: dict = {}
            job["info"] = info  # a runner may record what its converter emitted (kept even when it refuses)
            with _Redirect(log):
                outputs = run_one(job["model"], inputs, job["work"], job)
            np.savez(job["out"], **{k: np.asarray(v, dtype=np.float32) for k, v in outputs.items()})
            result = {"status": "ran"}
        except Rejected as e:
            msg = _first_line(str(e))
            hint = first_error_line(log)
            result = {"status": "rejected", "stage": e.stage, "error": msg + (f" | {hint}" if hint and hint not in msg else "")}
        except BaseException as e:  # noqa: BLE001 - every refusal is data here
            stage = getattr(e, "_stage", "convert")
            msg = f"{type(e).__name__}: {_first_line(str(e))}"
            hint = first_error_line(log)
            if (not _first_line(str(e)) or isinstance(e, SystemExit)) and hint:  # SystemExit: 1 says nothing
                msg += " | " + hint
            result = {"status": "rejected", "stage": stage, "error": msg, "trace": traceback.format_exc()[-1500:]}
        if job.get("info"):
            result["info"] = job["info"]
        result["seconds"] = round(time.time() - t0, 3)
        with open(job["result"] + ".tmp", "w") as f:
            json.dump(result, f, default=str)
        os.replace(job["result"] + ".tmp", job["result"])
        progress.write(f"DONE {job['key']}\n")
        if fresh_after_error and result["status"] != "ran":
            break
    progress.close()


def stage(name: str):
    """Context manager tagging exceptions raised inside with a stage name (convert / load / run)."""

    class _Stage:
        def __enter__(self):
            return self

        def __exit__(self, et, ev, tb):
            if ev is not None and not hasattr(ev, "_stage") and not isinstance(ev, Rejected):
                try:
                    ev._stage = name
                except Exception:  # noqa: BLE001
                    pass
            return False

    return _Stage()
