# Two entry points a newcomer needs: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup data test lint demo zoo zoo-models wheelhouse wheelhouse-gpu pins edge-image compose-smoke clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) data

# Fashion-MNIST for the tests: found where the loaders look, else installed from Debian's
# package when this is root on a Debian/Ubuntu machine, else one line saying what to do.
DATA_HELP := Fashion-MNIST not found: run 'sudo apt-get install dataset-fashion-mnist', or set CSRP_DATA_DIR to a folder holding its four *-ubyte.gz files (https://github.com/zalandoresearch/fashion-mnist)
data: $(STAMP)
	@$(PY) -m models data --check fashion-mnist >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && [ -z "$$CSRP_DATA_DIR" ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's dataset-fashion-mnist"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && \
	           DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; }; \
	  fi; \
	  $(PY) -m models data --check fashion-mnist >/dev/null 2>&1 || { echo "$(DATA_HELP)"; exit 1; }; }
	@$(PY) -m models data --check fashion-mnist

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(PY) -m verifier_client demo --repository zoo

# The default zoo. Every step is skipped when its output exists, so `make zoo` resumes.
METHODS := ipguard cae vce rce rce-gm rce-lt akh sac-m
POOLS := build/pools
# One seed per set: with one seed for all, VCE and the RCE family would start from the same noise
# and labels, and IPGuard and CAE from the same clean images, so their tests would correlate.
SEED_ipguard := 1
SEED_cae := 2
SEED_vce := 3
SEED_rce := 4
SEED_rce-gm := 5
SEED_rce-lt := 6
SEED_akh := 7
SEED_sac-m := 8
SEED_di := 9
zoo: setup zoo-models $(METHODS:%=zoo/fingerprints/%.safetensors) zoo/fingerprints-di/di.safetensors \
  calibrations

zoo-models:
	$(PY) -m models zoo --out zoo --jobs 2

# ---- Round 3: the null population's calibrations and the validation of the verdicts ----------
# Every target below resumes (calibrate keeps OUT.partial, validate OUT/cache); ZOO and RESULTS
# may point elsewhere, e.g. `make -C ../clean-checkout ZOO=$PWD/zoo RESULTS=$PWD/results ...`
# so that the files record a clean code version.
ZOO ?= zoo
RESULTS ?= results
# The owner does not know the pirate's CSRP setting: the EOT null is measured behind every corner
# and the centre of this family, with the votes and repeats the adaptive verifier then uses.
FRONT_FAMILY := csrp(sigma=1.1..1.35, p=1..8)
EOT_VOTES := 5
EOT_REPEATS := 10
# Innocents are validated as they are, behind the zoo's CSRP and behind two other settings.
SERVE_BEHIND := none;csrp(sigma=1.23, p=6);csrp(sigma=1.16, p=3);csrp(sigma=1.3, p=8)

.PHONY: calibrations validation
calibrations: $(ZOO)/calibration.json $(ZOO)/calibration-eot.json $(ZOO)/calibration-di.json

$(ZOO)/calibration.json:
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints --repository $(ZOO) \
	  --out $@

$(ZOO)/calibration-di.json:
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints-di --repository $(ZOO) \
	  --out $@

$(ZOO)/calibration-eot.json:
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints-eot --repository $(ZOO) \
	  --front '$(FRONT_FAMILY)' --votes $(EOT_VOTES) --repeats $(EOT_REPEATS) --out $@

# After the population grew (`python -m models zoo` built more calibration negatives): remake the
# three calibrations in place, measuring only the models the current files do not hold (--reuse;
# an interrupted run resumes from OUT.partial, and the file is replaced only when it is complete).
# Cheapest first: the plain null takes seconds a model, the EOT null about a minute. Each target
# stands alone (recalibrate-di does not rerun the other two), and a file that would gain nothing
# is left as it is.
.PHONY: recalibrate recalibrate-plain recalibrate-eot recalibrate-di
recalibrate: recalibrate-plain recalibrate-eot recalibrate-di
recalibrate-plain:
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints --repository $(ZOO) \
	  --reuse $(ZOO)/calibration.json --out $(ZOO)/calibration.json
recalibrate-eot:
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints-eot --repository $(ZOO) \
	  --front '$(FRONT_FAMILY)' --votes $(EOT_VOTES) --repeats $(EOT_REPEATS) \
	  --reuse $(ZOO)/calibration-eot.json --out $(ZOO)/calibration-eot.json
recalibrate-di:
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints-di --repository $(ZOO) \
	  --reuse $(ZOO)/calibration-di.json --out $(ZOO)/calibration-di.json

validation: $(RESULTS)/validation/validation.json
$(RESULTS)/validation/validation.json: $(ZOO)/calibration.json $(ZOO)/calibration-eot.json
	$(PY) -m verifier_client validate --repository $(ZOO) --serve-behind '$(SERVE_BEHIND)' \
	  --out $(RESULTS)/validation

$(POOLS)/surrogates/pools.json: zoo/target/config.json
	$(PY) -m verifier_client pools --target zoo/target --out-surrogates $(POOLS)/surrogates \
	  --out-references $(POOLS)/references

# CAE at the paper's eps 0.01 / tau 0.85 yields no sample on Fashion-MNIST (best conferrability
# seen: 0.49); the zoo loosens both (see verifier_client/fingerprints/cae.py).
zoo/fingerprints/cae.safetensors: $(POOLS)/surrogates/pools.json
	$(PY) -m verifier_client generate --method cae --target zoo/target --n 100 --seed $(SEED_cae) \
	  --pools $(POOLS)/surrogates/pools.json --param eps=0.05 --param tau=0.5 \
	  --param steps=100 --param max_batch=128 --out $@

zoo/fingerprints/%.safetensors: zoo/target/config.json
	$(PY) -m verifier_client generate --method $* --target zoo/target --n 100 --seed $(SEED_$*) \
	  --out $@

# Dataset Inference sends 12,900 queries per repeat: a suite of its own, so that verifying with
# the plain sets stays cheap.
zoo/fingerprints-di/di.safetensors: zoo/target/config.json
	$(PY) -m verifier_client generate --method di --target zoo/target --n 100 --seed $(SEED_di) \
	  --out $@


# Every wheel the images install, for builds without network (podman on these machines; any
# air-gapped build): the pinned lists (docker/requirements-*.txt, the versions the tests ran
# with) downloaded by plain pip, no project venv needed. `make pins` rewrites the lists from
# the dev environment after a dependency change.
WHEEL_PYTHON ?= $(PYTHON)
wheelhouse:
	$(WHEEL_PYTHON) -m pip download -q -d docker/wheels -r docker/requirements-edge.txt \
	  -r docker/requirements-client.txt "setuptools>=77" wheel

# The CUDA server image's wheels (several GB): only for `docker-compose.gpu.yml` offline.
wheelhouse-gpu:
	$(WHEEL_PYTHON) -m pip download -q -d docker/wheels -r docker/requirements-gpu.txt \
	  "setuptools>=77" wheel

pins: $(STAMP)
	$(PY) docker/pin.py client > docker/requirements-client.txt
	$(PY) docker/pin.py edge > docker/requirements-edge.txt
	$(PY) docker/pin.py gpu,train > docker/requirements-gpu.txt

# The torch-free edge image (docker, or podman with CONTAINER=podman); docker/smoke.sh runs it.
CONTAINER ?= docker
edge-image: wheelhouse
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) --build-arg PIP_NO_INDEX=1 \
	  -f docker/edge.Dockerfile \
	  -t csrp-edge .

# docker compose up for real: build both images, bring the stack up, check the verdicts, take
# it down (docker, or podman + podman-compose: CONTAINER=podman).
compose-smoke: wheelhouse
	CONTAINER=$(CONTAINER) docker/compose-smoke.sh

clean-venv:
	rm -rf $(VENV)

# ---- Seed spread: two more independently seeded plain sets for IPGuard, CAE and VCE ----------
# (suites fingerprints-seed2/3 with calibrations of their own), so that no claim about a method
# rests on one set.
SPREAD_METHODS := ipguard cae vce
SEED2_ipguard := 21
SEED2_cae := 22
SEED2_vce := 23
SEED3_ipguard := 31
SEED3_cae := 32
SEED3_vce := 33
.PHONY: spread
spread: $(foreach k,2 3,$(SPREAD_METHODS:%=$(ZOO)/fingerprints-seed$(k)/%.safetensors) \
  $(ZOO)/calibration-seed$(k).json)

$(ZOO)/fingerprints-seed%/cae.safetensors: $(POOLS)/surrogates/pools.json
	$(PY) -m verifier_client generate --method cae --target $(ZOO)/target --n 100 \
	  --seed $(SEED$*_cae) --pools $(POOLS)/surrogates/pools.json --param eps=0.05 \
	  --param tau=0.5 --param steps=100 --param max_batch=128 --quiet --out $@

$(ZOO)/fingerprints-seed%/ipguard.safetensors:
	$(PY) -m verifier_client generate --method ipguard --target $(ZOO)/target --n 100 \
	  --seed $(SEED$*_ipguard) --quiet --out $@

$(ZOO)/fingerprints-seed%/vce.safetensors:
	$(PY) -m verifier_client generate --method vce --target $(ZOO)/target --n 100 \
	  --seed $(SEED$*_vce) --quiet --out $@

$(ZOO)/calibration-seed%.json: $(SPREAD_METHODS:%=$(ZOO)/fingerprints-seed\%/%.safetensors)
	$(PY) -m verifier_client calibrate --fingerprints $(ZOO)/fingerprints-seed$* \
	  --repository $(ZOO) --out $@

# ---- ROC over the grown population, per suite ------------------------------------------------
.PHONY: rocs
rocs: $(RESULTS)/roc/roc.json $(RESULTS)/roc-di/roc.json $(RESULTS)/roc-eot-votes/roc.json \
  $(RESULTS)/roc-seed2/roc.json $(RESULTS)/roc-seed3/roc.json
$(RESULTS)/roc/roc.json:
	$(PY) -m verifier_client roc --repository $(ZOO) --quiet --out $(RESULTS)/roc
$(RESULTS)/roc-di/roc.json:
	$(PY) -m verifier_client roc --repository $(ZOO) --fingerprints $(ZOO)/fingerprints-di \
	  --repeats 10 --repeat-budgets 1,10 --quiet --out $(RESULTS)/roc-di
$(RESULTS)/roc-eot-votes/roc.json:
	$(PY) -m verifier_client roc --repository $(ZOO) --fingerprints $(ZOO)/fingerprints-eot \
	  --votes $(EOT_VOTES) --repeats $(EOT_REPEATS) --repeat-budgets 1,5,10 --quiet \
	  --out $(RESULTS)/roc-eot-votes
$(RESULTS)/roc-seed%/roc.json: $(ZOO)/calibration-seed%.json
	$(PY) -m verifier_client roc --repository $(ZOO) --fingerprints $(ZOO)/fingerprints-seed$* \
	  --quiet --out $(RESULTS)/roc-seed$*


# ---- The report: its sections remade at one code version, then the page ------------------------
# `make report-all` from a clean checkout (ZOO/RESULTS/REPORT may point elsewhere): about an hour
# on 2 cores when validation and fronts find their measurement caches (OUT/cache, keyed by
# model, sets and protocol; their records count what was reused), hours without. The load test
# and the peer benchmark run first, on quiet cores. The page states the version each section was
# made at and flags any that differs. The commands are recorded as run: to keep the checkout
# clean while results/ is written elsewhere, run from a folder holding zoo/ and results/ (links
# will do) with `PYTHONPATH=CHECKOUT make -f CHECKOUT/Makefile report-all`.
SRC := $(dir $(abspath $(firstword $(MAKEFILE_LIST))))
REPORT ?= report
LOADTEST_PORT ?= 8017
# the accuser's transferable set (`generate --method transfer`, see the false-claims section)
TRANSFER_SET ?= build/false-claims/transfer.safetensors
# The pirate's Pareto front is drawn against the paper's six weight-level sets: the owner's best
# rate is a maximum over methods, and AKH's and SAC-m's rates sit high for innocents too
# (bands up to 0.80 and 0.93), so with them the maximum would be theirs and measure nothing.
comma := ,
empty :=
space := $(empty) $(empty)
PAPER_SETS = $(subst $(space),$(comma),$(strip $(foreach m,cae ipguard rce-gm rce-lt rce vce,\
  $(ZOO)/fingerprints/$(m).safetensors)))
.PHONY: report report-all report-results
report:
	$(PY) -m verifier_client report --results $(RESULTS) --repository $(ZOO) --out $(REPORT)

report-all: report-results report

report-results:
	$(PY) -m server --repository $(ZOO) --models copy,csrp --port $(LOADTEST_PORT) \
	  >$(RESULTS)/.loadtest-server.log 2>&1 & server=$$!; \
	  trap 'kill $$server 2>/dev/null' EXIT; \
	  for i in $$(seq 120); do curl -sf http://127.0.0.1:$(LOADTEST_PORT)/v2/health/ready \
	    >/dev/null && break; sleep 1; done; \
	  $(PY) -m verifier_client loadtest --url http://127.0.0.1:$(LOADTEST_PORT) --model csrp \
	    --model copy --concurrency 1,8,32,64 --duration 10 --quiet --out $(RESULTS)/loadtest
	rm -f $(RESULTS)/.loadtest-server.log
	$(PY) $(SRC)benchmarks/bench_peer.py --repository $(ZOO) --duration 8 --rounds 2 \
	  --concurrency 1,8,32 --out $(RESULTS)/peer
	$(PY) -m verifier_client demo --repository $(ZOO) --json $(RESULTS)/demo.json
	$(PY) -m verifier_client evaluate --repository $(ZOO) --repeats 100 \
	  --out $(RESULTS)/evaluation
	$(PY) -m verifier_client roc --repository $(ZOO) --quiet --out $(RESULTS)/roc
	$(PY) -m verifier_client roc --repository $(ZOO) --fingerprints $(ZOO)/fingerprints-eot \
	  --repeats 10 --fingerprint-budgets 10,25,50 --repeat-budgets 1,5,10 --quiet \
	  --out $(RESULTS)/roc-eot
	$(PY) -m models tune-defence --model $(ZOO)/target --transform csrp \
	  --grid sigma=1.16,1.23,1.35 --grid p=3,6,9 --suite plain=$(PAPER_SETS) \
	  --suite eot=$(ZOO)/fingerprints-eot --votes 1,5 \
	  --entries $(ZOO)/csrp-ft,$(ZOO)/csrp-ft-weak,$(ZOO)/csrp-ft-strong --repeats 4 \
	  --samples 1000 --out $(RESULTS)/tune-defence
	$(PY) -m verifier_client stability --repository $(ZOO) --threads 2 \
	  --out $(RESULTS)/stability
	$(PY) -m verifier_client explain --target $(ZOO)/target --fingerprints $(ZOO)/fingerprints \
	  --out $(RESULTS)/explain
	$(PY) -m verifier_client validate --repository $(ZOO) --serve-behind '$(SERVE_BEHIND)' \
	  --out $(RESULTS)/validation
	$(PY) -m verifier_client fronts --repository $(ZOO) --repeats 3 --out $(RESULTS)/fronts
	$(PY) -m verifier_client false-claims --repository $(ZOO) --fingerprints $(TRANSFER_SET) \
	  --out $(RESULTS)/false-claims
