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

.PHONY: help venv demo test deps testbed lint unit molecule bench clean

help:
	@echo "make demo   - run playbooks/weekly.yml against the embedded sandbox"
	@echo "make test   - yamllint, ansible-lint, pytest and Molecule for every role"
	@echo "make bench  - run the benchmark scripts and print their ratios"

$(VENV)/.installed: requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

venv: $(VENV)/.installed

demo: venv
	@rm -rf .state/sandbox  # a freshly started simulator is not a restart worth reporting
	@$(PY) sandbox/sandboxctl.py start
	@rc=0; ansible-playbook playbooks/weekly.yml >.sandbox/demo.log 2>&1 || rc=$$?; \
	  $(PY) sandbox/sandboxctl.py stop >/dev/null; \
	  $(PY) tools/summary.py reports/weekly/latest.json; \
	  echo "full output: .sandbox/demo.log"; exit $$rc

# Debian packages the container tests need. Installed when running as root,
# otherwise named so a person can install them.
deps:
	@missing=""; for t in podman:podman runc:runc debootstrap:debootstrap; do \
	  command -v $${t%%:*} >/dev/null || PATH=$$PATH:/usr/sbin:/sbin command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing -- run: sudo apt-get install -y$$missing" >&2; exit 2; fi; fi

testbed: deps
	@containers/build-testbed.sh > .testbed-image
	@echo "testbed image: $$(cat .testbed-image)"

lint: venv
	yamllint --strict .
	ansible-lint --profile production -q

# Unit and integration suites on both cores (pytest-xdist); every test has
# its own simulator, ports, folders and schema.
PYTEST_JOBS ?= 2
unit: venv
	pytest -q -n $(PYTEST_JOBS) tests

# Every role's scenario, MOLECULE_JOBS at a time (each in its own container,
# named after the role); a failing scenario shows the end of its log.
MOLECULE_JOBS ?= 2
molecule: venv testbed
	@mkdir -p .cache; rm -f .cache/molecule-*.failed; \
	printf '%s\n' $(MOLECULE_ROLES) | xargs -P $(MOLECULE_JOBS) -I{} sh -c '\
	  start=$$(date +%s); \
	  if (cd roles/{} && BEMORE_TESTBED_IMAGE=$$(cat $(REPO)/.testbed-image) BEMORE_MOLECULE_INSTANCE={} \
	      molecule test > $(REPO)/.cache/molecule-{}.log 2>&1); then \
	    echo "=== molecule {}: passed in $$(( $$(date +%s) - start ))s"; \
	  else touch $(REPO)/.cache/molecule-{}.failed; \
	    echo "=== molecule {}: FAILED, last lines of .cache/molecule-{}.log:"; tail -n 40 $(REPO)/.cache/molecule-{}.log; fi'; \
	failed=$$(find .cache -name 'molecule-*.failed' | sed 's|.cache/molecule-||;s|.failed||' | tr '\n' ' '); \
	if [ -n "$$failed" ]; then echo "molecule failed for: $$failed"; exit 1; fi; \
	echo "molecule: $(words $(MOLECULE_ROLES)) roles passed"

test: venv deps
	@mkdir -p .cache
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory molecule

bench: venv
	@for b in tests/bench/bench_*.py; do echo "=== $$b"; $(PY) $$b; done

clean:
	-$(PY) sandbox/sandboxctl.py stop
	rm -rf .sandbox .state reports .cache .testbed-image
