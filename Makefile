# Two entry points (see README): `make test` and `make demo`.
PY ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: test install clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
