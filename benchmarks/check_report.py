"""Open the study's HTML report in a real browser (headless Chromium) and check what a reader would see.

Run after `dvc repro` (`make check-report`). Chromium is driven over its DevTools protocol on a pipe
(``--remote-debugging-pipe``: no extra package), offline (every http(s) request is refused, as on a machine without
network), in a 1280-px-wide window. For ``reports/index.html`` it checks:

- the page rendered (its screenshot is not one flat colour), logged no console error and asked for nothing outside
  ``file://`` (the report works offline);
- nothing is wider than the window (no horizontal scrolling of the page or of a table);
- the main tables: one per pair of ``main_table.csv``, its systems as rows in the same order, every ``... %`` column
  in percent with one decimal and the 95 % interval in brackets, the EER equal to the CSV's;
- the claims of ``findings.csv`` in words, each with its verdicts (one per row);
- the A/B tables (one per FAR target, deployments as rows) and the ablation table (one row per setting);
- every ``<img>`` loaded, has a non-zero natural size and a caption;
- the provenance block: build date, commit, params.yaml digest, machine, and the wall time of every executed notebook;
- every link resolves to a file, and the stage pages linked are exactly the executed notebooks on disk, covering
  every notebook stage of dvc.yaml;
- no raw column names (``frr_at_far...``) and no "not produced yet".

Each executed notebook's HTML page must render, show its title, hold no error cell (papermill's "An Exception was
encountered"), load its images and not be wider than the window. (These pages are nbconvert's: they ask the network
for require.js and MathJax, which offline they do without; that is listed as a note, not a failure.)

``--screenshot PATH`` also writes a full-page screenshot of the index (PNG, 256 colours, about 0.6 MB for the
study's report; ``--max-height`` crops it). The one in docs/ after a full run:

    make check-report SCREENSHOT=docs/report-screenshot.png
    # = .venv/bin/python benchmarks/check_report.py --screenshot docs/report-screenshot.png

Needs Chromium (`sudo apt-get install -y chromium`). ``tests/test_check_report.py`` runs this script on a good and a
broken toy report, and skips that where Chromium is not installed (CI).
Exit status 0 when every check passes; 1 with one ``FAIL <page>: <reason>`` line per failed check; 2 when Chromium
or the report is missing.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import io
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # this checkout's nessa_lib, also without the editable install
WIDTH, HEIGHT = 1280, 900
MAX_PAGE_HEIGHT = 16000  # Chromium's largest texture side: the window never grows beyond it
PCT = re.compile(r"-?\d+\.\d( \[-?\d+\.\d, -?\d+\.\d\])?")  # "7.3 [6.7, 8.1]": percent, one decimal, interval
VERDICTS = {"holds", "does not hold", "inconclusive", "not testable"}
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


class Missing(Exception):
    """Chromium or the report is not there: nothing to check (exit status 2)."""


def find_browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    raise Missing("no Chromium found on PATH (Debian/Ubuntu: `sudo apt-get install -y chromium`)")


class DevTools:
    """One headless Chromium, driven over the DevTools protocol on fds 3/4 (``--remote-debugging-pipe``):
    JSON messages, each ending in a NUL byte."""

    def __init__(self, exe: str, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        child_in, self._w = os.pipe()
        self._r, child_out = os.pipe()
        # above fd 10, so that putting them on 3 and 4 in the child cannot overwrite one with the other
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (child_in, child_out)]
        os.close(child_in)
        os.close(child_out)

        def on_3_and_4():
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self.log = tempfile.TemporaryFile()
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-pipe",
               f"--user-data-dir={self.profile}", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--mute-audio", "--force-color-profile=srgb",
               # offline: every http(s) request goes to a proxy that is not there
               "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>", "about:blank"]
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                         preexec_fn=on_3_and_4, close_fds=False)
        finally:
            for fd in high:
                os.close(fd)
        self._buf = bytearray()
        self._id = 0
        self.events: list[dict] = []

    def _stderr_tail(self) -> str:
        self.log.seek(0)
        lines = [ln for ln in self.log.read().decode(errors="replace").splitlines() if ln.strip()]
        return " | ".join(lines[-3:])

    def _read(self, deadline: float) -> dict:
        start = 0
        while (end := self._buf.find(b"\0", start)) < 0:
            start = len(self._buf)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium exited ({self._stderr_tail()})")
                self._buf += chunk
        msg = bytes(self._buf[:end])
        del self._buf[:end + 1]
        return json.loads(msg)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method: str, session: str, timeout: float | None = None) -> dict:
        for m in self.events:
            if m.get("method") == method and m.get("sessionId") == session:
                return m
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = self._read(deadline)
            self.events.append(m)
            if m.get("method") == method and m.get("sessionId") == session:
                return m

    def evaluate(self, session: str, expression: str):
        res = self.send("Runtime.evaluate", session, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"script error: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # noqa: BLE001 - it is going away either way
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            os.close(fd)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# Run in the page: what a reader sees, as JSON. Each table knows its section (the <h2> above it) and heading (<h3>).
_READ_PAGE = r"""(() => {
  const text = e => e ? e.textContent.replace(/\s+/g, ' ').trim() : '';
  const de = document.documentElement, W = de.clientWidth;
  const top = e => { while (e.parentElement && e.parentElement !== document.body) e = e.parentElement; return e; };
  const heading = (e, tag) => {
    for (let p = top(e).previousElementSibling; p; p = p.previousElementSibling) {
      if (p.tagName === tag) return text(p);
      if (p.tagName === 'H2') return '';
    }
    return '';
  };
  const where = e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ')[0] : '')
                     + ' "' + text(e).slice(0, 40) + '"';
  const wide = [], seen = new Set();  // the outermost element of each overflow, not its descendants
  for (const e of document.body.querySelectorAll('*')) {
    if (seen.has(e.parentElement)) { seen.add(e); continue; }
    const r = e.getBoundingClientRect(), st = getComputedStyle(e);
    if (r.width && r.right > W + 1 && st.position !== 'fixed') {
      wide.push(where(e) + ` ends at ${Math.round(r.right)} px`); seen.add(e);
    } else if (/(auto|scroll)/.test(st.overflowX) && e.scrollWidth > e.clientWidth + 1) {
      wide.push(where(e) + ` scrolls sideways: ${e.scrollWidth} px of content in ${e.clientWidth} px`); seen.add(e);
    }
  }
  const section = e => heading(e, 'H2');
  return {
    title: text(document.querySelector('h1')),
    bodyText: document.body ? document.body.innerText : '',
    width: W, scrollWidth: de.scrollWidth, height: de.scrollHeight,
    wide: wide.slice(0, 5),
    images: [...document.images].map(i => ({src: i.getAttribute('src') || '', complete: i.complete,
      w: i.naturalWidth, h: i.naturalHeight, section: section(i),
      caption: text(i.closest('figure') && i.closest('figure').querySelector('figcaption'))})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    tables: [...document.querySelectorAll('table')].map(t => ({section: section(t), h3: heading(t, 'H3'),
      cls: t.className, caption: text(t.caption),
      header: [...t.querySelectorAll('thead th')].map(text),
      rows: [...t.querySelectorAll('tbody tr')].map(r => [...r.cells].map(text))})),
    claims: [...document.querySelectorAll('h3')].filter(h => section(h).startsWith("The paper's claims")).map(text),
    verdicts: [...document.querySelectorAll('li b[class], li span[class]')]
      .filter(e => section(e).startsWith("The paper's claims")).map(text),
  };
})()"""

_IMAGES_LOADED = """Promise.race([
  Promise.all([...document.images].map(i => i.complete ? 0 : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); }))),
  new Promise(r => setTimeout(r, 15000))]).then(() => document.fonts.ready).then(() => true)"""


def open_page(dt: DevTools, page: Path, screenshot: Path | None = None, max_height: int = 0,
              full: bool = False) -> dict:
    """Load ``page`` in a fresh tab 1280 px wide; return what :data:`_READ_PAGE` reads plus ``errors`` (console),
    ``requests`` (URLs outside file://) and ``pixels_std`` (of the screenshot)."""
    import numpy as np
    from PIL import Image

    target = dt.send("Target.createTarget", url="about:blank")["targetId"]
    sid = dt.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            dt.send(f"{domain}.enable", sid)
        dt.send("Emulation.setDeviceMetricsOverride", sid, width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                mobile=False)
        dt.send("Page.navigate", sid, url=page.as_uri())
        dt.wait_for("Page.loadEventFired", sid)
        seen = dt.evaluate(sid, _READ_PAGE)
        # The whole page in the window, so that lazy images load and the screenshot holds all of it; again once
        # they have loaded (the page grows by their height).
        height = HEIGHT
        for _ in range(3):
            want = min(max(seen["height"], HEIGHT), MAX_PAGE_HEIGHT) if full else HEIGHT
            if want != height:
                height = want
                dt.send("Emulation.setDeviceMetricsOverride", sid, width=WIDTH, height=height, deviceScaleFactor=1,
                        mobile=False)
            dt.evaluate(sid, _IMAGES_LOADED)
            seen = dt.evaluate(sid, _READ_PAGE)
            if seen["height"] == height or not full:
                break
        if screenshot is not None and max_height:
            height = min(height, max_height)
        shot = dt.send("Page.captureScreenshot", sid, format="png",
                       clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
        image = Image.open(io.BytesIO(base64.b64decode(shot["data"])))
        seen["pixels_std"] = float(np.asarray(image.convert("L"), dtype=float).std() / 255)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            image.convert("RGB").quantize(256).save(screenshot, optimize=True)
        # whatever the page logged or asked for
        errors, requests = [], []
        for m in dt.events:
            if m.get("sessionId") != sid:
                continue
            p = m.get("params", {})
            if m["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif m["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}".strip())
            elif m["method"] == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if not url.startswith(LOCAL_SCHEMES):
                    requests.append(url)
        seen["errors"] = [e.splitlines()[0][:200] for e in errors if e]
        seen["requests"] = list(dict.fromkeys(requests))
        return seen
    finally:
        dt.send("Target.closeTarget", targetId=target)
        dt.events = [m for m in dt.events if m.get("sessionId") != sid]


class Checks:
    def __init__(self, root: Path):
        self.root, self.failures = root, []
        self.asked: dict[str, set[Path]] = {}  # host -> notebook pages that asked it for something

    def __call__(self, ok: bool, page: Path, why: str) -> bool:
        if not ok:
            self.failures.append(f"FAIL {self.name(page)}: {why}")
            print(self.failures[-1], flush=True)
        return ok

    def name(self, page: Path) -> str:
        try:
            return str(page.relative_to(self.root))
        except ValueError:
            return str(page)


def _cells_in_percent(check: Checks, page: Path, table: dict, what: str) -> None:
    for j, head in enumerate(table["header"]):
        if not head.endswith("%"):
            continue
        bad = [r[j] for r in table["rows"] if j < len(r) and r[j] and not PCT.fullmatch(r[j])]
        check(not bad, page, f"{what}: column {head!r} not in percent with one decimal [interval]: {bad[:3]}")


def _section(tables: list[dict], start: str) -> list[dict]:
    return [t for t in tables if t["section"].startswith(start)]


def check_index(check: Checks, index: Path, seen: dict) -> None:
    import pandas as pd

    from nessa_lib.pipeline import layout, report

    root, reports = check.root, index.parent
    n_before = len(check.failures)
    evaluate = reports / "evaluate"
    text = seen["bodyText"]
    check(seen["pixels_std"] > 0.02, index, "the page is blank")
    check(not seen["errors"], index, f"console errors: {seen['errors'][:3]}")
    check(not seen["requests"], index, f"requests outside file:// (the report must work offline): "
                                       f"{seen['requests'][:3]}")
    check(seen["scrollWidth"] <= seen["width"] and not seen["wide"], index,
          f"wider than a {WIDTH}-px window (page {seen['scrollWidth']} px): {seen['wide']}")
    check("not produced yet" not in text, index, "a part of the report was not produced yet: "
          + ", ".join(re.findall(r"(\S+) not produced yet", text)))
    check("frr_at_far" not in text and "_lo" not in text and "_hi" not in text, index,
          "raw column names (frr_at_far..., *_lo, *_hi) in the report")
    for part in ("The paper's claims, as measured here", "Main table", "A/B case study", "Ablation", "Figures",
                 "Stages", "Provenance"):
        check(part in text, index, f"the report has no section {part!r}")

    # main tables: one per pair, systems as rows, percent with one decimal and intervals, EER equal to the CSV's
    csv = evaluate / "main_table.csv"
    main = _section(seen["tables"], "Main table")
    if check(csv.is_file(), index, f"{check.name(csv)} is missing"):
        df = pd.read_csv(csv)
        by_pair = {t["h3"]: t for t in main}
        for pair, sub in df.groupby("pair", sort=False):
            t = by_pair.get(str(pair))
            if not check(t is not None, index, f"no main table for pair {pair}"):
                continue
            check(t["header"][:2] == ["system", "EER %"], index, f"main table {pair}: header {t['header'][:3]}")
            check([r[0] for r in t["rows"]] == list(sub["system"].astype(str)), index,
                  f"main table {pair}: rows {[r[0] for r in t['rows']]} are not the systems "
                  f"{list(sub['system'])}")
            _cells_in_percent(check, index, t, f"main table {pair}")
            for r, eer in zip(t["rows"], sub["eer"]):
                shown = r[1].split(" ")[0] if len(r) > 1 else ""
                check(eer != eer or shown == f"{100 * eer + 0.0:.1f}", index,
                      f"main table {pair}, {r[0]}: EER shown {shown!r}, the CSV has {eer:.4f}")
            check(bool(t["caption"]), index, f"main table {pair} has no caption")
        check(len(main) == df["pair"].nunique(), index, f"{len(main)} main tables for {df['pair'].nunique()} pairs")

    # the claims in words, each with its verdicts
    csv = evaluate / "findings.csv"
    if check(csv.is_file(), index, f"{check.name(csv)} is missing"):
        df = pd.read_csv(csv)
        shown_claims = " ".join(seen["claims"])
        for claim in df["claim"].astype(str).unique():
            check(claim in shown_claims, index, f"claim not shown in words: {claim[:60]!r}")
        verdicts = Counter(v for v in seen["verdicts"] if v in VERDICTS)
        check(verdicts == Counter(df["verdict"].astype(str)), index,
              f"verdicts shown {dict(verdicts)} differ from findings.csv's {dict(Counter(df['verdict']))}")

    # A/B: one table per FAR target, deployments as rows; ablation: one row per setting
    csv = evaluate / "ab_case_study.csv"
    ab = _section(seen["tables"], "A/B case study")
    if check(csv.is_file(), index, f"{check.name(csv)} is missing"):
        df = pd.read_csv(csv)
        groups = [list(g["system"].astype(str)) for _, g in df.groupby("far_target", sort=True)]
        check([[r[0] for r in t["rows"]] for t in ab] == groups, index,
              f"A/B tables: rows {[[r[0] for r in t['rows']] for t in ab]}, expected {groups}")
        for t in ab:
            _cells_in_percent(check, index, t, "A/B table")
    csv = evaluate / "ablation.csv"
    ablation = _section(seen["tables"], "Ablation")
    if check(csv.is_file(), index, f"{check.name(csv)} is missing"):
        n = len(pd.read_csv(csv))
        check(len(ablation) == 1 and len(ablation[0]["rows"]) == n, index,
              f"ablation: {[len(t['rows']) for t in ablation]} table rows for {n} settings")
        for t in ablation:
            _cells_in_percent(check, index, t, "ablation table")
    for t in _section(seen["tables"], "Deployment check"):
        _cells_in_percent(check, index, t, "deployment check table")

    # figures: every image loaded, has a size and a caption
    figures = sorted((evaluate / "figures").glob("*.png"))
    shown = [i for i in seen["images"] if i["section"] == "Figures"]
    check(len(shown) == len(figures), index,
          f"{len(shown)} images shown for {len(figures)} figures in {check.name(evaluate / 'figures')}")
    for img in seen["images"]:
        check(img["complete"] and img["w"] > 0 and img["h"] > 0, index,
              f"image {img['src']!r} did not load (natural size {img['w']}x{img['h']})")
        check(bool(img["caption"]), index, f"image {img['src']!r} has no caption")

    # provenance: date, commit, params digest, machine; wall time of every executed notebook
    prov = [t for t in seen["tables"] if "prov" in t["cls"]]
    facts = {r[0]: r[1] for t in prov[:1] for r in t["rows"] if len(r) == 2}
    for key, pattern in (("built", r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"), ("commit", r"[0-9a-f]{7,40}( .*)?"),
                         ("params.yaml sha256", r"[0-9a-f]{12,64}"), ("machine", r".*CPU cores.*")):
        check(re.fullmatch(pattern, facts.get(key, "")) is not None, index,
              f"provenance: {key} is {facts.get(key)!r}")
    executed = report.executed_pages(root)
    times = {r[0]: r[1] for t in prov[1:2] for r in t["rows"] if len(r) == 2}
    for stage, item, _ in executed:
        label = f"{stage} · {item}" if item else stage
        check(re.fullmatch(r"\d+\.\d min", times.get(label, "")) is not None, index,
              f"provenance: wall time of {label} is {times.get(label)!r}")
    check(re.fullmatch(r"\d+\.\d min", times.get("total", "")) is not None, index, "provenance: no total wall time")

    # links: every one resolves to a file; the stage pages are exactly the executed notebooks, covering dvc.yaml's
    for ref in seen["links"] + [i["src"] for i in seen["images"]]:
        if ref.startswith(("#", "mailto:")):
            continue
        check(not re.match(r"^[a-z]+:", ref) and (reports / ref.split("#")[0]).is_file(), index,
              f"link {ref!r} does not resolve to a file")
    linked = {(reports / h).resolve() for h in seen["links"] if h.endswith(".html")}
    on_disk = {p.resolve() for _, _, p in executed}
    check(linked == on_disk, index, "stage pages linked and executed notebooks on disk differ: "
          f"not linked {sorted(check.name(p) for p in on_disk - linked)}, "
          f"linked but absent {sorted(check.name(p) for p in linked - on_disk)}")
    declared = _dvc_stages(root) & set(layout.STAGES)
    covered = {stage for stage, _, _ in executed}
    check(declared <= covered, index, f"no executed notebook for stage(s) {sorted(declared - covered)}")
    n_verdicts = sum(v in VERDICTS for v in seen["verdicts"])
    print(f"{'ok  ' if len(check.failures) == n_before else 'read'} {check.name(index)}: {len(main)} main tables, "
          f"{n_verdicts} verdicts, {len(ab)} A/B tables, {len(seen['images'])} figures, {len(linked)} stage pages, "
          f"{seen['scrollWidth']}x{seen['height']} px", flush=True)


def _dvc_stages(root: Path) -> set[str]:
    import yaml

    try:
        return set((yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages") or {})
    except OSError:
        return set()


def check_page(check: Checks, page: Path, seen: dict) -> None:
    n = len(check.failures)
    check(seen["pixels_std"] > 0.02, page, "the page is blank")
    check(bool(seen["title"]), page, "no title (<h1>)")
    check("An Exception was encountered" not in seen["bodyText"], page, "the executed notebook holds an error")
    check(seen["scrollWidth"] <= seen["width"], page, f"wider than a {WIDTH}-px window ({seen['scrollWidth']} px)")
    for img in seen["images"]:
        check(img["complete"] and img["w"] > 0 and img["h"] > 0, page, f"image {img['src'][:60]!r} did not load")
    for url in seen["requests"]:
        check.asked.setdefault(re.sub(r"^[a-z]+://([^/]+).*", r"\1", url), set()).add(page)
    if len(check.failures) == n:
        print(f"ok   {check.name(page)}: {seen['title'].rstrip('¶')[:60]}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="project whose reports/index.html to check")
    ap.add_argument("--screenshot", type=Path, help="also write a full-page screenshot of the index here (PNG)")
    ap.add_argument("--max-height", type=int, default=0, help="crop the screenshot to this many pixels")
    ap.add_argument("--index-only", action="store_true", help="skip the executed notebooks' own pages")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    index = root / "reports" / "index.html"
    try:
        if not index.is_file():
            raise Missing(f"{index} is missing; run `dvc repro` (or `dvc checkout`) first")
        browser = find_browser()
    except Missing as e:
        print(f"check_report: {e}", file=sys.stderr)
        return 2
    check = Checks(root)
    dt = DevTools(browser)
    try:
        seen = open_page(dt, index, screenshot=args.screenshot, max_height=args.max_height, full=True)
        check_index(check, index, seen)
        if args.screenshot:
            print(f"screenshot {args.screenshot} ({args.screenshot.stat().st_size / 1e3:.0f} kB)")
        if not args.index_only:
            from nessa_lib.pipeline import report

            for _, _, page in report.executed_pages(root):
                check_page(check, page, open_page(dt, page))
        print(f"check_report: {'FAILED' if check.failures else 'ok'}, {WIDTH}-px window, offline")
    except (RuntimeError, TimeoutError) as e:
        check(False, index, f"Chromium: {e}")
    finally:
        dt.close()
    for host, pages in sorted(check.asked.items()):
        print(f"note {len(pages)} notebook page(s) ask {host} for scripts (nbconvert's require.js, MathJax); "
              "offline they render without them")
    if check.failures:
        print(f"check_report: {len(check.failures)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
