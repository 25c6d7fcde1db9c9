# Two entry points for a fresh machine (Python >= 3.10): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := models/cnn_unet_ts17.onnx

.PHONY: demo test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	mkdir -p build/demo
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/rewriter inspect $(SAMPLE)
	$(BIN)/rewriter fix-resize $(SAMPLE) --target caffe -o build/demo/unet.caffe-ready.onnx
	$(BIN)/rewriter check --target caffe build/demo/unet.caffe-ready.onnx

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -q

clean:
	rm -rf $(VENV) build *.egg-info
