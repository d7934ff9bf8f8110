"""Sample PDFs rendered from Markdown: real text, deterministic bytes, the documented sources."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from pypdf import PdfReader

from documents.samples import make_sample_pdfs, render_markdown_pdf, to_latin1

MARKDOWN = """\
# Ingestion Overview

A paragraph with `inline code`, **bold words** and characters outside latin-1:
upload → queue — “quoted” text ✓ and a box │ line.

## Pipeline Stages

- parse the pages
- chunk the text
  1. measure tokens
  2. cut at sentences

```
def ingest(document_id):
    return run_pipeline(document_id)  # → result
```

| Stage | Seconds |
|-------|--------:|
| parse | 1.5     |
| embed | 12.0    |

### Closing Notes

Done.
"""


def write_markdown(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def pdf_words(path: Path) -> str:
    """The PDF's text with line breaks and runs of spaces collapsed (wrapping is layout)."""
    return " ".join(pdf_text(path).split())


def test_rendered_markdown_is_a_readable_pdf_with_its_text(tmp_path: Path) -> None:
    source = write_markdown(tmp_path, "overview.md", MARKDOWN)
    target = tmp_path / "overview.pdf"

    pages = render_markdown_pdf(source=source, target=target)

    reader = PdfReader(target)
    assert pages == len(reader.pages) >= 1
    text = pdf_text(target)
    for words in ("Ingestion Overview", "Pipeline Stages", "Closing Notes"):
        assert words in text
    assert "def ingest(document_id):" in text
    assert "return run_pipeline(document_id)" in text
    assert "parse the pages" in text
    assert "parse" in text and "12.0" in text
    assert "Page 1" in text


def test_non_latin1_characters_become_ascii_equivalents(tmp_path: Path) -> None:
    source = write_markdown(tmp_path, "overview.md", MARKDOWN)
    target = tmp_path / "overview.pdf"

    render_markdown_pdf(source=source, target=target)

    text = pdf_words(target)
    assert 'upload -> queue -- "quoted" text v and a box | line.' in text
    assert to_latin1("→ — “a” ’ … ✓ │ ─ ▼ ► ◄ ┴ ┬ └ ┘ ┌ ┐") == (
        '-> -- "a" \' ... v | - v > < + + + + + +'
    )


def test_inline_markers_are_stripped(tmp_path: Path) -> None:
    source = write_markdown(tmp_path, "overview.md", MARKDOWN)
    target = tmp_path / "overview.pdf"

    render_markdown_pdf(source=source, target=target)

    text = pdf_words(target)
    assert "with inline code, bold words and" in text
    assert "`" not in text and "**" not in text


def test_title_defaults_to_first_heading_and_is_in_the_metadata(tmp_path: Path) -> None:
    source = write_markdown(tmp_path, "overview.md", MARKDOWN)
    default_target = tmp_path / "default.pdf"
    titled_target = tmp_path / "titled.pdf"

    render_markdown_pdf(source=source, target=default_target)
    render_markdown_pdf(source=source, target=titled_target, title="Custom → Title")

    assert PdfReader(default_target).metadata.title == "Ingestion Overview"
    assert PdfReader(titled_target).metadata.title == "Custom -> Title"


def test_rendering_twice_gives_identical_bytes(tmp_path: Path) -> None:
    source = write_markdown(tmp_path, "overview.md", MARKDOWN)
    first, second = tmp_path / "first.pdf", tmp_path / "second.pdf"

    render_markdown_pdf(source=source, target=first)
    render_markdown_pdf(source=source, target=second)

    digest = hashlib.sha256(first.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(second.read_bytes()).hexdigest()


def test_long_input_gives_several_pages_with_page_numbers(tmp_path: Path) -> None:
    paragraphs = [
        f"Paragraph {n}: the worker parses, chunks and embeds the document, then writes its "
        "chunks in one transaction so readers never see a half-written set."
        for n in range(200)
    ]
    source = write_markdown(tmp_path, "long.md", "# Long Document\n\n" + "\n\n".join(paragraphs))
    target = tmp_path / "long.pdf"

    pages = render_markdown_pdf(source=source, target=target)

    reader = PdfReader(target)
    assert pages == len(reader.pages) >= 4
    last_page = reader.pages[-1].extract_text()
    assert f"Page {pages}" in last_page
    assert "Long Document" in last_page  # the title is in every page header
    assert "Paragraph 199:" in pdf_text(target)


def test_make_sample_pdfs_skips_missing_sources(tmp_path: Path) -> None:
    base_dir = tmp_path / "project"
    write_markdown(base_dir, "README.md", MARKDOWN)
    out_dir = tmp_path / "out" / "samples"

    written = make_sample_pdfs(base_dir=base_dir, out_dir=out_dir)

    assert [path for path, _pages in written] == [out_dir / "README.pdf"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["README.pdf"]
    path, pages = written[0]
    assert pages == len(PdfReader(path).pages)


def test_make_sample_pdfs_renders_sources_in_order(tmp_path: Path) -> None:
    base_dir = tmp_path / "project"
    write_markdown(base_dir, "docs/operations.md", "# Operations\n\nRun workers.\n")
    write_markdown(base_dir, "docs/architecture.md", "# Architecture\n\nData flow.\n")
    write_markdown(base_dir, "README.md", "# Readme\n\nQuick start.\n")

    written = make_sample_pdfs(base_dir=base_dir, out_dir=tmp_path / "out")

    assert [path.name for path, _pages in written] == [
        "README.pdf",
        "architecture.pdf",
        "operations.pdf",
    ]


def test_make_sample_pdfs_without_sources_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="README.md"):
        make_sample_pdfs(base_dir=tmp_path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()
