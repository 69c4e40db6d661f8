"""The appointment slip as a PDF (fpdf2): names and places as registered, Hindi ones shaped
(teeka.kit.pdf)."""

from __future__ import annotations

from teeka.kit.pdf import document


def slip_pdf(*, confirmation_no: str, items: list[dict[str, object]]) -> bytes:
    pdf, line = document(f"Teeka appointment slip {confirmation_no}")
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
