# `make demo` and `make test` create or reuse .venv, install graphc editable, and run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench fuzz clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,demo,dist]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/mlp_digits.py

# MXNet 1.9.1, the oracle of the differential tests, in its own cached venv (the one `make bench`
# uses); best effort: without it those tests skip and the rest still run
ORACLE := bench/.venvs/mxnet/.bench_stamp

$(ORACLE): | $(STAMP)
	-$(BIN)/python bench/setup_envs.py --systems mxnet

# the tests marked slow (whole model zoos through ONNX, the full host-step census, big
# partitioned nets...) run in `make test-all`, not in `make test`, which must stay well under
# 10 minutes on 2 cores
test: $(STAMP) $(ORACLE)
	$(BIN)/pytest -q -n 2 -m "not slow" tests

test-all: $(STAMP) $(ORACLE)
	$(BIN)/pytest -q -n 2 tests

bench: $(STAMP)
	$(BIN)/python bench/run.py

# Fuzz the model-file loaders for FUZZ_SECONDS (not part of `make test`); failing cases are
# kept and listed. FUZZ_ARGS passes more options (e.g. --out DIR --verbose).
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/fuzz_loaders.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
