#!/usr/bin/env bash
# Creates one virtual environment per runtime (their pins clash) plus the driver's, under
# $RUNTIMES_VENV_DIR (default: .venv-runtimes/ at the repository root, which ignores itself).
#
#   tests/runtimes/setup_envs.sh              # every environment
#   tests/runtimes/setup_envs.sh ncnn mnn     # only these
#
# Environments: driver (onnx + onnxruntime + this project), openvino, tract, torch (pnnx/ncnn and onnx2torch),
# mnn, onnx2tf, rknn. Each one is built in <dir>/<name>.tmp and renamed when complete, so a failed or
# interrupted install never leaves a half environment behind; its log is <dir>/<name>.log.
# An environment that fails is reported at the end; the measurement driver skips its runtimes visibly.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
DIR="${RUNTIMES_VENV_DIR:-$REPO/.venv-runtimes}"
PYTHON="${PYTHON:-python3}"
JOBS="${RUNTIMES_SETUP_JOBS:-2}"
mkdir -p "$DIR"
[ -f "$DIR/.gitignore" ] || printf '*\n' > "$DIR/.gitignore"

# Versions measured to work together (Python 3.11, Linux x86-64).
TORCH=torch==2.13.0            # CPU build; installed before pnnx / rknn so they do not pull a CUDA build
NUMPY2=numpy==2.4.6
PIP_QUIET=(--quiet --disable-pip-version-check --no-input)

env_driver() {
  pip install "${PIP_QUIET[@]}" onnx==1.23.2 onnxruntime==1.31.1 "$NUMPY2" pytest &&
  pip install "${PIP_QUIET[@]}" -e "$REPO"
}
env_openvino() { pip install "${PIP_QUIET[@]}" openvino==2026.4.1 "$NUMPY2"; }
env_tract() { pip install "${PIP_QUIET[@]}" tract==0.23.9 "$NUMPY2"; }
env_torch() {
  pip install "${PIP_QUIET[@]}" "$TORCH" &&
  pip install "${PIP_QUIET[@]}" "$TORCH" pnnx==20261020 ncnn==1.0.20261020 onnx2torch==1.5.15 onnx==1.23.2 "$NUMPY2" &&
  # onnx2torch pulls torchvision, whose wheel for torch 2.13 is a CUDA build that cannot load with the CPU torch;
  # only its NMS / RoiAlign converters use it (runners/torch.py stands in for it)
  pip uninstall --quiet -y torchvision
}
env_mnn() {
  # MNN's wheel pulls aliyun-log-python-sdk (protobuf < 6): harmless here, nothing else in this environment
  # reads protobuf. The runner calls the converter module directly (the `mnnconvert` wrapper would run
  # `pip install -U aliyun-log-python-sdk` and send telemetry).
  pip install "${PIP_QUIET[@]}" MNN==3.6.1 "$NUMPY2"
}
env_onnx2tf() {
  # onnx2tf 1.29.24 is the newest that installs for Python 3.11; its own pins (TF 2.19, onnx 1.19).
  pip install "${PIP_QUIET[@]}" onnx2tf==1.29.24 tensorflow==2.19.0 tf-keras==2.19.0 ai-edge-litert==2.1.0 \
      onnx==1.19.1 onnxruntime==1.23.0 onnx-graphsurgeon sng4onnx simple-onnx-processing-tools \
      onnxsim==0.4.36 psutil "protobuf<6" h5py "numpy<2.2"
}
env_rknn() {
  # rknn-toolkit2 pins old numpy/onnx/protobuf and imports torch at import time; its own torch<=2.4 pin is
  # replaced by the local CPU build; pkg_resources needs setuptools < 81.
  pip install "${PIP_QUIET[@]}" "$TORCH" "setuptools<81" &&
  pip install "${PIP_QUIET[@]}" --no-deps rknn-toolkit2==2.5.0 &&
  pip install "${PIP_QUIET[@]}" "$TORCH" "setuptools<81" numpy==1.26.4 onnx==1.18.0 protobuf==4.25.4 \
      onnxruntime==1.18.0 psutil ruamel.yaml scipy tqdm opencv-python-headless==4.10.0.84 fast-histogram
}

build() {
  local name="$1" start end
  local tmp="$DIR/$name.tmp" log="$DIR/$name.log"
  start=$(date +%s)
  rm -rf "$tmp"
  {
    echo "== $name: $(date -u +%FT%TZ)"
    "$PYTHON" -m venv "$tmp" && source "$tmp/bin/activate" && pip install "${PIP_QUIET[@]}" --upgrade pip &&
      "env_$name" && pip freeze > "$tmp/freeze.txt"
  } > "$log" 2>&1
  local rc=$?
  end=$(date +%s)
  if [ $rc -eq 0 ]; then
    rm -rf "$DIR/$name" && mv "$tmp" "$DIR/$name"
    # venvs hard-code their path in scripts; fix the shebangs/activate after the rename
    grep -rlI --exclude-dir=lib "$tmp" "$DIR/$name/bin" 2>/dev/null | xargs -r sed -i "s#$tmp#$DIR/$name#g"
    echo "ok      $name  $((end - start)) s  $(du -sh "$DIR/$name" | cut -f1)" | tee -a "$DIR/status.txt"
  else
    rm -rf "$tmp"
    echo "FAILED  $name  $((end - start)) s  (see $log: $(tail -n 3 "$log" | tr '\n' ' ' | cut -c1-300))" | tee -a "$DIR/status.txt"
  fi
}

NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(driver openvino tract torch mnn onnx2tf rknn)
running=0
for n in "${NAMES[@]}"; do
  declare -F "env_$n" > /dev/null || { echo "unknown environment: $n" >&2; exit 2; }
  build "$n" &
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "environments in $DIR:"; ls "$DIR"
