# Two entry points for a fresh machine (Python >= 3.10): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAMPLE := models/cnn_unet_ts17.onnx

.PHONY: demo test bench fuzz-long clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	mkdir -p build/demo
	touch $@

# The report test renders the HTML in headless Chromium (Debian's package); without it that test is skipped visibly.
# The light runtimes (OpenVINO, tract: seconds to install) get their environments too, so every test run proves their
# targets on the real runtime (tests/runtimes/test_runtimes.py); the others are `make test-runtimes`.
$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	RUNTIMES_VENV_DIR=$(RUNTIMES_VENV_DIR) bash tests/runtimes/setup_envs.sh openvino tract || echo "a runtime environment could not be installed: its tests will be skipped"
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium could not be installed: the report rendering test will be skipped"
	touch $@

demo: $(VENV)/.installed-demo
	$(BIN)/rewriter inspect $(SAMPLE)
	$(BIN)/rewriter fix-resize $(SAMPLE) --target caffe -o build/demo/unet.caffe-ready.onnx
	$(BIN)/rewriter check --target caffe build/demo/unet.caffe-ready.onnx

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 -q

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

# Not part of `make test`: minutes, several GB of disk for the synthetic models.
bench: $(VENV)/.installed-bench
	$(BIN)/python bench/bench_passes.py
	$(BIN)/python bench/bench_lowering.py
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_native_rate.py --step 8

fuzz-long: $(VENV)/.installed-test
	REWRITER_FUZZ_CASES=10000 REWRITER_FUZZ_SEED=1 $(BIN)/python -m pytest tests/test_fuzz.py -n 2 -q

clean:
	rm -rf $(VENV) build *.egg-info

# Real-runtime measurements (tests/runtimes/): one virtual environment per runtime under RUNTIMES_VENV_DIR,
# then every grid model and its rewritten forms through every runtime, compared with ONNX Runtime.
RUNTIMES_VENV_DIR ?= $(CURDIR)/.venv-runtimes
RUNTIMES_RESULTS ?= build/runtimes
RUNTIMES ?= ncnn,tflite,rknn,torch,mnn,openvino,tract

.PHONY: runtimes-env runtimes-measure

runtimes-env:
	RUNTIMES_VENV_DIR=$(RUNTIMES_VENV_DIR) bash tests/runtimes/setup_envs.sh

runtimes-measure:
	RUNTIMES_VENV_DIR=$(RUNTIMES_VENV_DIR) $(RUNTIMES_VENV_DIR)/driver/bin/python tests/runtimes/measure.py --out $(RUNTIMES_RESULTS) --runtimes $(RUNTIMES)

# The runtime targets on their real runtimes: every grid model through `fix-resize --target <runtime>`, then through
# that runtime, compared with ONNX Runtime on the original; fails if any fixed model is not exact. Runtimes whose
# environment is missing are skipped and listed as skipped (all of them without the driver environment).
TARGET_RUNTIMES ?= openvino,tract,mnn,rknn,ncnn,torch,tflite

.PHONY: test-runtimes

test-runtimes:
	@if [ ! -x $(RUNTIMES_VENV_DIR)/driver/bin/python ]; then \
		echo "SKIPPED test-runtimes: no driver environment in $(RUNTIMES_VENV_DIR) (make runtimes-env)"; exit 0; fi; \
	mkdir -p $(RUNTIMES_RESULTS)-targets && \
	RUNTIMES_VENV_DIR=$(RUNTIMES_VENV_DIR) $(RUNTIMES_VENV_DIR)/driver/bin/python tests/runtimes/measure.py \
		--out $(RUNTIMES_RESULTS)-targets --runtimes $(TARGET_RUNTIMES) --timeout 300 \
		--forms $$(echo $(TARGET_RUNTIMES) | sed 's/[^,]*/fix-&/g') > $(RUNTIMES_RESULTS)-targets/measure.log && \
	$(RUNTIMES_VENV_DIR)/driver/bin/python tests/runtimes/check_targets.py $(RUNTIMES_RESULTS)-targets/results.json

# The architecture corpus (models/architectures/) on the same runtimes: every model as it is and as
# `fix-resize --target <runtime>` writes it, every output compared with ONNX Runtime on the original. A fixed model
# that differs has each of its Resize nodes checked on the runtime's own input of it (--taps); fails if one differs
# there (the rest of a network may round differently on another runtime: the summary lists those errors).
.PHONY: test-runtimes-corpus

test-runtimes-corpus:
	@if [ ! -x $(RUNTIMES_VENV_DIR)/driver/bin/python ]; then \
		echo "SKIPPED test-runtimes-corpus: no driver environment in $(RUNTIMES_VENV_DIR) (make runtimes-env)"; exit 0; fi; \
	mkdir -p $(RUNTIMES_RESULTS)-corpus && \
	RUNTIMES_VENV_DIR=$(RUNTIMES_VENV_DIR) $(RUNTIMES_VENV_DIR)/driver/bin/python tests/runtimes/measure_corpus.py \
		--out $(RUNTIMES_RESULTS)-corpus --runtimes $(TARGET_RUNTIMES) --timeout 300 --taps \
		> $(RUNTIMES_RESULTS)-corpus/measure.log; status=$$?; \
	cat $(RUNTIMES_RESULTS)-corpus/summary.md; exit $$status
