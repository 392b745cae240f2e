# synthguard: `make repro` runs the pipeline, `make test` runs every test.
# Both create .venv and install the pinned stack first (CPU-only torch, no CUDA wheels).

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
PIP    := $(BIN)/python -m pip
RUN    := PATH="$(BIN):$$PATH"
MLFLOW_PORT ?= 5000

# Offline and telemetry-free wherever the project runs.
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_EVALUATE_OFFLINE := 1
export SYNTHGUARD_SAMPLE_DIR ?= $(abspath $(CURDIR)/../shared/data/amazon_reviews_2023)

.PHONY: install install-dev chromium models repro repro-sample sweep-sample sweep-recipe-sample frontier exp plots test ui bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes first, alone, so that no later resolution can pull a CUDA build.
$(VENV)/.installed: pyproject.toml requirements.lock | $(BIN)/python
	$(PIP) install --quiet -c requirements.lock torch==2.13.0
	$(PIP) install --quiet -c requirements.lock -e .
	@! $(PIP) list 2>/dev/null | grep -qi '^nvidia-' || (echo "error: CUDA wheels were installed; torch must be the CPU build" >&2; exit 1)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install --quiet -c requirements.lock -e ".[dev]"
	touch $@

# vega, vega-lite and vega-embed from npm (pinned by vendor/vega/package-lock.json), inlined
# into the HTML template that .dvc/config gives `dvc plots`, so plot pages draw offline.
VEGA := vendor/vega
PLOTS_TEMPLATE := $(VEGA)/offline.html

$(VEGA)/node_modules/.package-lock.json: $(VEGA)/package.json $(VEGA)/package-lock.json
	cd $(VEGA) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

$(PLOTS_TEMPLATE): $(VEGA)/node_modules/.package-lock.json stages/plots_template.py | $(VENV)/.installed
	$(RUN) python -m stages.plots_template --node-modules $(VEGA)/node_modules --output $@

# Debian's Chromium for the browser tests; skipped when it is already there.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

install: $(VENV)/.installed $(PLOTS_TEMPLATE)
install-dev: $(VENV)/.installed-dev $(PLOTS_TEMPLATE) chromium

models: install
	$(RUN) python -m stages.base_models --models-dir models/base

repro: install models
	$(RUN) dvc repro

# Offline: the pipeline on the shared Electronics sample (it has no metadata file), run as
# a DVC experiment; this rewrites extract.reviews and extract.meta in params.yaml.
SAMPLE_PARAMS := -S "extract.reviews=$(SYNTHGUARD_SAMPLE_DIR)/Electronics.10k.jsonl.gz" -S extract.meta=null

repro-sample: install models
	$(RUN) dvc exp run $(SAMPLE_PARAMS)

# The privacy-utility sweep on the sample: three DP-SGD targets (each with the DP selection of drafts),
# the non-private baseline, the zero-shot reference (no fine-tuning, no selection: no private text read)
# and zero-shot drafts chosen by the DP selection, one after another by DVC's queue, then the frontier.
sweep-sample: install models
	$(RUN) dvc exp run --queue $(SAMPLE_PARAMS) -S synthesize.dp.target_epsilon=1,4,7
	$(RUN) dvc exp run --queue $(SAMPLE_PARAMS) -S synthesize.dp.enabled=false
	$(RUN) dvc exp run --queue $(SAMPLE_PARAMS) -S synthesize.generator.epochs=0 -S synthesize.selection.enabled=false
	$(RUN) dvc exp run --queue $(SAMPLE_PARAMS) -S synthesize.generator.epochs=0
	$(RUN) dvc queue start --jobs 1
	@while $(RUN) dvc queue status | grep -qE 'Queued|Running'; do sleep 60; done
	$(RUN) dvc queue status
	$(RUN) python -m stages.evaluate frontier

# The DP recipe sweep on the sample (issue 10): learning rate x epochs at the default epsilon 8, each
# a whole-pipeline experiment (the attacks can change with the recipe too), then their headline.
RECIPE_LR     ?= 0.005,0.02
RECIPE_EPOCHS ?= 1,4
sweep-recipe-sample: install models
	$(RUN) dvc exp run --queue $(SAMPLE_PARAMS) -S synthesize.generator.learning_rate=$(RECIPE_LR) \
		-S synthesize.generator.epochs=$(RECIPE_EPOCHS)
	$(RUN) dvc queue start --jobs 1
	@while $(RUN) dvc queue status | grep -qE 'Queued|Running'; do sleep 60; done
	$(RUN) dvc queue status
	$(MAKE) exp

frontier: install
	$(RUN) python -m stages.evaluate frontier

# The headline of every experiment: the decision figures (stages/headline.py) and the params a
# sweep varies. `dvc exp show` has them first too, followed by every other column.
exp: install
	$(RUN) dvc exp show --drop '.*' --keep "$$($(RUN) python -m stages.headline --keep-regex)" $(EXP_ARGS)

# Plot pages that draw offline (the template comes from .dvc/config): `make plots` for the
# workspace, `make plots PLOTS_REVS="exp-a exp-b"` to compare experiments or revisions.
plots: install
	$(RUN) $(if $(PLOTS_REVS),dvc plots diff $(PLOTS_REVS),dvc plots show)

test: install-dev
	$(RUN) python -m pytest

# Every benchmark, with the settings whose figures the README shows.
BENCH_TMP ?= $(CURDIR)/.dvc/tmp/bench
bench: install models
	$(RUN) python benchmarks/bench_extract.py
	$(RUN) python benchmarks/bench_anonymize.py --sample "$(SYNTHGUARD_SAMPLE_DIR)"
	$(RUN) python benchmarks/bench_synthesize.py --steps 3 --gen-prompts 8 --gen-batches 8 --gen-tokens 32
	$(RUN) python benchmarks/bench_train.py --rows 192 --test-rows 256
	$(RUN) python -m stages.extract --no-mlflow --reviews "$(SYNTHGUARD_SAMPLE_DIR)/Electronics.10k.jsonl.gz" \
		--meta "$(SYNTHGUARD_SAMPLE_DIR)/multi_category.2.7k.meta.jsonl.gz" --out-dir "$(BENCH_TMP)/extracted" \
		--rejects "$(BENCH_TMP)/extracted/rejects.jsonl" --metrics "$(BENCH_TMP)/extract.json"
	$(RUN) python benchmarks/bench_evaluate.py --extracted "$(BENCH_TMP)/extracted"

# MLflow 3.17's UI opens in its GenAI mode until a user picks "Model training" once (it keeps
# that choice per browser); the printed link opens the experiment's runs in that mode directly.
ui: install
	@$(RUN) python -c "import sqlite3; e = sqlite3.connect('file:mlflow.db?mode=ro', uri=True).execute(\"select experiment_id from experiments where name = 'synthguard'\").fetchone(); print('open http://127.0.0.1:$(MLFLOW_PORT)/#/experiments' + (f'/{e[0]}' if e else '') + '?workflowType=machine_learning')" 2>/dev/null || true
	$(RUN) mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/mlflow.db" \
		--default-artifact-root "$(CURDIR)/mlartifacts" --host 127.0.0.1 --port $(MLFLOW_PORT)

lock: install-dev
	$(PIP) freeze --exclude-editable | grep -v '^synthguard' > requirements.lock.new
	(sed -n '1,2p' requirements.lock; cat requirements.lock.new) > requirements.lock.tmp
	mv requirements.lock.tmp requirements.lock; rm requirements.lock.new

clean:
	rm -rf $(VENV) .pytest_cache
