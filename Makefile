# The README's two set-up commands: `make demo` and `make test`.
# Each creates .venv if missing and installs the pinned dependencies into it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ssl_robot-installed

# Keep DDS traffic of tests and demo on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install test demo eval-data bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-ros.txt setup.py package.xml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@# rclpy from a sourced ROS 2 distro wins; the PyPI wheels only where it is missing.
	@if $(PY) -c 'import rclpy' 2>/dev/null; then \
		echo 'rclpy found: using the installed ROS 2'; \
	else \
		echo 'rclpy missing: installing the ROS 2 Kilted wheels'; \
		$(PY) -m pip install --quiet -r requirements-ros.txt; \
	fi
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Offline evaluation data from Debian packages (nothing is downloaded at run time).
eval-data:
	@bash tools/install_eval_data.sh

test: install eval-data
	$(PY) -m pytest -q test

demo: install
	$(PY) -m ssl_robot.cli demo --out runs/demo

bench: install
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build install log *.egg-info
