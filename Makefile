# The two commands a new user needs: `make search` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed      # what running a search needs
DEV    := $(VENV)/.installed-dev  # and the tests, lint, PostgreSQL, Ray, the browser test
SPACE  ?= spaces/default.yaml
PORT   ?= 5000
STORE  := sqlite:///$(CURDIR)/mlruns/mlflow.db

.PHONY: install search test ui lint bench clean reproduce

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(DEV)

install: $(STAMP)

search: $(STAMP)
	$(BIN)/search run $(SPACE) $(ARGS)

test: $(DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

ui: $(STAMP)
	@echo "MLflow UI, training view: http://127.0.0.1:$(PORT)/#/experiments?workflowType=machine_learning"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui \
		--backend-store-uri $(STORE) --host 127.0.0.1 --port $(PORT) --workers 1

reproduce: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make reproduce RUN=<mlflow run id>"; exit 2; }
	$(BIN)/search reproduce $(RUN)

BENCH_SIZE ?= smoke
BENCH_SEEDS ?= 1 2 3
bench: $(DEV)
	bash .ci/postgres.sh > /dev/null 2>&1 && PG=--postgres=$$(bash .ci/postgres.sh) || PG=; \
	$(BIN)/python bench/coordination.py $$PG > bench/coordination.md
	$(BIN)/python bench/memory.py > bench/memory.md
	$(BIN)/python bench/peers.py --size $(BENCH_SIZE) --seeds $(BENCH_SEEDS) --out bench/peers.md
	KERAS_BACKEND=jax $(BIN)/python bench/peers.py --size $(BENCH_SIZE) --out bench/peers_jax.md
	{ echo; echo "This run of \`make bench\`: $$($(BIN)/python bench/overhead.py | tail -1)."; \
	  echo; } > bench/overhead_now.md
	{ echo "## XLA compilations of a JAX search ($$(date +%F), \`bench/compiles.py\`)"; echo; \
	  KERAS_BACKEND=jax $(BIN)/python bench/compiles.py 2>/dev/null; echo; } > bench/compiles.md
	{ echo "## Fixed cost of one model ($$(date +%F), \`bench/model_cost.py\`)"; echo; \
	  $(BIN)/python bench/model_cost.py; echo; \
	  KERAS_BACKEND=jax $(BIN)/python bench/model_cost.py; } > bench/model_cost.md
	{ echo "## Pack engine, this run of \`make bench\`"; echo; \
	  $(BIN)/python bench/pack.py --seeds $(BENCH_SEEDS); echo; \
	  $(BIN)/python bench/pack.py --limit; echo; $(BIN)/python bench/pack.py --memory 200; \
	  echo; } > bench/pack_now.md
	$(BIN)/python bench/models.py > bench/models.md
	$(BIN)/python bench/knobs.py > bench/knobs.md
	$(BIN)/python bench/tracking.py > bench/tracking_now.md
	{ echo "## The longest silences of a search ($$(date +%F), \`bench/gaps.py\`)"; echo; \
	  $(BIN)/python bench/gaps.py; echo; } > bench/gaps.md
	cat bench/header.md bench/targets.md bench/models.md bench/knobs.md bench/course.md \
		bench/tracking.md bench/pack_engine.md bench/peers.md bench/peers_jax.md bench/peers_full.md bench/overhead.md \
		bench/overhead_now.md bench/coordination.md bench/memory.md bench/model_cost.md bench/compiles.md \
		bench/gpu.md bench/pack_now.md bench/gaps.md > bench/RESULTS.md

lint: $(DEV)
	$(BIN)/ruff check search tests
	$(BIN)/ruff format --check search tests
	$(BIN)/mypy search
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
