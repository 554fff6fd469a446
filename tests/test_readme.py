"""The README holds together: its contents list names every section, in order, and every
link in it reaches a heading (a section cut out by an edit breaks both)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections(text: str) -> list[str]:
    """The second-level headings outside fenced code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            found.append(line[3:])
    return found


def test_the_contents_list_every_section_after_it_in_order_and_every_link_reaches_one():
    text = README.read_text(encoding="utf-8")
    headings = sections(text)
    assert "Two commands" in headings and "Contents" in headings
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"^- \[(.+?)\]\(#(.+?)\)$", contents, flags=re.MULTILINE)
    after_contents = headings[headings.index("Contents") + 1:]
    assert [title for title, _ in links] == after_contents
    anchors = {github_anchor(heading) for heading in headings}
    assert [anchor for _, anchor in links if anchor not in anchors] == []


def test_the_anchor_rule_matches_the_readme_s_own_links():
    assert github_anchor("Serve it: an HTTP API and a page to draw on") == "serve-it-an-http-api-and-a-page-to-draw-on"
    assert github_anchor("Distortions, and defaults for every run length") == (
        "distortions-and-defaults-for-every-run-length")
    assert github_anchor("LeNet-5 as published") == "lenet-5-as-published"
