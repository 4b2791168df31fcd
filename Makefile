# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_GALLERY := demo-gallery
DEMO_STORE := .lookalike/demo-store
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup model demo test bench clean layers evaluate learning-loop train-default

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned to the CPU wheel on disk; efficientnet-lite-pytorch goes in --no-deps because
# its own requirements would pull a CUDA build of torch.
setup: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[build,demo,test,aws]"
	$(BIN)/pip install --quiet --no-deps efficientnet-lite-pytorch==0.1.0
	$(MAKE) model

model: $(BIN)/python
	$(BIN)/python -m model_export.export_onnx

demo: setup
	$(BIN)/python scripts/demo_gallery.py $(DEMO_GALLERY)
	$(BIN)/lookalike index $(DEMO_GALLERY) --store $(DEMO_STORE) --regions --upgrade
	@echo
	@echo "Lookalike is serving $(DEMO_GALLERY)/ at http://$(HOST):$(PORT)/ (open it in a browser; Ctrl-C stops it). Or try:"
	@echo "  curl -s -F image=@$(DEMO_GALLERY)/mvtb/building2-1.png -F k=5 http://$(HOST):$(PORT)/search"
	@echo "  curl -s -F image=@$(DEMO_GALLERY)/mvtb/building2-1.png -F box=0,0,400,300 http://$(HOST):$(PORT)/search"
	@echo "  $(BIN)/lookalike search $(DEMO_GALLERY)/mvtb/eiffel-1.png --store $(DEMO_STORE) -k 5"
	@echo
	$(BIN)/lookalike serve --store $(DEMO_STORE) --watch $(DEMO_GALLERY) --regions --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/ruff check
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

# The Lambda layer archives (core, deps for manylinux2014_x86_64 / cp311, model) that `pulumi up` deploys.
layers: setup
	$(BIN)/python -m layers.build --out build/layers

# The offline evaluation report (docs/EVALUATION.md, ~35 min on 2 cores, ~18 min more per model):
# make evaluate FINETUNED="seed-0.onnx seed-1.onnx seed-2.onnx"
evaluate: setup
	$(BIN)/python -m lab evaluate $(foreach model,$(FINETUNED),--model-finetuned $(model)) --out docs/EVALUATION.md

# The learning loop end to end (docs/TRAINING.md): simulated users' clicks -> pairs.jsonl -> one
# fine-tuned model per seed -> the evaluation report against the raw backbone and the baselines.
# About two and a half hours on 2 cores with the defaults; LOOP holds the gallery, store, clicks
# and models. Smoke-sized: make learning-loop LOOP=/tmp/loop SIMULATE="--sessions 40 --classes 4"
#   TRAIN="--classes 4 --per-class 20 --holdout 5 --steps 20" EVALUATE="--limit 100 --out /tmp/loop/EVALUATION.md"
LOOP ?= $(HOME)/.cache/lookalike/loop
SEEDS ?= 0 1 2
SIMULATE ?= --sessions 8000 --classes 202 --per-class 20 --queries-per-class 5
TRAIN ?=
EVALUATE ?= --out docs/EVALUATION.md
learning-loop: setup
	$(BIN)/python -m lab simulate $(SIMULATE) --work $(LOOP)
	$(BIN)/lookalike training-set --store $(LOOP)/store --out $(LOOP)/clicks
	for seed in $(SEEDS); do \
	  SM_CHANNEL_CLICKS=$(LOOP)/clicks SM_CHANNEL_GALLERY=$(LOOP)/gallery SM_MODEL_DIR=$(LOOP)/seed-$$seed/model \
	  SM_OUTPUT_DATA_DIR=$(LOOP)/seed-$$seed/output SM_CHECKPOINT_DIR=$(LOOP)/seed-$$seed/checkpoints \
	  $(BIN)/python -m model_export.train --seed $$seed $(TRAIN) || exit 1; \
	done
	$(BIN)/python -m lab evaluate $(foreach seed,$(SEEDS),--model-finetuned $(LOOP)/seed-$(seed)/model/model.onnx) $(EVALUATE)

# The CPU fine-tuning recipe (docs/TRAINING.md, "The CPU recipe"): every backbone block at 128 px on
# the loop's clicks, edited views and shown-but-not-clicked results; sized for an hour on two idle
# cores (python -m lab bench finetune_step). Simulates the clicks first when LOOP has none. The run's
# model folder, $(LOOP)/default/model (parameters.npz, manifest.json, model.onnx), is what
# model_export/shipped/ takes once evaluated.
train-default: setup
	test -f $(LOOP)/clicks/pairs.jsonl || { $(BIN)/python -m lab simulate $(SIMULATE) --work $(LOOP) && \
	  $(BIN)/lookalike training-set --store $(LOOP)/store --out $(LOOP)/clicks; }
	SM_CHANNEL_CLICKS=$(LOOP)/clicks SM_CHANNEL_GALLERY=$(LOOP)/gallery SM_MODEL_DIR=$(LOOP)/default/model \
	  SM_OUTPUT_DATA_DIR=$(LOOP)/default/output SM_CHECKPOINT_DIR=$(LOOP)/default/checkpoints \
	  $(BIN)/python -m model_export.train --recipe cpu $(TRAIN)

# One benchmark, search latency by default; `python -m lab bench --help` lists the others:
# make bench BENCH=store_bench BENCH_ARGS="--sizes 5000 10000"
BENCH ?= search_latency
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m lab bench $(BENCH) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .lookalike $(DEMO_GALLERY)
