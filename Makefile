# Thin wrappers around dev.py, which needs nothing but Python.
.PHONY: run test lint venv ci
run:
	python3 dev.py run
test:
	python3 dev.py test
lint:
	python3 dev.py lint
venv:
	python3 dev.py venv
ci:
	bash .ci/run
