"""The repository stands alone: no tracked file reaches for a folder beside the checkout.

The format document, the worked examples and the public ad data all live inside the repository
(docs/, examples/, meta_ads_dagster_tests/data/). A reference to a sibling folder would work on
the machine it was written on and nowhere else, so every tracked text file is searched for one.
Outside a git checkout (an sdist, an unpacked archive) there is no list of tracked files: skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .repo_files import DEMO_SNAPSHOT_PATH, KAG_CSV, REPO_ROOT, SEED_SNAPSHOT_PATH, SNAPSHOT_FORMAT_DOC

# Built from pieces so that this file does not match its own patterns.
SIBLING = "sha" + "red"
ESCAPES = {
    "a relative path out of the checkout": re.compile(r"\.\.[/\\]+" + SIBLING + r"\b"),
    "a path built from a parent of the checkout": re.compile(
        r"(?:parents\[\d+\]|parent\.parent)\s*/\s*[\"']" + SIBLING + r"[\"'/]"
    ),
    "an absolute path to the sibling folder": re.compile(r"/work/" + SIBLING + r"\b"),
}


def tracked_files() -> list[Path]:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    try:
        top = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except subprocess.CalledProcessError:
        pytest.skip("not a git checkout (e.g. an sdist): no list of tracked files")
    if Path(top).resolve() != REPO_ROOT:
        pytest.skip(f"{REPO_ROOT} is not the root of its git checkout ({top})")
    listing = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode("utf-8")
    return [REPO_ROOT / name for name in listing.split("\0") if name]


def test_no_tracked_file_reaches_outside_the_repository():
    files = tracked_files()
    offenders = []
    for path in files:
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
            for what, pattern in ESCAPES.items():
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {what}: {line.strip()[:120]}")
    assert not offenders, "tracked files reference a folder outside the repository:\n" + "\n".join(offenders)


def test_the_patterns_catch_what_they_are_meant_to():
    bad = [
        "see ../" + SIBLING + "/contracts/x.md",
        'ROOT = Path(__file__).resolve().parents[2] / "' + SIBLING + '"',
        "BASE = HERE.parent.parent / '" + SIBLING + "/data'",
        "cp /work/" + SIBLING + "/data/x.csv .",
    ]
    good = ["shared_state = {}", "a shared instance", "../" + SIBLING + "ness", "examples/seed_worked_examples.json"]
    assert all(any(p.search(line) for p in ESCAPES.values()) for line in bad)
    assert not any(p.search(line) for p in ESCAPES.values() for line in good)


def test_the_files_the_tests_read_are_in_the_repository():
    for path in (SEED_SNAPSHOT_PATH, DEMO_SNAPSHOT_PATH, KAG_CSV, SNAPSHOT_FORMAT_DOC):
        assert path.is_file(), path
        assert path.resolve().is_relative_to(REPO_ROOT)
