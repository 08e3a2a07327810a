# The few verbs a newcomer needs. `make train` and `make test` set up .venv first when missing.
PY := .venv/bin/python
STORE := sqlite:///$(CURDIR)/mlruns/mlflow.db
UI_HOST ?= 127.0.0.1

.PHONY: install train test test-all test-slow test-changed lint ui study seed-grid report reap clean

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch .venv/.installed

install: .venv/.installed  ## create .venv with the project installed editable (idempotent)

train: .venv/.installed  ## LeNet-5 on the bundled MNIST sample, offline, logged to MLflow
	$(PY) -m src.train $(ARGS)

test: lint  ## lint, then the fast tests (slow ones excluded: <= 8 min on 2 idle cores); prints the ten slowest
	OMP_NUM_THREADS=$(or $(OMP_NUM_THREADS),1) $(PY) -m pytest --durations=10 $(PYTEST_ARGS)

test-all: lint  ## lint, then every test, the slow ones too (chaos sweep, study slices, benchmarks, DDP, resume)
	OMP_NUM_THREADS=$(or $(OMP_NUM_THREADS),1) $(PY) -m pytest -m "" --durations=20 $(PYTEST_ARGS)

test-slow: .venv/.installed  ## only the slow tests
	OMP_NUM_THREADS=$(or $(OMP_NUM_THREADS),1) $(PY) -m pytest -m slow --durations=20 $(PYTEST_ARGS)

test-changed: .venv/.installed  ## the slow tests of the areas this change touches (scripts/slow_tests.py; what CI adds)
	@files="$$($(PY) scripts/slow_tests.py $(ARGS))"; \
	if [ -n "$$files" ]; then OMP_NUM_THREADS=$(or $(OMP_NUM_THREADS),1) $(PY) -m pytest -m slow --durations=20 $$files $(PYTEST_ARGS); \
	else echo "no slow test covers what this change touches"; fi

lint: .venv/.installed  ## ruff over the whole repository
	.venv/bin/ruff check .

ui: .venv/.installed  ## the MLflow UI on http://$(UI_HOST):5000 (127.0.0.1 unless UI_HOST=... is given); prints each experiment's URL
	mkdir -p mlruns
	$(PY) scripts/ui_links.py --store $(STORE) --base-url http://$(UI_HOST):5000
	.venv/bin/mlflow ui --backend-store-uri $(STORE) --host $(UI_HOST) --port 5000

study: .venv/.installed  ## the study (second edition): every conf/experiment/study2_*.yaml block, resumable, then docs/seed_study.md
	$(PY) scripts/study.py --jobs $(or $(JOBS),2) $(ARGS)

seed-grid: .venv/.installed  ## the first study (seed_grid, 45 runs, ~12 min on 2 cores), then its report
	OMP_NUM_THREADS=1 $(PY) -m src.train -m experiment=seed_grid hydra/launcher=joblib hydra.launcher.n_jobs=$(or $(JOBS),2) $(ARGS) || true
	$(PY) scripts/report.py

report: .venv/.installed  ## report of the latest sweep (or ARGS="--sweep <id>" / "--experiment <name>")
	$(PY) scripts/report.py $(ARGS)

reap: .venv/.installed  ## close runs left RUNNING by a process that died (KILLED, outcome=lost); ARGS="--dry-run" to look first
	$(PY) -m src.reap $(ARGS)

clean:  ## remove Hydra run folders (outputs/: checkpoints included) and generated reports; keeps the MLflow store
	rm -rf outputs reports
