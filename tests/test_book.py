"""The whole pipeline, as CI runs it: every chapter executes with ``profile=smoke`` through the
runner (fresh kernel, cache off) into a temporary folder, the HTML book is built from those
executions with warnings as errors, and headless Chromium opens every page at 1400 px and checks
it reads (:func:`reprolib.book.runner.browser_check`: no table wider than the column, no cut
cell, no emoji-only verdict, no local path or repr, no dangling in-page link).

The committed ``cpu`` executions in ``book/chapters`` are never touched. Screenshots go to
``build/screenshots/``.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from reprolib.book import runner

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """Every chapter executed with the smoke profile, without the cache, one at a time."""
    if not os.environ.get("REPROLIB_DATA_MIRROR"):
        pytest.skip("REPROLIB_DATA_MIRROR is not set; the chapters need MNIST and CIFAR-10")
    out = tmp_path_factory.mktemp("smoke-chapters")
    before = _digest(runner.EXECUTED_DIR)
    runner.run_all("smoke", out=out, cache=False, progress=False)
    assert _digest(runner.EXECUTED_DIR) == before, "a smoke run changed book/chapters"
    return out


@pytest.fixture(scope="module")
def site(smoke, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    return runner.build(smoke, output=out, expected_profile="smoke", quiet=True)


def test_every_chapter_executed_with_provenance(smoke):
    for name in runner.chapter_names():
        path = smoke / f"{name}.ipynb"
        assert path.is_file(), f"{name} was not executed"
        nb = json.loads(path.read_text())
        info = nb["metadata"]["reprolib"]
        assert info["source_sha256"] == runner.source_hash(name)
        prov = info["provenance"]
        assert prov["profile"] == "smoke" and prov["wall_seconds"] > 0
        for key in ("reprolib_commit", "torch_version", "device", "hardware"):
            assert prov[key], key
        assert set(prov["parameters"]) == set(runner.spec(name).names)
        tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
        summary = next((i for i, t in enumerate(tags) if runner.SUMMARY_TAG in t), 0)  # else: under the title
        assert runner.PROVENANCE_TAG in tags[summary + 1] or runner.PROVENANCE_TAG in tags[1], \
            f"{name}: no provenance block under the summary (or the title)"
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", f"{name}: error output"
                assert out.get("name") != "stderr", f"{name}: stderr output: {out.get('text')}"
    assert runner.check(smoke, expected_profile="smoke") == []


def test_site_has_every_part(site):
    for name in runner.chapter_names():
        page = site / "chapters" / f"{name}.html"
        assert page.is_file()
        assert (site / "_sources" / "chapters" / f"{name}.ipynb").is_file(), "no notebook to download"
        assert f"_sources/chapters/{name}.ipynb" in page.read_text(), "no download link"
    # every document has its part: the executed chapter, or the placeholder page until it lands
    toc = yaml.safe_load((runner.BOOK_DIR / "_toc.yml").read_text())
    documents = [part for part in toc["parts"] if part["caption"][:3].isdigit()]
    assert [part["caption"][:3] for part in documents] == ["000", "001", "002", "003", "004"]
    for part in documents:
        for entry in part["chapters"]:
            assert (site / f"{entry['file']}.html").is_file(), f"{part['caption']}: no page {entry['file']}"
    for name in runner.chapter_names():
        page = (site / "chapters" / f"{name}.html").read_text()
        assert "Run this page" in page and f"{name}.py" in page, f"{name}: no 'Run this page' box with the .py"
        assert "injected-parameters" not in page and "# Parameters" not in page, f"{name}: papermill's cell shows"
        assert "Provenance of this page" in page
    # the front page's scoreboard: one row per part, built from the executed chapters
    front = (site / "chapters" / f"{runner.FIRST}.html").read_text()
    for part in documents:
        assert part["caption"].split(" (")[0].replace("&", "&amp;") in front, f"scoreboard lacks {part['caption']}"
    for note in sorted((runner.BOOK_DIR / "notes").glob("*.md")):
        assert (site / "notes" / f"{note.stem}.html").is_file(), f"notes page {note.stem} not built"
    bib = (site / "bibliography.html").read_text()
    for author in ("Tabacof", "Balda", "Sharma", "Ozbulak", "Matyasko", "Carlini", "Goodfellow"):
        assert author in bib
    api = "".join(p.read_text() for p in (site / "api").glob("*.html"))
    for obj in ("reprolib.book.params.Spec", "reprolib.cache.cached", "reprolib.models.load",
                "reprolib.book.plotting.image_grid", "reprolib.attacks.core.AttackResult"):
        assert f'id="{obj}"' in api, f"{obj} is not in the API reference"
    assert "Traceback" not in api


def _need_browser() -> None:
    if shutil.which(runner.BROWSER) or Path(runner.BROWSER).is_file():
        return
    if os.environ.get("CI") or os.environ.get("REPROLIB_REQUIRE_DATA"):
        pytest.fail(f"{runner.BROWSER} is missing; `apt-get install -y chromium` (make setup does)")
    pytest.skip(f"{runner.BROWSER} is missing; `apt-get install -y chromium` to run the browser test")


def test_every_page_renders_in_chromium(site, smoke):
    _need_browser()
    pages = runner.site_pages(site)  # chapters, notes, parts, API reference, bibliography
    assert {f"chapters/{n}" for n in runner.chapter_names()} <= set(pages)
    assert {f"notes/{p.stem}" for p in (runner.BOOK_DIR / "notes").glob("*.md")} <= set(pages)
    report = runner.browser_check(site, pages=pages, screenshots=SCREENSHOTS, chapters_dir=smoke)
    bad = {page: problems for page, problems in report.items() if problems}
    assert not bad, bad
    for page in pages:
        assert (SCREENSHOTS / (page.replace("/", "_") + ".png")).is_file()
