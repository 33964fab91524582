"""Check the built book as a reader sees it: every page opened in headless Chromium.

For each HTML page of the book under BUILD (default _build/html; genindex, search and the
_static/_sources/_images folders are skipped) the page is served from 127.0.0.1, opened in
headless Chromium (Debian's chromium + chromium-driver, driven by Selenium), and checked:

* every <img> loaded (decoded, with naturalWidth > 0), the figures inside widgets included;
* no Python traceback is shown: no "Traceback (most recent call last)" in the page text and no
  error output (myst-nb's `output traceback` / `output error` blocks, an Output widget's error);
* a page whose notebook stores widget state (the `application/vnd.jupyter.widget-state+json`
  script that myst-nb writes) shows widget views, and every widget view placeholder
  (`application/vnd.jupyter.widget-view+json` script) was rendered by the widget manager;
* every formula (Sphinx's `span.math` / `div.math`) was typeset by MathJax;
* a chapter page (notebooks/) has a Colab and a Binder launch button that open its own notebook;
* no file of the book itself (a script, a style sheet, an image) failed to load.

By default the browser reaches nothing but the local server (every other host name fails to
resolve), so the check shows what a reader without internet sees, and proves that the widget
JavaScript and MathJax come from the book itself; --allow-network lifts that.

Prints a table (page, images ok/total, widgets rendered/views, formulas typeset/total, problems)
and exits 1 if any page has a problem. --screenshot PATH saves a picture of the first rendered
widget.

    python tools/check_book.py [_build/html] [--screenshot widgets.png] [--page 05_saliency]
"""
from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import sys
import threading
import time
from pathlib import Path

SKIP_FILES = {"genindex.html", "search.html", "py-modindex.html"}
SKIP_DIRS = {"_static", "_sources", "_images", "_downloads", "jupyter_execute"}
TRACEBACK = "Traceback (most recent call last)"
STATE_SCRIPT = 'script[type="application/vnd.jupyter.widget-state+json"]'
VIEW_SCRIPT = 'script[type="application/vnd.jupyter.widget-view+json"]'

# Runs in the page: the widget views and what the widget manager made of them.
WIDGETS_JS = f"""
const views = document.querySelectorAll('{VIEW_SCRIPT}');
let rendered = 0;
for (const v of views) {{
  const area = v.previousElementSibling;     // libembed puts a div.widget-subarea before the tag
  if (area && area.classList.contains('widget-subarea')
      && area.querySelector('.jupyter-widgets, [class*="widget-"]')) rendered += 1;
}}
return {{
  state: document.querySelectorAll('{STATE_SCRIPT}').length,
  views: views.length,
  rendered: rendered,
  manager: typeof window.requirejs !== 'undefined'
           && window.requirejs.defined('@jupyter-widgets/html-manager/dist/libembed-amd'),
}};
"""

# Runs in the page: the formulas Sphinx marked for MathJax, and how many MathJax typeset.
MATH_JS = """
const math = document.querySelectorAll('span.math, div.math');
let typeset = 0;
for (const m of math) if (m.querySelector('mjx-container')) typeset += 1;
return {total: math.length, typeset: typeset, mathjax: typeof window.MathJax === 'object'
                                                        && typeof window.MathJax.typesetPromise === 'function'};
"""

# Runs in the page (async): every <img>, made eager, waited for and decoded.
IMAGES_JS = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
Promise.all(imgs.map(img => img.decode().then(() => img.naturalWidth > 0 || img.src.endsWith('.svg'),
                                              () => false)))
  .then(ok => done(imgs.map((img, i) => [ok[i], img.naturalWidth,
                                         (img.getAttribute('src') || '').slice(0, 120)])));
"""

# Runs in the page: what a reader sees of errors.
ERRORS_JS = f"""
const text = document.body ? document.body.innerText : '';
const blocks = document.querySelectorAll(
  '.cell_output .traceback, .cell_output .output.error, .cell_output .output.stderr,'
  + ' [data-mime-type="application/vnd.jupyter.error"],'
  + ' [data-mime-type="application/vnd.jupyter.stderr"]');
let errors = 0, stderr = 0;
for (const b of blocks) {{
  if (b.matches('.stderr, [data-mime-type="application/vnd.jupyter.stderr"]')) stderr += 1;
  else errors += 1;
}}
return {{traceback: text.includes('{TRACEBACK}'), errors: errors, stderr: stderr}};
"""


def find_pages(build: Path) -> list[Path]:
    pages = []
    for p in sorted(build.rglob("*.html")):
        rel = p.relative_to(build)
        if rel.parts[0] in SKIP_DIRS or rel.name in SKIP_FILES:
            continue
        pages.append(p)
    return pages


def redirect_target(page: Path) -> str | None:
    """The target of a page that only redirects (Jupyter Book's index.html), else None."""
    head = page.read_text(encoding="utf-8", errors="replace")[:2000]
    m = re.search(r'http-equiv="Refresh"\s+content="\d+;\s*url=([^"]+)"', head, re.I)
    if m and "<body" not in head.lower():
        return m.group(1)
    return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log on stderr
        pass


def serve(build: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def which(*names: str) -> str | None:
    for n in names:
        if found := shutil.which(n):
            return found
    return None


def make_driver(args):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = args.chromium or which("chromium", "chromium-browser", "google-chrome")
    driver_path = args.chromedriver or which("chromedriver")
    if not chromium or not driver_path:
        sys.exit("check_book: chromium and chromedriver are needed "
                 "(apt-get install chromium chromium-driver; `make check-book` does it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--hide-scrollbars", "--force-device-scale-factor=1",
              f"--window-size={args.width},{args.height}"):
        opts.add_argument(a)
    if not args.allow_network:
        # every host but the local server fails at once, as it does for a reader offline
        opts.add_argument("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver: Selenium Manager would otherwise try to download one
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(args.timeout)
    driver.set_script_timeout(args.timeout)
    return driver


def local_failures(driver, base: str) -> list[str]:
    """Files of the book (served from base) that the browser failed to load."""
    out = []
    for entry in driver.get_log("browser"):
        msg = entry.get("message", "")
        if entry.get("level") == "SEVERE" and msg.startswith(base) and "Failed to load" in msg:
            path = msg.split(" ", 1)[0][len(base):].split("?")[0]
            if path != "favicon.ico":  # asked for by the browser, not by the page
                out.append(path)
    return out


def check_page(driver, base: str, rel: str, timeout: float, widget_wait: float) -> dict:
    from selenium.common.exceptions import TimeoutException

    problems = []
    driver.get_log("browser")  # drop what the previous page logged late
    try:
        driver.get(base + rel)
    except TimeoutException:
        problems.append(f"page did not finish loading in {timeout:.0f} s")
    deadline = time.monotonic() + timeout
    while driver.execute_script("return document.readyState") != "complete":
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)

    # widgets: wait until the manager rendered every view, or widget_wait s after the page loaded
    deadline = min(deadline, time.monotonic() + widget_wait)
    w = driver.execute_script(WIDGETS_JS)
    while w["views"] and w["rendered"] < w["views"] and time.monotonic() < deadline:
        time.sleep(0.2)
        w = driver.execute_script(WIDGETS_JS)
    if w["state"]:
        if not w["views"]:
            problems.append("stores widget state but shows no widget view "
                            "(widget outputs removed from the page?)")
        elif w["rendered"] < w["views"]:
            why = "" if w["manager"] else " (the widget manager JavaScript did not load)"
            problems.append(f"{w['views'] - w['rendered']} of {w['views']} widget views "
                            f"not rendered{why}")
    elif w["views"]:
        problems.append(f"{w['views']} widget views but no widget state stored")

    # formulas: MathJax typesets after the page loaded; wait for it as for the widgets
    m = driver.execute_script(MATH_JS)
    while m["typeset"] < m["total"] and time.monotonic() < deadline:
        time.sleep(0.2)
        m = driver.execute_script(MATH_JS)
    if m["typeset"] < m["total"]:
        why = "" if m["mathjax"] else " (MathJax did not load)"
        problems.append(f"{m['total'] - m['typeset']} of {m['total']} formulas not typeset{why}")

    imgs = driver.execute_async_script(IMAGES_JS)
    bad = [src for ok, _, src in imgs if not ok]
    if bad:
        problems.append(f"{len(bad)} images not loaded: " + ", ".join(bad[:3])
                        + (" ..." if len(bad) > 3 else ""))

    if rel.startswith("notebooks/"):                   # launch buttons open this page's notebook
        notebook = "notebooks/" + rel.split("/", 1)[1].rsplit(".", 1)[0] + ".ipynb"
        hrefs = driver.execute_script("return Array.from(document.links, a => a.href)")
        for name, host in (("Colab", "colab.research.google.com/github/"), ("Binder", "mybinder.org/v2/gh/")):
            if not any(host in h and h.endswith(notebook) for h in hrefs):
                problems.append(f"no {name} launch button for {notebook}")

    e = driver.execute_script(ERRORS_JS)
    if e["traceback"]:
        problems.append("shows a Python traceback")
    if e["errors"]:
        problems.append(f"{e['errors']} error outputs")
    missing = [f for f in local_failures(driver, base)  # the broken <img> are counted above
               if not any(f.endswith(src.lstrip("./")) for src in bad)]
    if missing:
        problems.append(f"{len(missing)} book files failed to load: " + ", ".join(missing[:3]))
    return {"page": rel, "img_ok": len(imgs) - len(bad), "img_total": len(imgs), "widgets": w,
            "math": m, "stderr": e["stderr"], "problems": problems}


def screenshot(driver, base: str, rel: str, path: Path) -> None:
    """The page scrolled to its first rendered widget (or its top), saved as PNG."""
    driver.get(base + rel)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if driver.execute_script(WIDGETS_JS)["rendered"]:
            break
        time.sleep(0.2)
    driver.execute_script("""
        const area = document.querySelector('.widget-subarea');
        const cell = area && (area.closest('.cell') || area);
        if (cell) cell.scrollIntoView({block: 'start'});""")
    time.sleep(0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="_build/html", type=Path,
                    help="the built HTML book (default: _build/html)")
    ap.add_argument("--screenshot", type=Path,
                    help="save a PNG of the first page with a rendered widget, at the widget")
    ap.add_argument("--page", action="append", default=[],
                    help="check only pages whose path contains this (may be repeated)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per page (default 60)")
    ap.add_argument("--widget-wait", type=float, default=20,
                    help="seconds to wait for the widgets and formulas once a page has loaded (default 20)")
    ap.add_argument("--allow-network", action="store_true",
                    help="let the browser reach other hosts (by default only the local server)")
    ap.add_argument("--chromium", help="the browser binary (default: chromium on PATH)")
    ap.add_argument("--chromedriver", help="the driver binary (default: chromedriver on PATH)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args(argv)

    build = args.build.resolve()
    if not (build / "index.html").is_file() and not find_pages(build):
        print(f"check_book: no built book under {build} (make book)", file=sys.stderr)
        return 2
    pages = [p for p in find_pages(build)
             if not args.page or any(s in str(p.relative_to(build)) for s in args.page)]

    t0 = time.monotonic()
    server, base = serve(build)
    driver = make_driver(args)
    rows, notes = [], []
    try:
        for page in pages:
            rel = page.relative_to(build).as_posix()
            target = redirect_target(page)
            if target is not None:
                ok = (page.parent / target.split("#")[0]).is_file()
                notes.append(f"{rel}: redirects to {target}" + ("" if ok else " (MISSING)"))
                if not ok:
                    rows.append({"page": rel, "img_ok": 0, "img_total": 0,
                                 "widgets": {"state": 0, "views": 0, "rendered": 0},
                                 "math": {"total": 0, "typeset": 0}, "stderr": 0,
                                 "problems": [f"redirects to missing {target}"]})
                continue
            rows.append(check_page(driver, base, rel, args.timeout, args.widget_wait))
        if args.screenshot:
            shot = next((r["page"] for r in rows if r["widgets"]["rendered"]), None)
            shot = shot or next((r["page"] for r in rows if r["widgets"]["state"]), None)
            if shot:
                screenshot(driver, base, shot, args.screenshot)
                notes.append(f"screenshot of {shot}: {args.screenshot}")
            else:
                notes.append("no page stores widgets: no screenshot taken")
    finally:
        driver.quit()
        server.shutdown()

    width = max([len(r["page"]) for r in rows] + [4])
    print(f"{'page':<{width}}  {'images':>7}  {'widgets':>7}  {'formulas':>9}  problems")
    for r in rows:
        w, m = r["widgets"], r["math"]
        widgets = f"{w['rendered']}/{w['views']}" if w["state"] or w["views"] else "-"
        math = f"{m['typeset']}/{m['total']}" if m["total"] else "-"
        print(f"{r['page']:<{width}}  {r['img_ok']:>3}/{r['img_total']:<3}  {widgets:>7}  {math:>9}  "
              + ("; ".join(r["problems"]) or "ok"))
        if r["stderr"]:
            notes.append(f"{r['page']}: {r['stderr']} stderr outputs shown (warnings?)")
    for n in notes:
        print("note:", n)
    failed = [r for r in rows if r["problems"]]
    print(f"check_book: {len(rows)} pages in {time.monotonic() - t0:.0f} s "
          f"({'offline' if not args.allow_network else 'network allowed'}), "
          f"{len(rows) - len(failed)} ok, {len(failed)} with problems")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
