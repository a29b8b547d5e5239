#!/usr/bin/env python3
"""Checks a ticketlab report.html in headless Chromium (standard library only).

Usage: check_report.py --browser PATH RUN_DIR_OR_REPORT_HTML [--screenshot FILE.png]

The report is checked twice:

1. Statically (html.parser): every table has at least one body row with text, the page loads
   no external resource (scripts, stylesheets, images, frames, SVG <image>/<use> from
   http(s):// or //), and every <img> that points at a file finds it.
2. In the browser: a copy of the page gets two small scripts (one at the very start that records
   errors and console.error calls, one on `load` that inspects the rendered page) and is loaded
   with `--dump-dom`. Problems reported: any console message Chromium logs for the page (the
   report uses no JavaScript, so any message means something is wrong, e.g. an SVG attribute
   that does not parse), uncaught errors, resources that fail to load, <img> elements that did
   not decode, inline <svg> figures with no size or no drawn elements, SVG references to missing
   ids, <figure> elements without an image, tables without rows or with only empty cells, a
   table running off the page outside a scrolling box, and a page wider than the window.

Exit status: 0 no problem; 1 problems (printed one per line); 2 usage error or the browser
could not be run.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

MARKER_ID = "ticketlab-check"

# Runs first: records errors and console.error calls that happen while the page loads.
HOOK_JS = """
<script>
window.__ticketlabErrors = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) {
    window.__ticketlabErrors.push('failed to load ' + String(t.src || t.href).slice(0, 120));
  } else {
    window.__ticketlabErrors.push('uncaught error: ' + e.message);
  }
}, true);
(function () {
  var original = console.error;
  console.error = function () {
    window.__ticketlabErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
</script>
"""

# Runs on `load`: inspects the rendered page and writes the result into the DOM as JSON.
CHECK_JS = """
<script>
window.addEventListener('load', function () {
  var problems = window.__ticketlabErrors.slice();
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img'));
  imgs.forEach(function (img, i) {
    if (!img.complete || img.naturalWidth === 0) {
      problems.push('image ' + (i + 1) + ' (' + String(img.getAttribute('src') || '').slice(0, 80) + ') did not load');
    }
  });
  var svgs = Array.prototype.slice.call(document.querySelectorAll('svg')).filter(function (s) {
    return !(s.parentElement && s.parentElement.closest('svg'));
  });
  svgs.forEach(function (s, i) {
    var r = s.getBoundingClientRect();
    var label = 'figure ' + (i + 1);
    var cap = s.closest('figure') && s.closest('figure').querySelector('figcaption');
    if (cap) { label += ' (' + cap.textContent.trim().slice(0, 60) + ')'; }
    if (r.width < 1 || r.height < 1) { problems.push(label + ' is not displayed (zero size)'); }
    var marks = s.querySelectorAll('path,polyline,polygon,line,rect,circle,ellipse').length;
    if (marks === 0) { problems.push(label + ' draws nothing'); }
    Array.prototype.forEach.call(s.querySelectorAll('use,image'), function (u) {
      var h = u.getAttribute('href') || u.getAttribute('xlink:href') || '';
      if (h.charAt(0) === '#' && !document.getElementById(h.slice(1))) {
        problems.push(label + ' refers to missing ' + h);
      }
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('figure'), function (f, i) {
    if (!f.querySelector('img,svg,object,picture,canvas')) {
      problems.push('<figure> ' + (i + 1) + ' holds no image');
    }
  });
  var tables = Array.prototype.slice.call(document.querySelectorAll('table'));
  tables.forEach(function (t, i) {
    var rows = Array.prototype.filter.call(t.querySelectorAll('tr'), function (tr) {
      return tr.querySelector('td');
    });
    if (rows.length === 0) {
      problems.push('table ' + (i + 1) + ' has no rows');
    } else if (rows.every(function (tr) {
      return Array.prototype.every.call(tr.querySelectorAll('td'), function (td) {
        return td.textContent.trim() === '';
      });
    })) {
      problems.push('table ' + (i + 1) + ' has only empty cells');
    }
    if (t.getBoundingClientRect().height < 1) {
      problems.push('table ' + (i + 1) + ' is not displayed');
    }
    // A table may be wider than the page only inside a box that scrolls it.
    var box = t.parentElement;
    var scrolls = box && ['auto', 'scroll'].indexOf(getComputedStyle(box).overflowX) >= 0;
    var page = document.body.getBoundingClientRect().right;
    if (!scrolls && t.getBoundingClientRect().right > page + 1) {
      problems.push('table ' + (i + 1) + ' runs off the page');
    }
  });
  if (document.documentElement.scrollWidth > document.documentElement.clientWidth + 1) {
    problems.push('the page is wider than the window (' +
      document.documentElement.scrollWidth + ' > ' + document.documentElement.clientWidth + ' px)');
  }
  var out = document.createElement('pre');
  out.id = 'MARKER';
  out.textContent = JSON.stringify({
    problems: problems, images: imgs.length, figures: svgs.length, tables: tables.length,
    title: document.title
  });
  document.body.appendChild(out);
});
</script>
""".replace("MARKER", MARKER_ID)

RESOURCE_ATTRS = {
    "img": ("src", "srcset"),
    "script": ("src",),
    "iframe": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
    "feimage": ("href", "xlink:href"),
}


def is_external(url: str) -> bool:
    u = url.strip().lower()
    return u.startswith(("http:", "https:", "//", "ftp:"))


class StaticScan(HTMLParser):
    """Collects tables, resource references and stylesheet links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []  # table -> body rows -> cell texts
        self._stack: list[list[list[str]]] = []
        self._cell: list[str] | None = None
        self._cell_is_td = False
        self.resources: list[tuple[str, str]] = []  # (tag, url)
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "table":
            self._stack.append([])
        elif tag == "tr" and self._stack:
            self._stack[-1].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = []
            self._cell_is_td = tag == "td"
        elif tag == "style":
            self._in_style = True
        elif tag == "link" and "stylesheet" in a.get("rel", "").lower():
            self.resources.append(("link", a.get("href", "")))
        for attr in RESOURCE_ATTRS.get(tag, ()):
            if attr in a:
                self.resources.append((tag, a[attr]))
        if "style" in a:
            self.styles.append(a["style"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._stack:
            if self._cell_is_td and self._stack[-1]:
                self._stack[-1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table" and self._stack:
            rows = [r for r in self._stack.pop() if r]
            self.tables.append(rows)
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_style:
            self.styles.append(data)


def static_problems(text: str, base: Path) -> list[str]:
    scan = StaticScan()
    scan.feed(text)
    scan.close()
    problems = []
    if not scan.tables:
        problems.append("the report has no table (the arms table is missing)")
    for i, rows in enumerate(scan.tables, 1):
        if not rows:
            problems.append(f"table {i} has no body rows")
        elif all(not any(c for c in r) for r in rows):
            problems.append(f"table {i} has only empty cells")
    for tag, url in scan.resources:
        if not url or url.startswith(("data:", "#")):
            continue
        first = url.split()[0]
        if is_external(first):
            problems.append(f"<{tag}> loads an external resource: {first[:120]}")
        elif tag in ("img", "image", "object", "embed", "iframe", "source"):
            path = (base / html.unescape(first).split("#")[0].split("?")[0]).resolve()
            if not path.is_file():
                problems.append(f"<{tag}> refers to a missing file: {first[:120]}")
    for css in scan.styles:
        for m in re.finditer(r"url\(\s*['\"]?([^'\")]+)", css):
            if is_external(m.group(1)):
                problems.append(f"a style loads an external resource: {m.group(1)[:120]}")
        for m in re.finditer(r"@import\s+(?:url\()?\s*['\"]?([^'\");]+)", css):
            problems.append(f"a style imports {m.group(1)[:120]}")
    return problems


def instrument(text: str, base: Path) -> str:
    """The page with the hook (first thing in <head>) and the checker (end of <body>)."""
    base_tag = f'<base href="{html.escape(base.as_uri())}/">'
    head = re.search(r"<head[^>]*>", text, re.I)
    if head:
        text = text[: head.end()] + base_tag + HOOK_JS + text[head.end():]
    else:
        text = base_tag + HOOK_JS + text
    end = list(re.finditer(r"</body\s*>", text, re.I))
    if end:
        i = end[-1].start()
        return text[:i] + CHECK_JS + text[i:]
    return text + CHECK_JS


def browser_args(browser: str, profile: str) -> list[str]:
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--window-size=1280,2000",
    ]


# Chromium logs console messages as `...:INFO:CONSOLE:12] "message", source: URL (12)` (older
# versions: `CONSOLE(12)]`).
CONSOLE_RE = re.compile(r'CONSOLE(?:[:(]\d+\)?)?\]\s*"(?P<msg>.*)", source: (?P<src>\S*)')


def console_messages(stderr: str, page: str, report: Path) -> list[str]:
    """Console messages in Chromium's log, with the checked copy's URL shown as the report."""
    out = []
    for line in stderr.splitlines():
        m = CONSOLE_RE.search(line)
        if m:
            src = m.group("src").replace(page, report.name)
            out.append(f"console: {m.group('msg')[:200]} (in {src[:80]})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--browser", required=True, help="the Chromium executable")
    ap.add_argument("target", help="a run directory or its report.html")
    ap.add_argument("--screenshot", metavar="FILE", help="also save a full-page PNG here")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per browser run")
    args = ap.parse_args()

    target = Path(args.target)
    report = target / "report.html" if target.is_dir() else target
    if not report.is_file():
        print(f"check_report: {report} not found (pass a run directory written by `ticketlab run`)",
              file=sys.stderr)
        return 2
    report = report.resolve()
    text = report.read_text(encoding="utf-8")
    problems = static_problems(text, report.parent)

    with tempfile.TemporaryDirectory(prefix="ticketlab-report-check-") as tmp:
        page = Path(tmp) / "report.check.html"
        page.write_text(instrument(text, report.parent), encoding="utf-8")
        cmd = browser_args(args.browser, str(Path(tmp) / "profile"))
        cmd += ["--virtual-time-budget=10000", "--dump-dom", page.as_uri()]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except FileNotFoundError:
            print(f"check_report: cannot run {args.browser}", file=sys.stderr)
            return 2
        except subprocess.TimeoutExpired:
            print(f"check_report: the browser did not finish within {args.timeout}s", file=sys.stderr)
            return 2
        m = re.search(rf'<pre id="{MARKER_ID}">(.*?)</pre>', run.stdout, re.S)
        if run.returncode != 0 or not m:
            tail = "\n".join(run.stderr.strip().splitlines()[-15:])
            print(f"check_report: the browser did not render the page (exit {run.returncode}):\n{tail}",
                  file=sys.stderr)
            return 2
        result = json.loads(html.unescape(m.group(1)))
        problems += result["problems"]
        problems += console_messages(run.stderr, page.as_uri(), report)
        if result["figures"] + result["images"] == 0:
            problems.append("the report has no figures")

        if args.screenshot:
            shot = Path(args.screenshot).resolve()
            cmd = browser_args(args.browser, str(Path(tmp) / "profile"))
            cmd[-1] = "--window-size=1280,6000"
            cmd += [f"--screenshot={shot}", report.as_uri()]
            subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            if not shot.is_file():
                problems.append(f"no screenshot was written to {shot}")

    # The same message can arrive from the hook and from Chromium's log; report it once.
    seen = set()
    unique = [p for p in problems if not (p in seen or seen.add(p))]
    name = report.relative_to(Path.cwd()) if report.is_relative_to(Path.cwd()) else report
    if unique:
        print(f"{name}: {len(unique)} problem(s):")
        for p in unique:
            print(f"  - {p}")
        return 1
    print(f"{name}: ok ({result['tables']} tables, {result['figures']} figures, "
          f"{result['images']} images; title {result['title']!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
