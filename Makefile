# BeMore maintenance runbooks. `make demo` and `make test` are the two entry
# points; see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

REPO := $(abspath .)
VENV := $(REPO)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export CONTAINERS_CONF ?= $(REPO)/containers/containers.conf
export ANSIBLE_CONFIG := $(REPO)/ansible.cfg
MOLECULE_ROLES := $(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))
space := $(subst ,, )

.PHONY: help venv venv-core-2.20 demo test test-fast deps testbed lint sanity unit suites shifted molecule bench clean

help:
	@echo "make demo   - run playbooks/weekly.yml against the embedded sandbox"
	@echo "make test   - yamllint, ansible-lint, sanity, pytest, the shifted clock and Molecule for every role (CI)"
	@echo "make test-fast - all of make test but Molecule"
	@echo "make bench  - run the benchmark scripts and print their ratios"
	@echo "make sanity - ansible-test sanity over library/, module_utils/, plugins/"
	@echo "make venv-core-2.20 - a second virtualenv (Python >= 3.12) with ansible-core 2.20 for the smoke run"

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

demo: venv
	@rm -rf .state  # a freshly started sandbox: its first review, not a restart worth reporting
	@$(PY) sandbox/sandboxctl.py start
	@rc=0; ansible-playbook playbooks/weekly.yml >.sandbox/demo.log 2>&1 || rc=$$?; \
	  $(PY) sandbox/sandboxctl.py stop >/dev/null; \
	  $(PY) tools/summary.py reports/weekly/latest.json; \
	  echo "full output: .sandbox/demo.log"; exit $$rc

# Debian packages the container, browser and shifted-clock tests need. Installed when running as root,
# otherwise named so a person can install them.
deps:
	@missing=""; for t in podman:podman runc:runc debootstrap:debootstrap chromium:chromium faketime:faketime; do \
	  command -v $${t%%:*} >/dev/null || PATH=$$PATH:/usr/sbin:/sbin command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing -- run: sudo apt-get install -y$$missing" >&2; exit 2; fi; fi

# Written whole, by a rename: `> .testbed-image` emptied the file for the
# length of the build, and a test reading it then found no image.
testbed: deps
	@mkdir -p .cache; containers/build-testbed.sh > .cache/testbed-image.new && mv .cache/testbed-image.new .testbed-image
	@echo "testbed image: $$(cat .testbed-image)"

lint: venv
	yamllint --strict .
	ansible-lint --profile production -q

# ansible-test sanity over library/, module_utils/ and plugins/, laid out as a
# throwaway collection by tools/sanity.py (offline: it provides the pip
# bootstrap ansible-test would download); compile and import on every
# supported Python installed here. About a minute (four the first time,
# building its cached virtualenvs). SANITY_ARGS="-- --test pep8" runs one test.
SANITY_ARGS ?=
sanity: venv
	$(PY) tools/sanity.py $(SANITY_ARGS)

# The newest ansible-core 2.20.x needs Python >= 3.12 (pyenv has 3.12 and
# 3.13 here); the schedules get a smoke run on it as well as on the pinned
# 2.19 (tests/integration/test_core_versions.py). No collection is needed:
# the schedules use ansible.builtin only. Skipped with a message where no
# such Python exists.
VENV_220 := $(REPO)/.venv-core-2.20
venv-core-2.20:
	@py=""; for v in 3.13 3.12; do 	  for c in "$$(pyenv root 2>/dev/null)/versions/$$v"*/bin/python$$v "$$(command -v python$$v 2>/dev/null)"; do 	    if [ -x "$$c" ] && "$$c" -c 'import venv, ensurepip' 2>/dev/null; then py=$$c; break 2; fi; done; done; 	if [ -z "$$py" ]; then echo "venv-core-2.20: no Python 3.12 or 3.13 here; skipped"; exit 0; fi; 	if [ ! -f $(VENV_220)/.installed ]; then 	  "$$py" -m venv $(VENV_220) && $(VENV_220)/bin/python -m pip install --quiet --disable-pip-version-check 	    'ansible-core>=2.20,<2.21' jinja2 pymysql && touch $(VENV_220)/.installed; fi; 	$(VENV_220)/bin/python -c 'import ansible.release as r; print("venv-core-2.20: ansible-core", r.__version__)'

# Unit and integration suites (pytest-xdist); every test has its own
# simulator, ports, folders and schema. Without the Molecule scenarios.
PYTEST_JOBS ?= 2
unit: venv
	pytest -q -n $(PYTEST_JOBS) --dist loadgroup -m 'not molecule' tests

# What `make test` runs: the unit and integration suites and every role's
# Molecule scenario (tests/molecule) in one pytest session, three workers on
# the two cores. A scenario keeps about one core busy and the integration
# tests a worker's share less: run one stage after the other, pytest left the
# machine a quarter idle for 12 minutes; together the workers keep it busy
# (measured here: 37 min one after the other, 24.3 min at once; README).
SUITES_JOBS ?= 3
suites: venv testbed
	pytest -q -n $(SUITES_JOBS) --dist loadgroup tests

# The suites whose dates are data, once 400 days ahead and once 30 days back
# (libfaketime shifts the whole process tree; each run under `timeout`, one
# pytest process: a -n 2 run under libfaketime stalled). About 50 s a shift.
# Left out, and why:
#   test_check_modules, test_simulator: simulator-backed; a tests/unit run
#     under libfaketime stalled at a simulator-backed test.
#   test_maintenance_lock, test_runbook_report, test_runbook_state,
#     test_tmp_cleanup: ages come from file mtimes and /proc start times, which
#     the kernel's real clock sets, so a shifted run mis-judges stale locks,
#     dead runs and old files (test_runbook_report failed +400 days: an artefact).
#   test_mysql_maintenance: MariaDB's clock is not shifted, and it waits on the server.
#   test_npm_modules: real npm installs (slow); its acceptance dates are
#     already placed relative to the test's own TODAY.
#   test_awx_config: 28 s under libfaketime; its dates are rrule data from DTSTART.
#   test_examples, test_module_docs, test_roles, test_sanity_harness: read no clock.
#   test_safe_tree_rules, test_lifecycle_rules: file ages, locks and a tmpfs (the kernel's clock).
#   test_http_client, test_doctor: loopback servers and deadlines; libfaketime's sleep errors.
#   test_bemore_logs's testbed journald test: runs podman.
SHIFTED_SUITES := tests/unit/test_bemore_logs.py tests/unit/test_log_scan.py tests/unit/test_steps.py \
  tests/unit/test_contract.py tests/unit/test_runbook_docs.py tests/unit/test_tls_and_trend.py \
  tests/unit/test_report_html.py tests/unit/test_run_records.py tests/unit/test_runbook_clock.py \
  tests/unit/test_steps_rules.py tests/unit/test_plan_rules.py tests/unit/test_rate_rules.py tests/unit/test_http_steps.py
SHIFTED_TIMEOUT ?= 110
shifted: venv
	@command -v faketime >/dev/null || { echo "shifted: faketime is missing -- run: sudo apt-get install -y faketime" >&2; exit 2; }
	@for shift in '+400 days' '-30 days'; do echo "=== shifted clock: $$shift"; \
	  timeout $(SHIFTED_TIMEOUT) faketime "$$shift" pytest -q -p no:cacheprovider $(SHIFTED_SUITES) -k 'not testbed'; done

# Every role's scenario alone, MOLECULE_JOBS at a time (each in its own
# container, named after the role; its log in .cache/molecule-<role>.log, the
# end of it shown when it fails). `make molecule MOLECULE_ROLES="deploy report"` runs some.
MOLECULE_JOBS ?= 2
molecule: venv testbed
	pytest -q -n $(MOLECULE_JOBS) --dist loadgroup -m molecule --durations=0 tests/molecule \
	  $(if $(filter command line,$(origin MOLECULE_ROLES)),-k '$(subst $(space), or ,$(strip $(MOLECULE_ROLES)))')

# `make test` is what CI runs (.ci/run): 30 min at most on the 2-core CI
# machine. Each stage prints its time against its budget (README, "Checks of
# the project itself"); a stage over budget is the place to look, not a
# failure. Budgets (a fresh clone's .ci/run on the development machine, 15 %
# slower than CI, took 26.9 min: venv 0.7, checks 1.4, suites 24.3, shifted 0.5):
#   venv (fresh clone)                                   1.5 min
#   checks: lint, sanity, 2.20 venv, testbed (at once)   2.5 min
#   suites: pytest and the 23 Molecule scenarios (-n 3)   25 min
#   shifted-clock suites (two shifts)                      1 min
# Lint, sanity, the 2.20 virtualenv and the testbed image need nothing of
# one another: they run at once, each one's output printed whole when it
# ends (-O), and the first failure stops the run after the others end.
STAGE = start=$$(date +%s); rc=0; $(2) || rc=$$?; \
  echo "=== $(1): $$([ $$rc = 0 ] && echo passed || echo FAILED) in $$(( $$(date +%s) - start )) s (budget $(3) s)"; exit $$rc
test: venv deps
	@mkdir -p .cache
	@$(call STAGE,checks,$(MAKE) --no-print-directory -j 4 -O lint sanity venv-core-2.20 testbed,150)
	@# After the testbed: the scenarios and the unit suite's journald test run in its containers.
	@$(call STAGE,suites,$(MAKE) --no-print-directory suites,1500)
	@$(call STAGE,shifted,$(MAKE) --no-print-directory shifted,60)

# The fast tier: all of `make test` but Molecule, about 12 minutes; for a
# change that touches no role. CI runs the whole of `make test`.
test-fast: venv deps
	@mkdir -p .cache
	@$(call STAGE,checks,$(MAKE) --no-print-directory -j 4 -O lint sanity venv-core-2.20 testbed,150)
	@# After the testbed: the unit suite's journald test runs in its container.
	@$(call STAGE,pytest,$(MAKE) --no-print-directory unit,450)
	@$(call STAGE,shifted,$(MAKE) --no-print-directory shifted,60)

bench: venv
	@for b in tests/bench/bench_*.py; do echo "=== $$b"; $(PY) $$b; done

clean:
	-$(PY) sandbox/sandboxctl.py stop
	rm -rf .sandbox .state reports .cache .testbed-image .venv-core-2.20

# Mutation testing of the decision code (not part of `make test`): each of
# module_utils/bemore_steps.py, runbook_plan.py and safe_tree.py against the
# unit tests that cover it, one file at a time under `nice -n 10`; prints the
# score per file and writes the survivors to .cache/mutation/<file>/survivors.txt.
# MUTATION_FILES="safe_tree" runs one; MUTATION_JOBS mutants are tested at once;
# MUTATION_ARGS="--sample 37" tests a fifth of the mutants (see tools/mutation.py --help).
MUTATION_FILES ?=
# One at a time: mutmut 3.8.1 with --max-children 2 stopped twice here on a KeyError
# (it reaped a child it had not started).
MUTATION_JOBS ?= 1
MUTATION_ARGS ?=
.PHONY: mutation
mutation: venv
	$(PY) tools/mutation.py --max-children $(MUTATION_JOBS) $(MUTATION_ARGS) $(MUTATION_FILES)
