# All set-up happens here, so `make demo` and `make test` each work alone from a fresh clone.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The CPU wheel first: a plain `torch` requirement would resolve to a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup setup-ray demo test test-ray bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The ray extra (sysgym's Ray launcher, vec_env=ray, optimize_on_ray): not in the default set-up.
setup-ray: $(VENV)/.installed-ray

$(VENV)/.installed-ray: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,ray]"
	touch $@

demo: setup
	$(BIN)/sysgym demo

test: setup
	$(BIN)/python -m pytest -q

# A real two-node Ray cluster on 127.0.0.1 (tests/cluster; about 3 minutes on 2 cores).
test-ray: setup-ray
	$(BIN)/python -m pytest -q -m ray tests/cluster

bench: setup
	for f in benchmarks/*_bench.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
