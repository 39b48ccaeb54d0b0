from pathlib import Path

from litestar import get
from litestar.response import Template

GUIDE = Path(__file__).resolve().parent.parent / "templates" / "guide" / "tripletex.txt"


@get("/guide/tripletex")
async def tripletex_guide() -> Template:
    """Last ned guide for Tripletex: the setup guide as a readable, printable page."""
    paragraphs = [p.strip() for p in GUIDE.read_text().split("\n\n") if p.strip()]
    return Template("pages/guide.html", context={"paragraphs": paragraphs})
