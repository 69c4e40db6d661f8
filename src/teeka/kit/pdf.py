"""A one-column A4 document (fpdf2) for slips and certificates: DejaVu Sans where the machine
has it (Latin-1 Helvetica otherwise), Noto Sans Devanagari for names and places written in
Hindi, and a `line` to write a paragraph at a size."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fpdf import FPDF

_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# Devanagari glyphs, where the machine has them (Debian: fonts-noto-core). A line with
# Devanagari in it is shaped (HarfBuzz, through uharfbuzz): conjuncts as one glyph, the i-sign
# before its consonant, the reph above; unshaped, the script prints as its parts in the wrong
# order. Lines without it are not shaped (a third cheaper, and byte for byte as before).
_DEVANAGARI = Path("/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf")
_SCRIPT = re.compile("[\u0900-\u097f\ua8e0-\ua8ff]")


def document(title: str) -> tuple[FPDF, Callable[..., None]]:
    """A new document with one page and the function that writes a line (`text`, `size`)."""
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creator("Teeka")
    if _FONT.exists():
        pdf.add_font("DejaVu", fname=str(_FONT))
        family = "DejaVu"
    else:  # core font: Latin-1 only
        family = "Helvetica"
    loaded = False  # the Devanagari font, read at its first line (a slip in Latin letters
    # only is not slowed by parsing it)

    def line(text: str, size: int = 11) -> None:
        nonlocal loaded
        if family == "Helvetica":
            text = text.encode("latin-1", "replace").decode("latin-1")
        hindi = family == "DejaVu" and _DEVANAGARI.exists() and _SCRIPT.search(text) is not None
        if hindi and not loaded:
            pdf.add_font("NotoDevanagari", fname=str(_DEVANAGARI))
            pdf.set_fallback_fonts(["NotoDevanagari"])
            loaded = True
        pdf.set_font(family, size=size)
        pdf.set_text_shaping(hindi)
        pdf.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")

    pdf.add_page()
    return pdf, line
