"""The appointment slip as a PDF (fpdf2). Latin text in DejaVu Sans where the machine has it."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def slip_pdf(*, confirmation_no: str, items: list[dict[str, object]]) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Teeka appointment slip {confirmation_no}")
    pdf.set_creator("Teeka")
    if _FONT.exists():
        pdf.add_font("DejaVu", fname=str(_FONT))
        family = "DejaVu"
    else:  # core font: Latin-1 only
        family = "Helvetica"

    def line(text: str, size: int = 11) -> None:
        if family == "Helvetica":
            text = text.encode("latin-1", "replace").decode("latin-1")
        pdf.set_font(family, size=size)
        pdf.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")

    pdf.add_page()
    line("Teeka - vaccination appointment slip", 14)
    line(f"Confirmation number: {confirmation_no}", 12)
    for item in items:
        pdf.ln(4)
        line(f"Name: {item['name']}")
        line(f"Reference ID: {item['reference_id']}    Secret code: {item['secret_code']}", 12)
        line(f"Centre: {item['centre_en']}")
        line(f"Date: {item['date']}   Slot: {item['slot']}   Dose: {item['dose']} "
             f"({item['vaccine']})   Status: {item['status']}")
    pdf.ln(4)
    line("Show the reference ID and the secret code at the centre. Nothing else is needed.", 9)
    return bytes(pdf.output())
