# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv with the pinned packages the first time and reuse it afterwards.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench addon addon-slim dataset-samples retrain-dff retrain-camera retrain-stereo retrain-mono clean-venv
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

# The installable extension zips (Edit > Preferences > Get Extensions > Install from Disk): `addon`
# carries the core, its weights and the pinned CPU wheels (runs offline on Blender's own Python;
# the wheels are downloaded once into build/wheels); `addon-slim` is the add-on alone, for a Worker
# Python of your own (a CUDA environment).
addon: $(STAMP)
	$(PY) -m blender_scenes.build_extension --out dist

addon-slim: $(STAMP)
	$(PY) -m blender_scenes.build_extension --out dist --slim

# Re-render the small samples of every dataset kind shipped under blender_scenes/samples.
dataset-samples: $(STAMP)
	for kind in defocusnet deeplens stereo; do \
	  $(PY) -m blender_scenes.generate --kind $$kind --count 2 --size 128 128 --out blender_scenes/samples/$$kind --quiet || exit 1; done
	$(PY) -m blender_scenes.generate --kind sweep --count 1 --size 128 96 --frames 8 --out blender_scenes/samples/sweep --quiet
	$(PY) -m blender_scenes.generate --kind mono --count 2 --size 160 128 --split test --seed 1 --out blender_scenes/samples/mono --quiet
	$(PY) -m blender_scenes.generate --kind track --count 1 --size 128 72 --frames 12 --split dev --seed 7 --no-preview --out blender_scenes/samples/track --quiet

# Retrain a shipped network from scratch, one command each: render its Cycles data (resumable: a
# re-run skips finished samples), run every training stage in order, then score it on the held-out
# splits. Hours on 2 cores; the weights land in models/weights/ with their evaluation PNG.
# The model cards (models/weights/*.md) explain each stage and list what the shipped run saw.
DATA   := data
GEN    := $(PY) -m blender_scenes.generate
FOCUS  := $(DATA)/defocusnet
retrain-dff: $(STAMP)
	$(GEN) --kind defocusnet --count 600 --out $(FOCUS)/train --seed 0 --size 192 192
	for f in 1.4 2.8 5.6; do $(GEN) --kind defocusnet --count 160 --out $(FOCUS)/train-f$$f --seed 7 --f-stop $$f --size 192 192 || exit 1; done
	$(GEN) --kind defocusnet --count 24 --out $(FOCUS)/val-f2.8 --seed 9 --f-stop 2.8 --size 192 192
	$(GEN) --kind defocusnet --count 40 --out $(FOCUS)/test-appearance --seed 1 --split test-appearance
	for s in test-shape test-wide-dof test-medium-dof; do $(GEN) --kind defocusnet --count 30 --out $(FOCUS)/$$s --seed 1 --split $$s || exit 1; done
	$(PY) -m models.dff.train --config guided --data $(FOCUS)/train --val $(FOCUS)/test-appearance --out models/weights --threads 1 --cache --log-every 100
	$(PY) -m models.dff.train --config guided --init models/weights/dff_guided.pt --lr 5e-4 --min-scale 0.25 --scale-prob 0.6 --steps 800 --data $(FOCUS)/train --val $(FOCUS)/test-wide-dof --out models/weights --threads 1 --cache --log-every 100
	$(PY) -m models.dff.train --config guided --init models/weights/dff_guided.pt --lr 5e-4 --steps 1600 $(foreach d,train train-f1.4 train-f2.8 train-f5.6,--data $(FOCUS)/$(d)) --val $(FOCUS)/val-f2.8 --out models/weights --threads 1 --cache --log-every 100
	$(PY) -m models.dff.train --config guided --init models/weights/dff_guided.pt --lr 3e-4 --steps 1600 $(foreach d,train train-f1.4 train-f2.8 train-f5.6,--data $(FOCUS)/$(d)) --val $(FOCUS)/val-f2.8 --out models/weights --threads 1 --cache --log-every 100
	$(PY) -m models.dff.train --config guided --init models/weights/dff_guided.pt --lr 3e-4 --steps 1600 --depth-l1 1.0 $(foreach d,train train-f1.4 train-f2.8 train-f5.6,--data $(FOCUS)/$(d)) --val $(FOCUS)/val-f2.8 --out models/weights --threads 2 --cache --log-every 100
	$(PY) -m models.dff.train --config guided --init models/weights/dff_guided.pt --lr 3e-4 --steps 1600 --depth-l1 1.0 --in-range-loss $(foreach d,train train-f1.4 train-f2.8 train-f5.6,--data $(FOCUS)/$(d)) --val $(FOCUS)/val-f2.8 --out models/weights --threads 2 --cache --log-every 100
	$(PY) -m models.dff.train --config guided --init models/weights/dff_guided.pt --lr 2e-4 --steps 1600 --depth-l1 1.0 --in-range-loss $(foreach d,train train-f1.4 train-f2.8 train-f5.6,--data $(FOCUS)/$(d)) --val $(FOCUS)/val-f2.8 --out models/weights --threads 2 --cache --log-every 100
	$(PY) -m models.dff.evaluate $(foreach s,test-shape test-appearance test-wide-dof test-medium-dof,--data $(FOCUS)/$(s)) --grid models/weights/dff_guided_eval.png

# CameraNet (issue 21): stacks from random cameras, rendered denoised with a seed per render; sensor
# noise is added in training. Validation folders choose the checkpoint; the test splits are scored last.
CAMERA_TRAIN := train-random-camera train-random-camera-imperfect
CAMERA_VAL   := val-random-camera val-random-camera-2 val-random-camera-3
retrain-camera: $(STAMP)
	$(GEN) --kind defocusnet --camera random --slices 10 --count 480 --size 256 192 --seed 41 --independent-noise --out $(FOCUS)/train-random-camera
	$(GEN) --kind defocusnet --camera random --slices 10 --count 80 --size 256 192 --seed 43 --breathing --shake 0.5 0.05 --independent-noise --out $(FOCUS)/train-random-camera-imperfect
	$(GEN) --kind defocusnet --camera random --slices 8 --count 20 --size 360 240 --seed 31 --out $(FOCUS)/val-random-camera
	$(GEN) --kind defocusnet --camera random --slices 10 --count 24 --size 360 240 --seed 47 --independent-noise --out $(FOCUS)/val-random-camera-2
	$(GEN) --kind defocusnet --camera random --slices 10 --count 40 --size 360 240 --seed 59 --independent-noise --out $(FOCUS)/val-random-camera-3
	for c in unseen-50mm unseen-phone; do $(GEN) --kind defocusnet --camera $$c --split test-unseen-camera --count 36 --size 360 240 --seed 1 --out $(FOCUS)/test-$$c || exit 1; done
	$(PY) -m models.dff.train_camera --config shipped $(foreach d,$(CAMERA_TRAIN),--data $(FOCUS)/$(d)) $(foreach d,$(CAMERA_VAL),--val $(FOCUS)/$(d)) --cache $(DATA)/cache/camera --out models/weights --threads 2
	for n in "" "--noise 0.002 0.002"; do $(PY) -m models.dff.evaluate --methods argmax classical physical learned learned-camera --data $(FOCUS)/test-unseen-50mm --data $(FOCUS)/test-unseen-phone $$n || exit 1; done

STEREO := $(DATA)/stereo
retrain-stereo: $(STAMP)
	$(GEN) --kind stereo --count 598 --out $(STEREO)/train --seed 0
	$(GEN) --kind stereo --count 60 --out $(STEREO)/test --seed 1 --split test
	$(PY) -m models.stereonet.train_guided --data $(STEREO)/train --cache $(STEREO)/cache --out models/weights/stereonet_refined.pt --limit 598 --holdout 40 --minutes 19 --batch 6 --crop 128 144 --save-every 150 --normalize --threads 1
	$(PY) -m models.stereonet.train_guided --data $(STEREO)/train --cache $(STEREO)/cache --out models/weights/stereonet_refined.pt --limit 598 --holdout 40 --synthetic 400 --init models/weights/stereonet_refined.pt --minutes 24 --batch 6 --crop 128 144 --save-every 150 --lr 5e-4 --threads 1
	$(PY) -m models.stereonet.train_guided --data $(STEREO)/train --cache $(STEREO)/cache --out models/weights/stereonet_refined.pt --limit 598 --holdout 40 --synthetic 800 --init models/weights/stereonet_refined.pt --minutes 26 --batch 6 --crop 128 144 --save-every 150 --lr 3e-4 --threads 1
	$(PY) -m models.stereonet.evaluate --data $(STEREO)/test --data motorcycle --weights models/weights/stereonet_refined.pt --limit 60 --png models/weights/stereonet_refined_eval.png --threads 1

MONO := $(DATA)/mono
retrain-mono: $(STAMP)
	$(GEN) --kind mono --split val --count 100 --seed 0 --size 160 128 --out $(MONO)/val
	$(GEN) --kind mono --split test --count 100 --seed 17 --size 160 128 --out $(MONO)/test
	$(GEN) --kind mono --split train --count 512 --seed 0 --size 160 128 --out $(MONO)/train
	$(PY) -m models.mono.train --config default --data $(MONO)/train --val $(MONO)/val --limit 512 --out models/weights/mono_deeplens.pt --steps 3051 --batch 12 --lr 3e-3 --eval-every 200 --log-every 50 --threads 1
	$(PY) -m models.mono.evaluate --test $(MONO)/test --png models/weights/mono_deeplens_eval.png

clean-venv:
	rm -rf $(VENV)
