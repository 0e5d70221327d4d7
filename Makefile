# Two entry points (see README): `make test` and `make demo`.
PY ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: test install demo clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[test,executorch]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP) $(CHROMIUM)
	$(VENV)/bin/python -m pytest -q

# The browser tests (tests/test_web.py) drive Debian's Chromium through Playwright, which never downloads a browser
# of its own: install the distribution's package when it is missing (as root, or with sudo).
$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

# Animate a bundled photo (held out from the photo model's training) with the embedded `photo` model.
demo: $(STAMP)
	$(VENV)/bin/lightvid animate examples/rocket.jpg -o demo/rocket.mp4 --gif
	@echo "the video is in demo/rocket.mp4 (GIF preview: demo/rocket.gif)"

clean:
	rm -rf $(VENV) build *.egg-info demo
