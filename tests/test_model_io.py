"""Tests of rewriter.model_io: hostile inputs, external data handling and atomic saving."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from rewriter import model_io
from rewriter.errors import BadModelError, UsageError
from rewriter.model_io import external_data_files, load_model, model_dir, read_tensor, save_model

WEIGHTS = np.arange(1000, dtype=np.float32).reshape(10, 4, 5, 5) / 1000
BIAS = np.linspace(-1, 1, 10, dtype=np.float32)
SCALES = np.array([1, 1, 2, 2], dtype=np.float32)
# ORT cannot shape-infer Resize when its scales are external ("Cannot parse data from external
# tensors"), so models that ORT runs keep small tensors inline: only W (4000 bytes) goes out.
RUNNABLE = 1024
INPUT = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)


def make_model() -> onnx.ModelProto:
    """Conv (1000-float weight) -> Resize (scales initializer)."""
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["X", "W", "B"], ["C"], name="conv"),
            helper.make_node("Resize", ["C", "", "scales"], ["Y"], name="resize", mode="nearest"),
        ],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for a, n in ((WEIGHTS, "W"), (BIAS, "B"), (SCALES, "scales"))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=10)


def save_external(
    model: onnx.ModelProto, path: Path, location: str = "w.data", size_threshold: int = 0
) -> Path:
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
              location=location, size_threshold=size_threshold)
    return path


def run(model: Path | onnx.ModelProto) -> np.ndarray:
    """ORT output for a model file (external data read by ORT itself) or an in-memory model."""
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, {"X": INPUT})[0]


def locations(model: onnx.ModelProto) -> dict[str, dict[str, str]]:
    return {t.name: {e.key: e.value for e in t.external_data} for t in model.graph.initializer}


@pytest.fixture
def expected() -> np.ndarray:
    return run(make_model())


def bad_model_message(path: Path) -> str:
    with pytest.raises(BadModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- loading -----------------------------------------------------------------------------


def test_load_inline_keeps_weights(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(make_model(), path)
    model = load_model(path)
    assert model == make_model()
    assert model_dir(path) == tmp_path


def test_load_external_leaves_weights_on_disk(tmp_path: Path) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    assert all(not t.HasField("raw_data") for t in model.graph.initializer)
    assert external_data_files(model) == {"w.data"}


def test_load_weights_inlines_external_data(tmp_path: Path, expected: np.ndarray) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"), load_weights=True)
    assert external_data_files(model) == set()
    np.testing.assert_array_equal(run(model), expected)


def test_load_huge_external_model_reads_only_the_graph(tmp_path: Path) -> None:
    model = make_model()
    del model.graph.initializer[:]
    weight = model.graph.initializer.add()
    weight.name, weight.data_type = "W", TensorProto.FLOAT
    weight.dims.extend([2**30])  # 4 GiB of floats, in a sparse file that takes no disk space
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "big.data"), ("offset", "0"), ("length", str(4 * 2**30))):
        weight.external_data.add(key=key, value=value)
    with open(tmp_path / "big.data", "wb") as f:
        f.truncate(4 * 2**30)
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    start = time.perf_counter()
    loaded = load_model(tmp_path / "m.onnx")
    assert time.perf_counter() - start < 0.5
    assert external_data_files(loaded) == {"big.data"}


def test_custom_domain_is_kept(tmp_path: Path) -> None:
    model = make_model()
    model.opset_import.append(helper.make_opsetid("com.example", 3))
    model.graph.node.append(helper.make_node("Foo", ["Y"], ["Z"], domain="com.example"))
    onnx.save(model, tmp_path / "m.onnx")
    assert {(o.domain, o.version) for o in load_model(tmp_path / "m.onnx").opset_import} == {
        ("", 19), ("com.example", 3)}


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in bad_model_message(tmp_path / "nope.onnx")


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in bad_model_message(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"")
    assert "m.onnx: file is empty" in bad_model_message(tmp_path / "m.onnx")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"This is a README, not a model.\n", "not a valid ONNX protobuf"),
        (bytes(range(256)) * 4, "not a valid ONNX protobuf"),
        # Both parse as protobuf (unknown varint fields) into an empty ModelProto.
        (b"hi", "missing ir_version, graph, opset_import"),
        (b"xx", "missing ir_version, graph, opset_import"),
    ],
)
def test_not_a_model(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "m.onnx").write_bytes(content)
    message = bad_model_message(tmp_path / "m.onnx")
    assert "m.onnx" in message and reason in message


def test_truncated_model(tmp_path: Path) -> None:
    data = make_model().SerializeToString()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) // 2])
    assert "m.onnx" in bad_model_message(tmp_path / "m.onnx")


def test_json_extension_is_still_parsed_as_protobuf(tmp_path: Path) -> None:
    # onnx.load would pick its JSON parser from the extension.
    onnx.save(make_model(), tmp_path / "m.onnx")
    shutil.copy(tmp_path / "m.onnx", tmp_path / "m.json")
    assert load_model(tmp_path / "m.json") == make_model()


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "m.onnx")
    assert "not a regular file" in bad_model_message(tmp_path / "m.onnx")


def test_message_stays_on_one_line_for_hostile_names(tmp_path: Path) -> None:
    assert "\\n" in bad_model_message(tmp_path / "evil\nname.onnx")


@pytest.mark.parametrize(
    ("opsets", "reason"),
    [
        ([("", 999)], "ai.onnx opset 999 is unknown"),
        ([("", 0)], "invalid version 0"),
        ([("", 19), ("ai.onnx", 19)], "imported twice"),
        ([("com.example", 1)], "domain '' which the model does not import"),
    ],
)
def test_bad_opsets(tmp_path: Path, opsets: list[tuple[str, int]], reason: str) -> None:
    model = make_model()
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in opsets)
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    assert reason in bad_model_message(tmp_path / "m.onnx")


def test_empty_op_type_in_subgraph(tmp_path: Path) -> None:
    branch = helper.make_graph([helper.make_node("", [], ["b"])], "branch", [],
                               [helper.make_tensor_value_info("b", TensorProto.FLOAT, None)])
    model = make_model()
    model.graph.node.append(helper.make_node("If", ["cond"], ["o"], then_branch=branch, else_branch=branch))
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    assert "has no op_type" in bad_model_message(tmp_path / "m.onnx")


def test_newer_ir_version(tmp_path: Path) -> None:
    model = make_model()
    model.ir_version = onnx.IR_VERSION + 1
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    assert "IR version" in bad_model_message(tmp_path / "m.onnx")


# --- hostile external data ---------------------------------------------------------------


def with_location(tmp_path: Path, location: str, **extra: str) -> Path:
    """A model whose weight claims to live at ``location`` (written as is, bypassing onnx's checks)."""
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    weight = model.graph.initializer[0]
    entries = {**locations(model)["W"], "location": location, **extra}
    del weight.external_data[:]
    for key, value in entries.items():
        weight.external_data.add(key=key, value=value)
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    return tmp_path / "m.onnx"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("../../etc/passwd", "outside the model directory"),
        ("sub/../../w.data", "outside the model directory"),
        ("/etc/passwd", "absolute external data '/etc/passwd' refused"),
        (".", "outside the model directory"),
        ("", "no valid external data location"),
        ("missing.data", "file is missing"),
    ],
)
def test_unsafe_or_missing_external_data(tmp_path: Path, location: str, reason: str) -> None:
    message = bad_model_message(with_location(tmp_path, location))
    assert "m.onnx: tensor 'W'" in message and reason in message


def test_symlink_escaping_model_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.data"
    outside.write_bytes(bytes(8000))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "link.data").symlink_to(outside)
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    shutil.copy(tmp_path / "w.data", tmp_path / "models" / "w.data")
    weight = model.graph.initializer[0]
    next(e for e in weight.external_data if e.key == "location").value = "link.data"
    (tmp_path / "models" / "m.onnx").write_bytes(model.SerializeToString())
    assert "outside the model directory" in bad_model_message(tmp_path / "models" / "m.onnx")


def test_symlink_inside_model_directory_is_fine(tmp_path: Path) -> None:
    save_external(make_model(), tmp_path / "m.onnx")
    (tmp_path / "link.data").symlink_to("w.data")
    load_model(with_location(tmp_path, "link.data"))


def test_external_data_shorter_than_declared(tmp_path: Path) -> None:
    path = save_external(make_model(), tmp_path / "m.onnx")
    os.truncate(tmp_path / "w.data", 3000)
    message = bad_model_message(path)
    assert "has 3000 bytes, fewer than the 4000 declared" in message


@pytest.mark.parametrize(("extra", "reason"), [({"offset": "x"}, "non-integer"), ({"length": "-1"}, "negative")])
def test_malformed_offset_or_length(tmp_path: Path, extra: dict[str, str], reason: str) -> None:
    assert reason in bad_model_message(with_location(tmp_path, "w.data", **extra))


# --- external_data_files / read_tensor ---------------------------------------------------


def test_external_data_files_walks_subgraphs_and_constants() -> None:
    def external(name: str, location: str) -> TensorProto:
        tensor = numpy_helper.from_array(np.zeros(2, np.float32), name)
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value=location)
        return tensor

    inner = helper.make_graph([helper.make_node("Constant", [], ["c"], value=external("c", "const.data"))],
                              "inner", [], [helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
                              [external("i", "inner.data")])
    loop_body = helper.make_graph([helper.make_node("If", ["cond"], ["c"], then_branch=inner, else_branch=inner)],
                                  "body", [], [])
    model = make_model()
    model.graph.node.append(helper.make_node("Loop", ["", "cond"], [], body=loop_body))
    assert external_data_files(model) == {"const.data", "inner.data"}


def test_read_tensor_external_and_inline(tmp_path: Path) -> None:
    path = save_external(make_model(), tmp_path / "m.onnx")
    model = load_model(path)
    scales = next(t for t in model.graph.initializer if t.name == "scales")
    np.testing.assert_array_equal(read_tensor(model, scales, model_dir(path)), SCALES)
    assert model_io._is_external(scales)  # the model itself is untouched
    inline = make_model()
    np.testing.assert_array_equal(read_tensor(inline, inline.graph.initializer[0], tmp_path), WEIGHTS)


def test_read_tensor_refuses_escaping_location(tmp_path: Path) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    weight = model.graph.initializer[0]
    next(e for e in weight.external_data if e.key == "location").value = "../w.data"
    with pytest.raises(BadModelError, match="outside the model directory"):
        read_tensor(model, weight, tmp_path)


def test_read_tensor_with_wrong_length_is_bad_model(tmp_path: Path) -> None:
    model = load_model(with_location(tmp_path, "w.data", length="8"))
    with pytest.raises(BadModelError, match="cannot be decoded"):
        read_tensor(model, model.graph.initializer[0], tmp_path)


# --- saving --------------------------------------------------------------------------------


def test_save_inline_round_trip(tmp_path: Path) -> None:
    model = make_model()
    save_model(model, tmp_path / "out.onnx")
    # Streamed writing produces exactly protobuf's own encoding.
    assert (tmp_path / "out.onnx").read_bytes() == model.SerializeToString()
    assert load_model(tmp_path / "out.onnx") == model
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx"]


def test_save_external_to_other_directory(tmp_path: Path, expected: np.ndarray) -> None:
    source = tmp_path / "src"
    source.mkdir()
    model = load_model(save_external(make_model(), source / "m.onnx", size_threshold=RUNNABLE))
    before = model.SerializeToString()
    (tmp_path / "dst").mkdir()
    out = tmp_path / "dst" / "out.onnx"
    save_model(model, out, source_dir=source)
    assert model.SerializeToString() == before  # caller's model not modified
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.onnx", "out.onnx.data"]
    assert (out.parent / "out.onnx.data").read_bytes() == (source / "w.data").read_bytes()
    assert external_data_files(load_model(out)) == {"out.onnx.data"}
    np.testing.assert_array_equal(run(out), expected)
    np.testing.assert_array_equal(run(source / "m.onnx"), expected)


def test_save_external_same_directory_new_name(tmp_path: Path, expected: np.ndarray) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx", size_threshold=RUNNABLE))
    save_model(model, tmp_path / "fixed.onnx", source_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.onnx", "fixed.onnx.data", "m.onnx", "w.data"]
    np.testing.assert_array_equal(run(tmp_path / "fixed.onnx"), expected)
    np.testing.assert_array_equal(run(tmp_path / "m.onnx"), expected)


def test_save_in_place_does_not_copy_data(tmp_path: Path, expected: np.ndarray) -> None:
    path = save_external(make_model(), tmp_path / "m.onnx", location="m.onnx.data", size_threshold=RUNNABLE)
    inode = os.stat(tmp_path / "m.onnx.data").st_ino
    save_model(load_model(path), path, source_dir=tmp_path)
    assert os.stat(tmp_path / "m.onnx.data").st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    np.testing.assert_array_equal(run(path), expected)


def test_save_several_data_files(tmp_path: Path, expected: np.ndarray) -> None:
    model = make_model()
    for tensor, location in zip(model.graph.initializer, ("w.data", "b.data")):
        onnx.external_data_helper.set_external_data(tensor, location)
    onnx.save(model, tmp_path / "m.onnx")
    model = load_model(tmp_path / "m.onnx")
    assert external_data_files(model) == {"w.data", "b.data"}
    (tmp_path / "out").mkdir()
    save_model(model, tmp_path / "out" / "o.onnx", source_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["o.onnx", "o.onnx.0.data", "o.onnx.1.data"]
    np.testing.assert_array_equal(run(tmp_path / "out" / "o.onnx"), expected)


def test_save_without_source_dir_refuses_external_model(tmp_path: Path) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    with pytest.raises(UsageError, match="no source directory"):
        save_model(model, tmp_path / "out.onnx")


def test_oversized_model_moves_largest_initializer_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: np.ndarray
) -> None:
    monkeypatch.setattr(model_io, "_PROTO_LIMIT", 2000)
    model = make_model()
    save_model(model, tmp_path / "out.onnx")
    assert all(not model_io._is_external(t) for t in model.graph.initializer)  # caller's model untouched
    saved = load_model(tmp_path / "out.onnx")
    assert locations(saved) == {
        "W": {"location": "out.onnx.data", "offset": "0", "length": "4000"}, "B": {}, "scales": {}}
    assert (tmp_path / "out.onnx").stat().st_size <= 2000
    np.testing.assert_array_equal(run(tmp_path / "out.onnx"), expected)


def test_oversized_model_appends_after_copied_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expected: np.ndarray
) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx", "m.onnx.data", RUNNABLE))
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(600, np.float32), "pad"))
    model.graph.input.append(helper.make_tensor_value_info("pad", TensorProto.FLOAT, [600]))
    monkeypatch.setattr(model_io, "_PROTO_LIMIT", 1500)
    inode = os.stat(tmp_path / "m.onnx.data").st_ino
    save_model(model, tmp_path / "m.onnx", source_dir=tmp_path)
    data = tmp_path / "m.onnx.data"
    assert os.stat(data).st_ino != inode  # appended to a fresh copy, not the live file
    assert data.stat().st_size == model_io._ALIGNMENT + 2400
    assert locations(load_model(tmp_path / "m.onnx"))["pad"] == {
        "location": "m.onnx.data", "offset": str(model_io._ALIGNMENT), "length": "2400"}
    np.testing.assert_array_equal(run(tmp_path / "m.onnx"), expected)


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_save_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "o.onnx"
    out.write_bytes(b"previous")

    def fail_midway(f, pieces) -> None:  # noqa: ANN001
        f.write(b"partial")
        raise error

    monkeypatch.setattr(model_io, "_write_pieces", fail_midway)
    with pytest.raises(type(error)):
        save_model(model, out, source_dir=tmp_path)
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.onnx"]
    assert out.read_bytes() == b"previous"
    assert locations(model)["W"]["location"] == "w.data"  # restored


def test_failed_data_copy_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(save_external(make_model(), tmp_path / "m.onnx"))
    (tmp_path / "out").mkdir()

    def disk_full(src, dst) -> None:  # noqa: ANN001
        Path(dst).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(UsageError, match="o.onnx: no space left on device$"):
        save_model(model, tmp_path / "out" / "o.onnx", source_dir=tmp_path)
    assert list((tmp_path / "out").iterdir()) == []


def test_save_to_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        save_model(make_model(), tmp_path / "nope" / "o.onnx")
    assert str(info.value) == f"cannot write {tmp_path / 'nope' / 'o.onnx'}: directory does not exist"


def test_save_onto_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        save_model(make_model(), tmp_path)


def test_save_to_read_only_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() == 0:  # root ignores permissions: simulate the refusal instead
        def refuse(src, dst) -> None:  # noqa: ANN001
            raise PermissionError(13, "Permission denied", dst)

        monkeypatch.setattr(os, "replace", refuse)
    else:
        tmp_path.chmod(0o500)
    try:
        with pytest.raises(UsageError) as info:
            save_model(make_model(), tmp_path / "o.onnx")
    finally:
        tmp_path.chmod(0o700)
    assert str(info.value) == f"cannot write {tmp_path / 'o.onnx'}: permission denied"
    assert list(tmp_path.iterdir()) == []


def test_saved_file_gets_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        save_model(make_model(), tmp_path / "o.onnx")
    finally:
        os.umask(old)
    assert (tmp_path / "o.onnx").stat().st_mode & 0o777 == 0o644


# --- lazy loading of big inline models ---------------------------------------------------


def _conv_model_with_weights(path, channels: int = 64) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32)
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    graph = onnx.helper.make_graph(
        [node], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, channels, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return model


def test_big_inline_model_loads_lazily_and_saves_inline(tmp_path, monkeypatch) -> None:
    import onnxruntime as ort

    from rewriter import model_io

    monkeypatch.setattr(model_io, "_LAZY_FILE", 1024)
    monkeypatch.setattr(model_io, "_LAZY_TENSOR", 1024)
    src = tmp_path / "big.onnx"
    original = _conv_model_with_weights(src)
    lazy = model_io.load_model(src)
    (w,) = lazy.graph.initializer
    assert w.data_location == onnx.TensorProto.EXTERNAL and not w.raw_data, "payload left on disk"
    assert np.array_equal(model_io.read_tensor(lazy, w, tmp_path), onnx.numpy_helper.to_array(original.graph.initializer[0]))
    out = tmp_path / "out.onnx"
    model_io.save_model(lazy, out, source_dir=tmp_path)
    saved = onnx.load(str(out))
    assert saved.graph.initializer[0].data_location == onnx.TensorProto.DEFAULT
    assert np.array_equal(onnx.numpy_helper.to_array(saved.graph.initializer[0]), onnx.numpy_helper.to_array(original.graph.initializer[0]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "out.onnx"], "no data file for an inline model"
    x = np.ones((1, 64, 4, 4), dtype=np.float32)
    assert np.array_equal(ort.InferenceSession(str(src)).run(None, {"x": x})[0], ort.InferenceSession(str(out)).run(None, {"x": x})[0])
    # Overwriting the source in place streams from it before the rename.
    model_io.save_model(lazy, src, source_dir=tmp_path)
    assert np.array_equal(onnx.numpy_helper.to_array(onnx.load(str(src)).graph.initializer[0]), onnx.numpy_helper.to_array(original.graph.initializer[0]))


def test_lazy_scan_of_garbage_falls_back_to_a_clean_error(tmp_path, monkeypatch) -> None:
    from rewriter import model_io

    monkeypatch.setattr(model_io, "_LAZY_FILE", 16)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x3a\xff\xff\xff\xff\x0f" + b"x" * 64)
    with pytest.raises(BadModelError):
        model_io.load_model(bad)
