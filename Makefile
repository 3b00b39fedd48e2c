# Two entry points: `make demo` (set up, erase on the embedded world, report) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
LAUNCH := $(VENV)/bin/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no
DEMO ?= runs/demo

.PHONY: setup demo test lint clean-demo

setup: $(VENV)/.installed

# torch/torchvision are pinned to a pair that imports together (open-clip-torch needs
# torchvision); everything else comes from pyproject.toml.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(VENV)/bin/pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(LAUNCH) scripts/erase_class.py --forget_class 7 --method lur --output_dir $(DEMO)/class-7 --overwrite
	$(LAUNCH) scripts/erase_concept.py --concept three --method lur --output_dir $(DEMO)/concept-three --overwrite
	$(LAUNCH) scripts/erase_concept.py --concept inverted --method lur --output_dir $(DEMO)/style-inverted --overwrite
	$(PY) eval/report.py $(DEMO)/class-7 $(DEMO)/concept-three $(DEMO)/style-inverted --output_dir $(DEMO)/report
	@echo "report: $(DEMO)/report/report.md"

# Two workers, one file each at a time (module fixtures are built once): most tests launch
# single-threaded jobs, so two at a time use both cores of a CI machine.
test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

lint: setup
	$(VENV)/bin/ruff check .
