# Shortcuts for people who have make; each target is one `python3 tasks.py` command.
PYTHON ?= python3

.PHONY: demo test dev
demo:
	$(PYTHON) tasks.py demo
test:
	$(PYTHON) tasks.py test
dev:
	$(PYTHON) tasks.py dev
