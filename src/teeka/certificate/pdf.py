"""The certificate as a PDF (fpdf2): the QR code and what it says, in Latin script."""

from __future__ import annotations

import io
from pathlib import Path

import segno
from fpdf import FPDF

from teeka.certificate.service import Certificate

_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
# A name in Devanagari: its glyphs, where the machine has them (Debian: fonts-noto-core).
# fpdf2 does not shape the script without uharfbuzz: conjuncts print as their parts.
_DEVANAGARI = Path("/usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf")


def certificate_pdf(c: Certificate, *, issuer: str) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(f"Vaccination certificate {c.certificate_id}")
    pdf.set_creator("Teeka")
    if _FONT.exists():
        pdf.add_font("DejaVu", fname=str(_FONT))
        family = "DejaVu"
        if _DEVANAGARI.exists():
            pdf.add_font("NotoDevanagari", fname=str(_DEVANAGARI))
            pdf.set_fallback_fonts(["NotoDevanagari"])
    else:  # core font: Latin-1 only
        family = "Helvetica"

    def line(text: str, size: int = 11) -> None:
        if family == "Helvetica":
            text = text.encode("latin-1", "replace").decode("latin-1")
        pdf.set_font(family, size=size)
        pdf.multi_cell(0, size * 0.6, text, new_x="LMARGIN", new_y="NEXT")

    pdf.add_page()
    line("Certificate of vaccination against COVID-19", 15)
    line(issuer, 10)
    pdf.ln(3)
    line(f"Name: {c.name}")
    line(f"Year of birth: {c.birth_year}    Reference ID: {c.reference_id}")
    line(f"Photo ID: {c.id_type} {c.id_number_masked}")
    for d in c.doses:
        line(f"Dose {d.dose} of {d.series}: {d.vaccine_name}, {d.day.strftime('%d-%m-%Y')}, "
             f"batch {d.batch}, {d.centre_en}")
    line(f"Certificate ID: {c.certificate_id}", 9)
    line(f"Issued {c.issued_at.strftime('%d-%m-%Y')}, valid until "
         f"{c.expires_at.strftime('%d-%m-%Y')} (India time)", 9)
    png = io.BytesIO()
    segno.make(c.hc1, error="q", micro=False).save(png, kind="png", scale=4, border=4)
    png.seek(0)
    pdf.image(png, w=80)
    line("Scan the QR code with any EU DCC / WHO DDCC verifier, or at /verify, to check it.", 9)
    return bytes(pdf.output())
