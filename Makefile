# Two commands on a fresh machine: `make run` and `make test`. Everything else is built on demand.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
# One stamp per set of extras installed for this setup.py; a target installs only the set it uses.
SETUP_HASH := $(shell cat setup.py | sha1sum | cut -c1-12)
STAMP  := $(VENV)/.installed-$(SETUP_HASH)
EVAL_SEED ?= 20251127
EVAL_N    ?= 2000
SAMPLE_N  ?= 2000
# llama-cpp-python builds from source: without its tools, server, examples and tests it takes minutes, not tens
# of minutes; portable (no -march=native) so pip's cached wheel suits any x86-64 machine.
LLAMA_CMAKE_ARGS := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_NATIVE=OFF
# Delta Lake's JVM jars for the native engine (jvm/pom.xml pins them), fetched from Maven Central once.
DELTA_JARS := build/delta-jars
comma := ,
empty :=
space := $(empty) $(empty)
# spark-submit finds Spark through the venv's python; Spark's own logging at WARN (the job logs each stage); the
# Delta jars on the driver's and executors' classpath when they were fetched (the native engine), else delta-rs.
SPARK_SUBMIT = PATH=$(CURDIR)/$(VENV)/bin:$$PATH SPARK_LOCAL_IP=127.0.0.1 spark-submit \
	--driver-java-options "-Dlog4j2.configurationFile=file:$(CURDIR)/conf/log4j2.properties" \
	$(if $(wildcard $(DELTA_JARS)/*.jar),--jars $(subst $(space),$(comma),$(wildcard $(DELTA_JARS)/*.jar)))

.PHONY: install java browser key delta-jars airflow-venv test run review eval eval-real train-ner bench bench-scale clean

# Everything the tests use (the local LLM server, its llama.cpp and model parts, the review page, a browser,
# Delta Lake's jars).
install: $(STAMP)-test java browser delta-jars airflow-venv

# Without Maven (an air-gapped site) the job runs on delta-rs; `delta.engine: native` then says what is missing.
delta-jars: $(DELTA_JARS)/.fetched
$(DELTA_JARS)/.fetched: jvm/pom.xml
	@if command -v mvn >/dev/null; then \
	  rm -rf $(DELTA_JARS) && mvn -q -f jvm/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/$(DELTA_JARS) \
	    -DincludeGroupIds=io.delta,io.unitycatalog -DincludeScope=runtime && touch $@; \
	else echo "warning: mvn not found: no Delta Lake jars, the job runs on delta-rs (install maven for the native engine)"; fi

# $(STAMP)-SET installs the project with the extras SET names (core: none; others as in setup.py, joined by +).
$(STAMP)-%: setup.py
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@find $(VENV) -maxdepth 1 -name '.installed-*' ! -name '.installed-$(SETUP_HASH)-*' -delete
	$(PY) -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip install --quiet -e '.$(if $(filter core,$*),,[$(subst +,$(comma),$(subst test,test+local-llm+review,$*))])'
	@touch $@

# Spark needs Java 17; install Debian's headless JRE when missing and we are root.
java:
	@if java -version 2>&1 | grep -q 'version "17'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing openjdk-17-jre-headless"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	else echo "warning: Java 17 not found; Spark jobs will not run (install openjdk-17-jre-headless)"; fi

# The review page's browser test drives Debian's headless chromium with its matching chromedriver; a CJK font
# so that screenshots show the text. Installed when missing and we are root (like Java).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list 2>/dev/null | grep -qi 'wenquanyi\|noto.*cjk'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium, chromium-driver, fonts-wqy-microhei"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; \
	else echo "warning: chromium/chromedriver not found; the review page's browser test will fail (install chromium chromium-driver)"; fi

# Airflow, its Spark provider and databricks-bundles, apart from the project's venv, for tests/test_schedule.py
# (the DAG loaded by Airflow's own DagBag, the bundle checked by its typed models): about 35 s, 670 MB.
AIRFLOW_VENV := .venv-airflow
airflow-venv: $(AIRFLOW_VENV)/.installed
$(AIRFLOW_VENV)/.installed: deploy/airflow/requirements.txt deploy/airflow/constraints-3.11.txt
	@test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r deploy/airflow/requirements.txt -c deploy/airflow/constraints-3.11.txt
	@touch $@

# Lint first (ruff, configured in pyproject.toml): seconds, and it fails before the 30-minute suite starts.
test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -rs tests

# The fixed test set: regenerated byte for byte from its seed, then scored.
eval: $(STAMP)-core key
	$(VENV)/bin/deid synth --n $(EVAL_N) --seed $(EVAL_SEED) --out data/eval
	$(WITH_SECRET) $(VENV)/bin/deid eval --gold data/eval/notes.jsonl

# Public real text (addresses, names in prose, de-identified EMR notes, patient questions, two ICD-10 editions, and
# the real-context set: EMR notes with real names, addresses, hospitals and formatted numbers placed in them),
# read from $$DEID_REAL_DATA (a folder of the source repositories; deid eval-real lists the files and their
# SHA-256). Without it this says so and exits 0.
eval-real: $(STAMP)-core key
	$(WITH_SECRET) $(VENV)/bin/deid eval-real $(if $(DEID_REAL_DATA),--data $(DEID_REAL_DATA)) --json data/eval-real.json

# The name model the NER detector ships (resources/models/deid_ner.onnx), trained from LAC's weights on one core
# from the corpora under $$DEID_REAL_DATA (docs/detectors.md#the-name-model); not part of `make test`.
train-ner: $(STAMP)-train
	nice -n 10 $(PY) -m deid.nertrain --data $(DEID_REAL_DATA) --out resources/models

bench: $(STAMP)-test+bench java key delta-jars
	$(WITH_SECRET) $(PY) bench/bench_detectors.py --n $(EVAL_N) --seed $(EVAL_SEED)
	$(WITH_SECRET) $(PY) bench/bench_job.py --n 20000
	$(WITH_SECRET) $(PY) bench/bench_llm.py --n $(EVAL_N) --seed $(EVAL_SEED)

# How the job's cost grows with the table (first load, day 2, no-op, dictionary change, plain baseline per size);
# not part of `make bench`: 400,000 notes take about an hour on two cores. Writes $(SCALE_OUT)/scale.json and .png.
SCALE_SIZES ?= 20000,100000,400000
SCALE_OUT   ?= data/bench-scale
bench-scale: $(STAMP)-test+bench java key delta-jars
	$(WITH_SECRET) $(PY) bench/bench_scale.py --sizes $(SCALE_SIZES) --out $(SCALE_OUT)

# The embedded default: a sample NOTE Delta table (made once), the Spark job on local[2], a summary.
# `make run LLM=local` also starts the local LLM server (Ray Serve + llama.cpp) and runs the job with the LLM
# stage on the first LLM_NOTES notes into data/llm (a 0.5B model on two CPU cores: about 20 s a note, so
# about 20 minutes for 50; the console shows Spark's task progress).
LLM ?=
# More job options for `make run`, e.g. JOB_ARGS="--reprocess affected" after a dictionary edit.
JOB_ARGS ?=
LLM_NOTES ?= 50
# The job's HMAC key (note_digest, text_digest) is $$DEID_SECRET; without one, `make run` makes a local key once, as
# the job's error says to, and keeps it here (mode 0600; another key re-processes every note).
SECRET_FILE := data/.deid_secret
WITH_SECRET = DEID_SECRET="$${DEID_SECRET:-$$(cat $(SECRET_FILE))}"
key:
	@test -n "$$DEID_SECRET" || test -s $(SECRET_FILE) || { mkdir -p data && (umask 077 && \
		$(PY) -c 'import secrets; print(secrets.token_hex(32))' > $(SECRET_FILE)) && echo "made a local key: $(SECRET_FILE)"; }

# make run installs only what it uses: the core, plus the local LLM server with LLM=local.
run: $(STAMP)-$(if $(filter local,$(LLM)),local-llm,core) java key delta-jars
	@test -d data/omop/note/_delta_log || $(VENV)/bin/deid synth --n $(SAMPLE_N) --seed 7 --out data/sample --delta data/omop/note
ifeq ($(LLM),local)
	$(WITH_SECRET) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) jobs/with_local_llm.py -- $(SPARK_SUBMIT) jobs/deid_notes.py \
		--config conf/local-llm.yaml --limit $(LLM_NOTES)
	@$(VENV)/bin/deid summary --root data/llm
else
	$(WITH_SECRET) $(SPARK_SUBMIT) jobs/deid_notes.py --config conf/local.yaml $(JOB_ARGS)
	@$(VENV)/bin/deid summary --root data
endif

# The review page over `make run`'s tables on http://127.0.0.1:8787/ (REVIEW_PORT). The first time it creates an
# admin account: the password comes from $$DEID_REVIEW_PASSWORD, else one is generated and printed once.
REVIEW_PORT ?= 8787
review: $(STAMP)-review key
	@test -d data/note_phi_spans/_delta_log || { echo "error: no job outputs under data/; run make run first"; exit 1; }
	@test -f data/_review/accounts.yaml || $(VENV)/bin/deid review add-user --root data --user admin --role admin --generate
	$(WITH_SECRET) $(VENV)/bin/deid review --root data --port $(REVIEW_PORT)

clean:
	rm -rf $(VENV) $(AIRFLOW_VENV) build *.egg-info data
