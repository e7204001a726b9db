# The two set-up commands: `make run` (daemon on its embedded default) and `make test` (the whole suite).
# Both install what they need on a fresh Debian machine: SoftHSM2 and OpenSC from Debian, Python deps in .venv.

PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= $(CURDIR)/var
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := softhsm2 opensc openssl bind9 wrk pebble

export SCAIVAULT_PKI_DATA_DIR ?= $(DATA_DIR)

.PHONY: run test deps venv clean

deps:
	@if ! command -v softhsm2-util >/dev/null || ! command -v pkcs11-tool >/dev/null || ! command -v openssl >/dev/null \
		|| ! test -x /usr/sbin/named || ! command -v wrk >/dev/null || ! test -x /usr/bin/pebble-challtestsrv; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBIAN_PACKAGES); \
	fi

venv: $(VENV)/.installed

EXAMPLE_PLUGIN := tests/plugins/example_plugin

# The example third-party plugin is installed like any other plugin package: the daemon finds it only through
# its entry point.
$(VENV)/.installed: pyproject.toml $(EXAMPLE_PLUGIN)/pyproject.toml $(EXAMPLE_PLUGIN)/scaivault_example_plugin/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	$(VENV)/bin/pip install -q ./$(EXAMPLE_PLUGIN)
	touch $@

run: deps venv
	$(VENV)/bin/scaivault-pki init
	$(VENV)/bin/scaivault-pki serve

test: deps venv
	$(VENV)/bin/pytest

clean:
	rm -rf $(VENV) build *.egg-info
