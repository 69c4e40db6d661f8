"""The certificate as a PDF (fpdf2): the QR code and what it says, in Latin script."""

from __future__ import annotations

import io

import segno

from teeka.certificate.service import Certificate
from teeka.kit.pdf import document


def certificate_pdf(c: Certificate, *, issuer: str) -> bytes:
    pdf, line = document(f"Vaccination certificate {c.certificate_id}")
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
