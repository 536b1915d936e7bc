# bpfpga: every target sets itself up on a fresh Debian/Ubuntu machine.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEBS   := clang llvm libbpf-dev perl g++ make iproute2 libusb-1.0-0 libftdi1-2
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONFORMANCE ?= $(abspath ../shared/conformance/bpf_conformance)
export BPFPGA_CONFORMANCE := $(CONFORMANCE)

.PHONY: all setup debs demo test test-slow examples bench clean

all: test

debs:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory debs
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[hdl,synth,boards,plot,test]'
	@touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/bpfpga demo

test: setup
	$(VENV)/bin/python -m pytest -q -n 2 -m "not slow" tests

# the XDP engine's board build of the Colorlight (`make test` builds its SoC with the loopback
# engine): some 20-25 minutes here, too long for `make test` (docs/boards.md)
test-slow: setup
	$(VENV)/bin/python -m pytest -q -m slow tests

examples: setup
	$(MAKE) -C examples

bench: setup
	$(PY) bench/ref_speed.py

clean:
	rm -rf build .pytest_cache
