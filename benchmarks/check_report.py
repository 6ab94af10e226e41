"""Open the study's HTML report in a real browser (headless Chromium) and check what a reader would see.

Run after `dvc repro` (`make check-report`). For ``reports/index.html`` and every executed notebook's HTML page it
takes a screenshot (``reports/screenshots/<page>.png``) and reads the DOM as the browser built it, then checks:

- the page rendered (the screenshot is not one flat colour);
- the index links every stage's page and every link resolves to a file;
- the index shows the main table with a row per system of every pair, and the figures it embeds exist;
- the index has the claims with their verdicts, the A/B and ablation tables, figure captions and the provenance
  block, and no raw column names;
- each notebook page shows its title and has no error cell (papermill's "An Exception was encountered").

Needs Chromium (`apt-get install chromium`); it is not part of the test suite, which must pass without it.
Exit status 1 on the first failed check, with the page and the reason.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.srcs, self.rows = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img" and a.get("src"):
            self.srcs.append(a["src"])
        if tag == "tr":
            self.rows += 1


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("check_report: no Chromium found (apt-get install chromium)")


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-")
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(browser: str, page: Path, out: Path, size=(1280, 1600)) -> np.ndarray:
    """Screenshot ``page`` into ``out`` and return its pixels."""
    import matplotlib.image as mpimg

    out.parent.mkdir(parents=True, exist_ok=True)
    _run(browser, f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.as_uri())
    if not out.is_file():
        raise AssertionError(f"{page}: Chromium wrote no screenshot")
    return mpimg.imread(out)


def dom(browser: str, page: Path) -> str:
    """The DOM of ``page`` after Chromium has loaded it."""
    res = _run(browser, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    if not res.stdout.strip():
        raise AssertionError(f"{page}: Chromium returned an empty DOM ({res.stderr[-300:]})")
    return res.stdout


def check(ok: bool, page: Path, why: str) -> None:
    if not ok:
        print(f"FAIL {page.relative_to(ROOT)}: {why}")
        sys.exit(1)


def main() -> int:
    import pandas as pd

    index = REPORTS / "index.html"
    if not index.is_file():
        sys.exit("check_report: reports/index.html is missing; run `dvc repro` first")
    browser = _browser()
    shots = REPORTS / "screenshots"
    pixels = screenshot(browser, index, shots / "index.png")
    check(float(pixels[..., :3].std()) > 0.02, index, "the screenshot is blank")
    parsed = _Links()
    parsed.feed(dom(browser, index))
    pages = [REPORTS / h for h in parsed.hrefs if h.endswith(".html")]
    stages = {p.relative_to(REPORTS).parts[0] for p in pages}
    check(stages == {"prepare_data", "train_encoder", "extract_embeddings", "fit_aligners", "evaluate"}, index,
          f"links cover stages {sorted(stages)}")
    for ref in parsed.hrefs + parsed.srcs:
        check((REPORTS / ref).is_file(), index, f"broken link {ref}")
    main_table = pd.read_csv(REPORTS / "evaluate" / "main_table.csv")
    check(parsed.rows >= len(main_table) + 1, index, f"{parsed.rows} table rows for {len(main_table)} systems")
    text = dom(browser, index)
    for part in ("The paper's claims, as measured here", "A/B case study", "Ablation", "Provenance",
                 "params.yaml sha256", "<figcaption>"):
        check(part in text, index, f"the report has no {part!r}")
    check("frr_at_far" not in text, index, "raw column names (frr_at_far...) in the report")
    print(f"ok   reports/index.html: {len(pages)} stage pages, {len(parsed.srcs)} figures, {parsed.rows} table rows")
    for page in pages:
        text = dom(browser, page)
        title = re.search(r"<h1[^>]*>(.*?)</h1>", text, flags=re.S)
        check(title is not None, page, "no title")
        check("An Exception was encountered" not in text, page, "the executed notebook holds an error")
        name = "_".join(page.relative_to(REPORTS).with_suffix("").parts)
        pixels = screenshot(browser, page, shots / f"{name}.png")
        check(float(pixels[..., :3].std()) > 0.02, page, "the screenshot is blank")
        print(f"ok   {page.relative_to(ROOT)}: {re.sub('<[^>]+>', '', title.group(1)).strip()[:60]}")
    print(f"screenshots in {shots.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
