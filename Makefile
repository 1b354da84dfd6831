# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv with the pinned packages the first time and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench addon clean-venv
venv: $(STAMP)

# Reinstalls only when pyproject.toml changes; pip checks the pins against what is there.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[blender,test]'
	@touch $@

demo: $(STAMP)
	$(PY) -m blender_scenes.demo --out out/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.defocus_speed

clean-venv:
	rm -rf $(VENV)
