"""Scanned PDFs made on the spot: text or real PDF pages drawn as images, optionally degraded
like a cheap office scanner, saved as image-only PDFs (no text layer). Used by the OCR tests
and bench/ocr.py."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw, ImageFilter, ImageFont

# US Letter in inches.
PAGE_INCHES = (8.5, 11.0)


def text_image(lines: list[str], *, dpi: int = 200, font_pt: int = 14) -> Image.Image:
    """A white Letter page at ``dpi`` with ``lines`` printed in black from the top left."""
    width, height = (int(side * dpi) for side in PAGE_INCHES)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=font_pt * dpi // 72)
    margin = dpi
    line_height = int(font_pt * dpi / 72 * 1.5)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * line_height), line, fill=0, font=font)
    return image


def render_pages(data: bytes, *, dpi: int, pages: list[int]) -> list[Image.Image]:
    """Pages (0-based indexes) of a PDF drawn in grey at ``dpi`` (PDFium)."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument(data)
    try:
        return [
            pdf[index].render(scale=dpi / 72, grayscale=True).to_pil().copy() for index in pages
        ]
    finally:
        pdf.close()


def degrade(image: Image.Image, *, seed: int, dpi_factor: float = 0.75) -> Image.Image:
    """What a cheap scanner makes of a page: lower resolution, a slight rotation, speckles and
    blur (deterministic for a seed)."""
    rng = random.Random(seed)
    low = image.resize(
        (int(image.width * dpi_factor), int(image.height * dpi_factor)), Image.Resampling.BILINEAR
    )
    rotated = low.rotate(rng.uniform(-1.5, 1.5), resample=Image.Resampling.BILINEAR, fillcolor=255)
    pixels = rotated.load()
    for _ in range(rotated.width * rotated.height // 400):
        x, y = rng.randrange(rotated.width), rng.randrange(rotated.height)
        pixels[x, y] = rng.choice((0, 96, 255))
    return rotated.filter(ImageFilter.GaussianBlur(radius=0.6))


def image_pdf(images: list[Image.Image], *, dpi: float) -> bytes:
    """An image-only PDF, one page per image, each page the image's size at ``dpi``."""
    out = io.BytesIO()
    first, *rest = images
    first.save(out, "PDF", resolution=dpi, save_all=True, append_images=rest)
    return out.getvalue()


def scanned_text_pdf(lines: list[str], *, dpi: int = 200) -> bytes:
    """A one-page scanned PDF showing ``lines`` (an image, no text layer)."""
    return image_pdf([text_image(lines, dpi=dpi)], dpi=dpi)


def joined_pdf(pdfs: list[bytes]) -> bytes:
    """One PDF of the pages of ``pdfs`` in order (scanned pages among text pages, say)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for data in pdfs:
        writer.append(PdfReader(io.BytesIO(data)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
