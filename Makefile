# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_GALLERY := demo-gallery
DEMO_STORE := .lookalike/demo-store
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup model demo test bench clean layers evaluate

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
	$(BIN)/lookalike index $(DEMO_GALLERY) --store $(DEMO_STORE) --regions
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
	$(BIN)/lookalike evaluate $(foreach model,$(FINETUNED),--model-finetuned $(model)) --out docs/EVALUATION.md

bench: setup
	$(BIN)/python bench/search_latency.py

clean:
	rm -rf $(VENV) .lookalike $(DEMO_GALLERY)
