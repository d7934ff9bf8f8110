"""Sample PDFs for the quick start, rendered from the project's own Markdown documentation."""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

logger = logging.getLogger(__name__)

SAMPLE_SOURCES: tuple[str, ...] = ("README.md", "docs/architecture.md", "docs/operations.md")

# A fixed creation date: the same Markdown gives the same bytes, hence the same SHA-256 (documents
# are deduplicated by content hash).
CREATION_DATE = datetime(2024, 1, 1, tzinfo=UTC)

MARGIN_MM = 20.0
BODY_FONT = "Helvetica"
MONO_FONT = "Courier"
BODY_SIZE = 10.5
CODE_SIZE = 8.5
HEADING_SIZES = {1: 18.0, 2: 15.0, 3: 12.5}
MINOR_HEADING_SIZE = 11.5
LIST_INDENT_MM = 6.0
# Start a heading on a new page when less than this much room is left under it.
HEADING_KEEP_MM = 25.0

# Characters outside latin-1 (the core fonts' encoding) and their ASCII stand-ins.
_TRANSLATION = str.maketrans(
    {
        "\u2192": "->",  # →
        "\u2190": "<-",  # ←
        "\u2194": "<->",  # ↔
        "\u21d2": "=>",  # ⇒
        "\u21d0": "<=",  # ⇐
        "\u2191": "^",  # ↑
        "\u2193": "v",  # ↓
        "\u2014": "--",  # —
        "\u2013": "-",  # –
        "\u2212": "-",  # −
        "\u2010": "-",  # ‐
        "\u2011": "-",  # non-breaking hyphen
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u2026": "...",  # …
        "\u2022": "*",  # •
        "\u2023": ">",  # ‣
        "\u2713": "v",  # ✓
        "\u2714": "v",  # ✔
        "\u2717": "x",  # ✗
        "\u2718": "x",  # ✘
        "\u2264": "<=",  # ≤
        "\u2265": ">=",  # ≥
        "\u2260": "!=",  # ≠
        "\u2248": "~",  # ≈
        "\u221e": "inf",  # ∞
        "\u2009": " ",  # thin space
        "\u200a": " ",  # hair space
        "\u202f": " ",  # narrow no-break space
        "\u200b": "",  # zero-width space
        "\ufeff": "",  # byte order mark
        "\u25bc": "v",  # ▼
        "\u25be": "v",  # ▾
        "\u25b2": "^",  # ▲
        "\u25b4": "^",  # ▴
        "\u25ba": ">",  # ►
        "\u25b6": ">",  # ▶
        "\u25c4": "<",  # ◄
        "\u25c0": "<",  # ◀
        "\u2502": "|",  # │
        "\u2500": "-",  # ─
        "\u253c": "+",  # ┼
        "\u2534": "+",  # ┴
        "\u252c": "+",  # ┬
        "\u251c": "+",  # ├
        "\u2524": "+",  # ┤
        "\u2514": "+",  # └
        "\u2518": "+",  # ┘
        "\u250c": "+",  # ┌
        "\u2510": "+",  # ┐
    }
)

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_EMPHASIS = re.compile(r"\*\*(.+?)\*\*|(?<!\w)__(.+?)__(?!\w)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def to_latin1(text: str) -> str:
    """``text`` with every character the core fonts can show; others become ASCII or ``?``."""
    text = text.translate(_TRANSLATION)
    if all(ord(char) < 256 for char in text):
        return text
    return "".join(_fallback(char) if ord(char) >= 256 else char for char in text)


def _fallback(char: str) -> str:
    if "\u2500" <= char <= "\u257f":  # other box-drawing characters
        name = unicodedata.name(char, "")
        if "HORIZONTAL" in name and "VERTICAL" not in name:
            return "-"
        if "VERTICAL" in name and "HORIZONTAL" not in name:
            return "|"
        return "+"
    # Accented letters and compatibility forms (ligatures, full-width) decompose to ASCII.
    decomposed = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode("ascii")
    if decomposed:
        return decomposed
    return char.encode("latin-1", "replace").decode("latin-1")


def strip_inline(text: str) -> str:
    """Drop inline Markdown markers: code ticks, bold, link and image syntax.

    Code spans keep their text verbatim (``__init__`` is not bold).
    """
    parts: list[str] = []
    position = 0
    for span in _CODE_SPAN.finditer(text):
        parts.append(_strip_prose(text[position : span.start()]))
        parts.append(span.group(2).strip())
        position = span.end()
    parts.append(_strip_prose(text[position:]))
    return "".join(parts)


def _strip_prose(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(lambda m: m.group(1) or m.group(2), text)


# --- Markdown blocks --------------------------------------------------------------------------


@dataclass
class _Block:
    kind: str  # heading, paragraph, item, code, table, quote, rule
    text: str = ""
    level: int = 0
    marker: str = ""
    lines: list[str] = field(default_factory=list)


def parse_blocks(markdown: str) -> list[_Block]:
    """Split Markdown into the blocks the renderer knows (a small, forgiving subset)."""
    blocks: list[_Block] = []
    paragraph: list[str] = []
    code: _Block | None = None
    fence = ""

    def end_paragraph() -> None:
        if paragraph:
            blocks.append(_Block("paragraph", text=" ".join(paragraph)))
            paragraph.clear()

    for raw in markdown.splitlines():
        line = raw.rstrip()
        if code is not None:
            if line.strip().startswith(fence):
                blocks.append(code)
                code = None
            else:
                code.lines.append(line.expandtabs(4))
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            end_paragraph()
            fence = fence_match.group(1)
            code = _Block("code")
            continue
        stripped = line.strip()
        if not stripped:
            end_paragraph()
            continue
        heading = _HEADING.match(line)
        if heading:
            end_paragraph()
            blocks.append(_Block("heading", text=heading.group(2), level=len(heading.group(1))))
            continue
        if stripped.startswith("|"):
            end_paragraph()
            if blocks and blocks[-1].kind == "table":
                blocks[-1].lines.append(stripped)
            else:
                blocks.append(_Block("table", lines=[stripped]))
            continue
        if _RULE.match(line):
            end_paragraph()
            blocks.append(_Block("rule"))
            continue
        item = _LIST_ITEM.match(line)
        if item:
            end_paragraph()
            indent = len(item.group(1).expandtabs(4))
            marker = item.group(2)
            marker = "-" if marker in "-*+" else marker
            blocks.append(_Block("item", text=item.group(3), level=indent // 2, marker=marker))
            continue
        if stripped.startswith(">"):
            end_paragraph()
            text = stripped.lstrip(">").strip()
            if blocks and blocks[-1].kind == "quote":
                blocks[-1].text += " " + text
            else:
                blocks.append(_Block("quote", text=text))
            continue
        if not paragraph and blocks and blocks[-1].kind == "item" and raw[:1].isspace():
            # An indented line right after a list item continues that item.
            blocks[-1].text += " " + stripped
            continue
        paragraph.append(stripped)
    end_paragraph()
    if code is not None:  # an unclosed fence runs to the end of the file
        blocks.append(code)
    return blocks


def _table_lines(rows: list[str]) -> list[str]:
    """Table rows as aligned monospace lines (the separator row becomes a dashed line)."""
    cells: list[list[str] | None] = []
    for row in rows:
        if _TABLE_SEPARATOR.match(row):
            cells.append(None)
            continue
        inner = row.strip()
        inner = inner[1:] if inner.startswith("|") else inner
        inner = inner[:-1] if inner.endswith("|") else inner
        cells.append([strip_inline(cell.strip()) for cell in inner.split("|")])
    columns = max((len(row) for row in cells if row is not None), default=0)
    widths = [0] * columns
    for row in cells:
        for index, cell in enumerate(row or []):
            widths[index] = max(widths[index], len(cell))
    lines: list[str] = []
    for row in cells:
        if row is None:
            lines.append("-+-".join("-" * width for width in widths))
        else:
            padded = row + [""] * (columns - len(row))
            lines.append(" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(padded)))
    return [line.rstrip() for line in lines]


# --- rendering --------------------------------------------------------------------------------


class _DocumentPDF(FPDF):
    """A4 pages with the document title in the header and the page number in the footer."""

    def __init__(self, *, title: str) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.doc_title = to_latin1(title)
        self.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        self.set_auto_page_break(auto=True, margin=MARGIN_MM)
        self.set_creation_date(CREATION_DATE)
        self.set_title(self.doc_title)

    def header(self) -> None:
        self.set_y(10)
        self.set_font(BODY_FONT, "I", 8)
        self.set_text_color(110)
        self.cell(0, 5, self.doc_title, align="L")
        self.set_draw_color(200)
        self.line(MARGIN_MM, 16, self.w - MARGIN_MM, 16)
        self.set_text_color(0)
        self.set_y(MARGIN_MM)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(BODY_FONT, "", 8)
        self.set_text_color(110)
        self.cell(0, 5, f"Page {self.page_no()}", align="C")
        self.set_text_color(0)

    def room_left(self) -> float:
        return self.page_break_trigger - self.get_y()


def _write(pdf: _DocumentPDF, text: str, *, height: float, x: float | None = None) -> None:
    if x is not None:
        pdf.set_x(x)
    pdf.multi_cell(0, height, to_latin1(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _render_block(pdf: _DocumentPDF, block: _Block) -> None:
    if block.kind == "heading":
        size = HEADING_SIZES.get(block.level, MINOR_HEADING_SIZE)
        if pdf.room_left() < HEADING_KEEP_MM and pdf.get_y() > MARGIN_MM + 1:
            pdf.add_page()
        pdf.ln(3 if block.level > 1 else 1)
        pdf.set_font(BODY_FONT, "B", size)
        _write(pdf, strip_inline(block.text), height=size * 0.5)
        pdf.ln(1.5)
    elif block.kind == "paragraph":
        pdf.set_font(BODY_FONT, "", BODY_SIZE)
        _write(pdf, strip_inline(block.text), height=5)
        pdf.ln(2)
    elif block.kind == "item":
        pdf.set_font(BODY_FONT, "", BODY_SIZE)
        x = pdf.l_margin + LIST_INDENT_MM * (block.level + 1)
        marker = "-" if block.marker == "-" else block.marker
        bullet_width = max(LIST_INDENT_MM, pdf.get_string_width(marker) + 2)
        pdf.set_x(x - LIST_INDENT_MM)
        pdf.cell(bullet_width, 5, marker, align="R" if marker != "-" else "C")
        _write(pdf, strip_inline(block.text), height=5, x=x - LIST_INDENT_MM + bullet_width)
        pdf.ln(1)
    elif block.kind == "quote":
        pdf.set_font(BODY_FONT, "I", BODY_SIZE)
        _write(pdf, strip_inline(block.text), height=5, x=pdf.l_margin + LIST_INDENT_MM)
        pdf.ln(2)
    elif block.kind in ("code", "table"):
        lines = block.lines if block.kind == "code" else _table_lines(block.lines)
        pdf.set_font(MONO_FONT, "", CODE_SIZE)
        pdf.set_fill_color(244, 244, 244)
        pdf.ln(1)
        for line in lines or [""]:
            pdf.multi_cell(
                0,
                3.8,
                to_latin1(line) or " ",
                align="L",
                fill=block.kind == "code",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
                wrapmode="CHAR",
            )
        pdf.ln(3)
    elif block.kind == "rule":
        pdf.ln(2)
        pdf.set_draw_color(200)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(3)


def render_markdown_pdf(*, source: Path, target: Path, title: str | None = None) -> int:
    """Render the Markdown file ``source`` to the PDF ``target``; return its page count.

    ``title`` goes in every page header and the PDF metadata; by default it is the first
    top-level heading, else the file name. The output depends only on the input (fixed creation
    date), so the same Markdown always gives the same bytes.
    """
    blocks = parse_blocks(source.read_text(encoding="utf-8"))
    if title is None:
        first = next((b for b in blocks if b.kind == "heading" and b.level == 1), None)
        title = strip_inline(first.text) if first is not None else source.stem
    pdf = _DocumentPDF(title=title)
    pdf.add_page()
    for block in blocks:
        _render_block(pdf, block)
    target.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(target))
    pages = pdf.pages_count
    logger.info("rendered %s -> %s pages=%d", source, target, pages)
    return pages


def make_sample_pdfs(*, base_dir: Path, out_dir: Path) -> list[tuple[Path, int]]:
    """Render each of :data:`SAMPLE_SOURCES` found under ``base_dir`` to ``out_dir/<stem>.pdf``.

    Missing sources are skipped; raises :class:`FileNotFoundError` when none exists. Returns
    ``(path, pages)`` for each PDF written, in the order of :data:`SAMPLE_SOURCES`.
    """
    sources = [base_dir / name for name in SAMPLE_SOURCES]
    present = [path for path in sources if path.is_file()]
    if not present:
        raise FileNotFoundError(
            f"No sample source found under {base_dir}: expected at least one of "
            + ", ".join(SAMPLE_SOURCES)
        )
    for path in sources:
        if not path.is_file():
            logger.info("sample source %s is missing; skipped", path)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[tuple[Path, int]] = []
    for source in present:
        target = out_dir / f"{source.stem}.pdf"
        written.append((target, render_markdown_pdf(source=source, target=target)))
    return written
