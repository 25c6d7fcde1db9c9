"""ONNX's own conformance tests for Resize (generated from the case definitions the onnx wheel ships): with
their run-time inputs (roi, scales, sizes) pinned to the test's values, every one goes through fix-resize
for every target and equals ONNX Runtime on the original model with all its inputs (a runtime reached through a
converter may refuse a node instead, with the reason, where nothing it runs is exact)."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import onnx
import pytest

from rewriter.errors import NotExactError
from rewriter.fix import fix_resize
from rewriter.ort_runtime import relative_error, session
from rewriter.targets import TARGET_NAMES, make_target
from rewriter.targets.runtime import RuntimeTarget
from tests.conftest import record_stats


def _cases() -> list:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        found = {c.name: c for c in collect_testcases("Resize")}
    return [found[name] for name in sorted(found)]


CASES = _cases()


@pytest.mark.parametrize("target", TARGET_NAMES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conformance_case_with_pinned_inputs(case, target: str) -> None:
    model: onnx.ModelProto = case.model
    inputs = case.data_sets[0][0]
    names = [vi.name for vi in model.graph.input]
    feeds = dict(zip(names, inputs))
    pinned = {name: np.asarray(value) for name, value in list(feeds.items())[1:]}
    expected = session(model).run(None, feeds)[0]
    try:
        result = fix_resize(model, target, input_values=pinned)
    except NotExactError as refused:
        assert isinstance(make_target(target), RuntimeTarget) and "cannot be made exact" in str(refused)
        return
    assert [vi.name for vi in result.model.graph.input] == names[:1], "pinned inputs are constants in the written model"
    actual = session(result.model).run(None, {names[0]: feeds[names[0]]})[0]
    error = relative_error(expected, actual)
    record_stats(f"conformance-{target}@{case.name}", {"cases": 1, "worst": error})
    assert error <= 1e-5, f"{case.name} -> {target}: {error:.3g}"
