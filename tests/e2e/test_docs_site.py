"""The documentation site as a reader sees it: built with mkdocs (--strict, as the test command
does), opened in headless Chromium, the generated reference tables show every name whole: a
line inside a code span breaks only after ``_ / . , & -`` or a space, never mid-word
(``EVENTFLEET_KAF`` / ``KA_URL`` was the complaint)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("reference/configuration/", "reference/error-codes/", "reference/http-api/")

# Each table code span's characters, laid out: a new line starting after a letter or digit that
# is followed by one (no break opportunity of ours between them) is a word split in two.
MID_WORD_BREAKS = """
const broken = [];
for (const code of document.querySelectorAll('.md-typeset table code')) {
  let top = null, before = '';  // the last laid-out character's line, the character before
  const walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const range = document.createRange();
      range.setStart(node, i); range.setEnd(node, i + 1);
      const box = range.getBoundingClientRect();
      const ch = node.data[i];
      if (box.width > 0) {
        if (top !== null && box.top > top + 2 && /[A-Za-z0-9]/.test(before)
            && /[A-Za-z0-9]/.test(ch)) {
          broken.push(code.textContent);
        }
        top = box.top;
      }
      before = ch;
    }
  }
}
return [...new Set(broken)];
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        yield session
    finally:
        session.quit()


@pytest.mark.parametrize("width", [1280, 900])
@pytest.mark.parametrize("page", PAGES)
def test_no_name_in_a_reference_table_is_split_mid_word(
    site: Path, browser: Any, page: str, width: int
) -> None:
    browser.set_window_size(width, 1000)
    browser.get((site / page / "index.html").as_uri())
    assert browser.find_elements("css selector", ".md-typeset table code"), page
    assert browser.execute_script(MID_WORD_BREAKS) == [], (page, width)


def test_the_http_reference_has_one_section_per_route_and_the_chat_page(
    site: Path, browser: Any
) -> None:
    browser.get((site / "reference/http-api/index.html").as_uri())
    headings = [h.text for h in browser.find_elements("css selector", ".md-typeset h3")]
    assert "GET /chat/{room_id}" in headings
    assert len(headings) == len(set(headings))  # no route twice (no copy per type)
    assert not any("/v1/order/" in h for h in headings)
