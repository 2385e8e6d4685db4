"""Small real documents for the retrieval tests, including PDFs written byte by byte (no PDF library needed)."""

from __future__ import annotations

from pathlib import Path


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A minimal valid PDF, one Helvetica text line per page, with a correct cross-reference table."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)
    return path


def write_encrypted_pdf(path: Path, source: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    with path.open("wb") as f:
        writer.write(f)
    return path


def write_docs(folder: Path) -> Path:
    """One document of each format, each about a different topic, so a search has one right answer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "garden.md").write_text(
        "# Garden guide\n\nGeneral notes on keeping a garden.\n\n## Watering\n\n"
        "Water tomato plants deeply twice a week in the early morning, so the leaves dry before night.\n\n"
        "## Pruning\n\nCut roses back by a third in late winter, just above an outward-facing bud.\n",
        encoding="utf-8",
    )
    (folder / "trains.html").write_text(
        "<html><head><title>Rail</title><script>var x = 'ignore me';</script></head><body>"
        "<h1>Railways</h1><p>The first public steam railway opened between Stockton and Darlington in 1825.</p>"
        "<h2>Gauges</h2><p>Standard gauge track is 1,435 millimetres between the rails.</p></body></html>",
        encoding="utf-8",
    )
    (folder / "notes.txt").write_text(
        "Volcanoes erupt when magma rises through cracks in the crust and gas pressure builds up.\n",
        encoding="utf-8",
    )
    write_pdf(folder / "report.pdf", ["Quarterly revenue grew by twelve percent.", "Coffee beans are roasted."])
    return folder
