# kws: two set-up commands, `make demo` and `make test`. Both create .venv and install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DEMO_DATA ?= data/synth
DEMO_RUN ?= runs/demo
DEMO_SPEAKERS ?= 250
# embedding (frozen pretrained speech_embedding + a small head) generalises to unheard voices far better than compact
# (a CNN from scratch, for microcontroller-class targets); README "Which model" has the measurements.
DEMO_MODEL ?= embedding
DEMO_EPOCHS ?= 30
DEMO_REPORT ?= reports/demo/report.html
DEMO_STREAM_MINUTES ?= 5
NB_RUN ?= runs/notebooks
NB_HTML ?= reports/notebooks
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export TOKENIZERS_PARALLELISM ?= false
# A local wheel folder (this machine's CPU torch) is used when it exists.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: install sysdeps demo-data demo notebooks test lint lab app clean help

help:
	@echo "make demo   - install, synthesize $(DEMO_DATA), train the $(DEMO_MODEL) model into $(DEMO_RUN), evaluate it, write $(DEMO_REPORT)"
	@echo "make test   - install, lint (ruff) and run the test suite"
	@echo "make notebooks - run the five notebooks headless (papermill), HTML under $(NB_HTML)/"
	@echo "make lab    - JupyterLab on notebooks/"
	@echo "make app    - the Gradio app on http://127.0.0.1:7860"

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# CPU torch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install -q $(FIND_LINKS) torch==2.13.0
	$(BIN)/pip install -q $(FIND_LINKS) -c constraints.txt -e ".[dev]"
	@# The embedding model's pretrained front end (two Apache-2.0 ONNX files from the openwakeword 0.4.0 wheel on PyPI).
	$(BIN)/python -c "from kwslib.models.embedding import frontend_files; frontend_files()"
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

sysdeps:
	@bash scripts/system-deps.sh

demo-data: install sysdeps
	@# The dataset is made once (a complete one has synth.json with "complete": true).
	@$(BIN)/python -c "import json,sys; sys.exit(0 if json.load(open('$(DEMO_DATA)/synth.json')).get('complete') else 1)" 2>/dev/null \
	  || $(BIN)/kws synth --out $(DEMO_DATA) --speakers $(DEMO_SPEAKERS) --overwrite

demo: demo-data
	@# The run is made afresh.
	$(BIN)/kws data-info $(DEMO_DATA) --protocol sc12
	rm -rf $(DEMO_RUN)
	$(BIN)/kws train --data $(DEMO_DATA) --protocol sc12 --model $(DEMO_MODEL) --out $(DEMO_RUN) --epochs $(DEMO_EPOCHS) --early-stopping-patience 10
	$(BIN)/kws export --model $(DEMO_RUN)/model --out $(DEMO_RUN)/model.onnx --quantize int8 --data $(DEMO_DATA)
	$(BIN)/kws predict --model $(DEMO_RUN)/model.onnx $(DEMO_DATA)/yes/$$(ls $(DEMO_DATA)/yes | head -1) $(DEMO_DATA)/stop/$$(ls $(DEMO_DATA)/stop | head -1) --top-k 3
	$(BIN)/kws evaluate --model $(DEMO_RUN)/model --data $(DEMO_DATA) --out $(DEMO_RUN) --no-report --quiet
	$(BIN)/kws stream-eval --model $(DEMO_RUN)/model --data $(DEMO_DATA) --minutes $(DEMO_STREAM_MINUTES) --out $(DEMO_RUN) --quiet
	$(BIN)/kws report $(DEMO_RUN)/metrics.json --out $(DEMO_REPORT)

lint: install
	$(BIN)/ruff check kwslib tests benchmarks app.py
	$(BIN)/ruff format --check kwslib tests benchmarks app.py

test: install sysdeps lint
	$(BIN)/python -m pytest -q

# The five notebooks, chained through their parameters (02's run feeds 03-05; 05 runs in dry_run mode against
# moto), executed headless and exported as HTML.
notebooks: demo-data
	@mkdir -p $(NB_RUN) $(NB_HTML)
	$(BIN)/papermill --no-progress-bar notebooks/01_data_exploration.ipynb $(NB_RUN)/01_data_exploration.ipynb -p data $(DEMO_DATA) -p out $(NB_RUN)/01
	$(BIN)/papermill --no-progress-bar notebooks/02_finetune.ipynb $(NB_RUN)/02_finetune.ipynb -p data $(DEMO_DATA) -p out $(NB_RUN)/02
	$(BIN)/papermill --no-progress-bar notebooks/03_evaluate.ipynb $(NB_RUN)/03_evaluate.ipynb -p model $(NB_RUN)/02/model -p data $(DEMO_DATA) -p out $(NB_RUN)/03
	$(BIN)/papermill --no-progress-bar notebooks/04_export_onnx.ipynb $(NB_RUN)/04_export_onnx.ipynb -p model $(NB_RUN)/02/model -p data $(DEMO_DATA) -p out $(NB_RUN)/04
	$(BIN)/papermill --no-progress-bar notebooks/05_sagemaker_deploy.ipynb $(NB_RUN)/05_sagemaker_deploy.ipynb -p model $(NB_RUN)/02/model -p out $(NB_RUN)/05
	$(BIN)/jupyter nbconvert --to html --output-dir $(NB_HTML) $(NB_RUN)/0*.ipynb
	@echo "notebooks: $(NB_HTML)/"

lab: install
	$(BIN)/pip install -q -c constraints.txt jupyterlab==4.6.6
	$(BIN)/jupyter lab notebooks/

app: install
	$(BIN)/python app.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
