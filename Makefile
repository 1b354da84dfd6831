# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv with the pinned packages the first time and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench addon dataset-samples clean-venv
venv: $(STAMP)

# Reinstalls only when pyproject.toml changes; pip checks the pins against what is there.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[blender,test]'
	@touch $@

# The main job end to end: core against Cycles' own depth of field, then the same refocus done by a
# Refocus node inside Blender's compositor (a focus pull rendered headless with bpy).
demo: $(STAMP)
	$(PY) -m blender_scenes.demo --out out/demo/core_vs_cycles
	$(PY) -m blender_scenes.demo_compositor --out out/demo/compositor
	@echo "Open out/demo/core_vs_cycles/contact_sheet.png and out/demo/compositor/contact_sheet.png"

test: $(STAMP)
	$(PY) -m pytest -q

# Speed and agreement side by side with the peers, printed as ratios (minutes on 2 cores).
bench: $(STAMP)
	$(PY) -m bench.defocus_speed
	$(PY) -m bench.cycles_agreement
	$(PY) -m bench.compositor_speed
	$(PY) -m bench.stereo_speed
	$(PY) -m bench.focal_stack_speed

# The installable extension zip (Edit > Preferences > Get Extensions > Install from Disk).
addon: $(STAMP)
	$(PY) -m blender_scenes.build_extension --out dist

# Re-render the small samples of every dataset kind shipped under blender_scenes/samples.
dataset-samples: $(STAMP)
	for kind in defocusnet deeplens stereo; do \
	  $(PY) -m blender_scenes.generate --kind $$kind --count 2 --size 128 128 --out blender_scenes/samples/$$kind --quiet || exit 1; done
	$(PY) -m blender_scenes.generate --kind sweep --count 1 --size 128 96 --frames 8 --out blender_scenes/samples/sweep --quiet

clean-venv:
	rm -rf $(VENV)
