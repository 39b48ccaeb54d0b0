"""Each system's setup guide, from one text source (`templates/guide/<system>.txt`): a page to
read and print (`/guide/<system>`) and a PDF to download (`/guide/<system>.pdf`).

The source is plain paragraphs separated by blank lines:

- the first paragraph is the title;
- a paragraph of one short line (under 70 characters) that does not end in "." is a heading;
- lines that all start "1. ", "2. " … are numbered steps, lines that all start "- " a list;
- lines that all start "$ " are a command, shown as typed;
- `[bilde: file.png | alt text]` or `[bilde: file.png | alt text | caption]` alone in a
  paragraph is a screenshot from `static/guide/` (made by tests/browser/test_guide_images.py);
  without a caption the alt text is shown under it;
- `**words**` inside a paragraph or a step is bold (the names of buttons and fields).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from markupsafe import Markup, escape

from services.connectors.registry import Connectors
from web.guards import READER

ROOT = Path(__file__).resolve().parent.parent
GUIDES = ROOT / "templates" / "guide"
IMAGES = ROOT / "static" / "guide"
FONTS = ROOT / "static" / "fonts"  # DejaVu, cut down to Latin and punctuation (LICENSE there)
IMAGE_URL = "/static/guide/"
PDF = "application/pdf"

Kind = Literal["heading", "paragraph", "steps", "bullets", "command", "figure"]
FIGURE = re.compile(r"^\[bilde:\s*([\w.-]+\.png)\s*\|\s*([^|\]]+?)\s*(?:\|\s*([^\]]+?)\s*)?\]$")
STEP = re.compile(r"^\d+\.\s+")
BOLD = re.compile(r"\*\*(.+?)\*\*")


@dataclass(frozen=True)
class Block:
    kind: Kind
    text: str = ""  # heading, paragraph (lines kept), command
    items: tuple[str, ...] = ()  # steps, bullets
    image: str = ""  # figure: a file in static/guide/
    alt: str = ""
    caption: str = ""
    number: int = 0  # figure: "Figur n"
    width: int = 0  # figure: the image's pixels
    height: int = 0


@dataclass(frozen=True)
class Guide:
    system: str
    title: str
    blocks: tuple[Block, ...]

    @property
    def images(self) -> list[str]:
        return [block.image for block in self.blocks if block.kind == "figure"]

    @property
    def file_name(self) -> str:
        return f"guide-{self.system}.pdf"


def parse(system: str, text: str) -> Guide:
    """The guide's blocks from its source (the rules in this module's docstring)."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    if not paragraphs:
        raise ValueError(f"the guide for {system} is empty")
    blocks: list[Block] = []
    figures = 0
    for paragraph in paragraphs[1:]:
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        figure = FIGURE.match(paragraph) if len(lines) == 1 else None
        if figure:
            figures += 1
            image, alt, caption = figure.groups()
            width, height = png_size(IMAGES / image)
            blocks.append(
                Block(
                    "figure",
                    image=image,
                    alt=alt,
                    caption=caption or alt,
                    number=figures,
                    width=width,
                    height=height,
                )
            )
        elif all(STEP.match(line) for line in lines):
            blocks.append(Block("steps", items=tuple(STEP.sub("", line) for line in lines)))
        elif all(line.startswith("- ") for line in lines):
            blocks.append(Block("bullets", items=tuple(line[2:].strip() for line in lines)))
        elif all(line.startswith("$ ") for line in lines):
            blocks.append(Block("command", text="\n".join(line[2:] for line in lines)))
        elif len(lines) == 1 and len(lines[0]) < 70 and not lines[0].endswith("."):
            blocks.append(Block("heading", text=lines[0]))
        else:
            blocks.append(Block("paragraph", text="\n".join(lines)))
    return Guide(system=system, title=paragraphs[0], blocks=tuple(blocks))


def png_size(path: Path) -> tuple[int, int]:
    """A PNG's width and height from its header; (0, 0) if the file is missing (the guide
    test says which); the page then shows the alt text."""
    try:
        with path.open("rb") as file:
            head = file.read(24)
    except FileNotFoundError:
        return 0, 0
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path.name} is not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@cache
def load(system: str) -> Guide:
    """The guide as deployed (it changes only with a deploy)."""
    return parse(system, (GUIDES / f"{system}.txt").read_text(encoding="utf-8"))


def inline(text: str) -> Markup:
    """A paragraph or step as HTML: escaped, **bold** as <strong>, line breaks kept."""
    html = BOLD.sub(r"<strong>\1</strong>", str(escape(text)))
    return Markup(html.replace("\n", "<br>\n"))


def runs(text: str) -> list[tuple[str, bool]]:
    """A paragraph or step as (text, bold) pieces, for the PDF."""
    pieces = BOLD.split(text)  # even indexes plain, odd ones bold
    return [(piece, index % 2 == 1) for index, piece in enumerate(pieces) if piece]


# --- The PDF -------------------------------------------------------------------------------

INK = (29, 36, 51)
MUTED = (93, 102, 120)
LINE = (200, 206, 216)
CODE_BG = (238, 241, 245)
MM_PER_PIXEL = 0.18  # a 1000 px screenshot across the 180 mm between the margins


class GuidePdf(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4", unit="mm")
        self.guide_title = title
        self.add_font("DejaVu", "", FONTS / "DejaVuSans.ttf")
        self.add_font("DejaVu", "B", FONTS / "DejaVuSans-Bold.ttf")
        self.add_font("DejaVuMono", "", FONTS / "DejaVuSansMono.ttf")
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.set_text_color(*INK)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("DejaVu", "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"ERP-integrasjon · {self.guide_title}", align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Side {self.page_no()} av {{nb}}", align="R")
        self.set_text_color(*INK)


def build_pdf(guide: Guide, *, compress: bool = True) -> bytes:
    """The guide as an A4 PDF: the same blocks as the page, the screenshots included."""
    pdf = GuidePdf(guide.title)
    pdf.compress = compress
    pdf.set_title(guide.title)
    pdf.set_subject("Oppsettsguide")
    pdf.set_author("ERP-integrasjon")
    pdf.set_creator("ERP-integrasjon")
    pdf.set_lang("nb")
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))  # the same bytes for the same guide
    pdf.add_page()
    width = pdf.epw
    pdf.set_font("DejaVu", "B", 20)
    pdf.multi_cell(width, 9, guide.title, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("DejaVu", "", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(width, 6, "Oppsettsguide for ERP-integrasjon", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.ln(3)
    for block in guide.blocks:
        if block.kind == "heading":
            if pdf.will_page_break(30):  # a heading stays with what follows it
                pdf.add_page()
            pdf.ln(3)
            pdf.set_font("DejaVu", "B", 13)
            pdf.multi_cell(width, 7, block.text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1)
        elif block.kind == "paragraph":
            for line in block.text.split("\n"):
                _write(pdf, runs(line))
            pdf.ln(2)
        elif block.kind in ("steps", "bullets"):
            for number, item in enumerate(block.items, start=1):
                marker = f"{number}." if block.kind == "steps" else "•"
                _write(pdf, runs(item), marker=marker)
                pdf.ln(0.8)
            pdf.ln(1.5)
        elif block.kind == "command":
            pdf.set_font("DejaVuMono", "", 8)
            pdf.set_fill_color(*CODE_BG)
            pdf.multi_cell(
                width,
                4.2,
                block.text,
                align="L",
                fill=True,
                padding=2,
                wrapmode="CHAR",
                new_x=XPos.LMARGIN,
                new_y=YPos.NEXT,
            )
            pdf.ln(3)
        elif block.kind == "figure":
            _figure(pdf, block)
    return bytes(pdf.output())


def _write(pdf: FPDF, pieces: list[tuple[str, bool]], marker: str = "") -> None:
    """Flowing text with bold pieces; with a marker (a step's number or a bullet) the text
    hangs beside it."""
    size, height, indent = 10.5, 5.6, 7 if marker else 0
    left = pdf.l_margin
    if marker:
        pdf.set_font("DejaVu", "B", size)
        pdf.set_x(left)
        pdf.cell(indent, height, marker)
        pdf.set_left_margin(left + indent)
    for text, bold in pieces:
        pdf.set_font("DejaVu", "B" if bold else "", size)
        pdf.write(height, text)
    pdf.ln(height)
    pdf.set_left_margin(left)
    pdf.set_x(left)


def _figure(pdf: FPDF, block: Block) -> None:
    scale = MM_PER_PIXEL
    width = min(pdf.epw, block.width * scale)
    height = block.height * width / block.width
    room = pdf.eph - 12  # a whole page less the caption
    if height > room:
        width, height = width * room / height, room
    if pdf.will_page_break(height + 10):
        pdf.add_page()
    pdf.ln(1)
    top = pdf.get_y()
    pdf.image(IMAGES / block.image, x=pdf.l_margin, y=top, w=width, h=height, alt_text=block.alt)
    pdf.set_draw_color(*LINE)
    pdf.set_line_width(0.2)
    pdf.rect(pdf.l_margin, top, width, height)
    pdf.set_y(top + height + 1.5)
    pdf.set_font("DejaVu", "", 8.5)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        pdf.epw,
        4.5,
        f"Figur {block.number}. {block.caption}",
        align="L",
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_text_color(*INK)
    pdf.ln(3)


_pdfs: dict[str, bytes] = {}


async def guide_pdf(guide: Guide) -> bytes:
    """The guide's PDF, built once per process (off the event loop: images take a moment)."""
    built = _pdfs.get(guide.system)
    if built is None:
        built = await anyio.to_thread.run_sync(build_pdf, guide)
        _pdfs[guide.system] = built
    return built


# --- The route -----------------------------------------------------------------------------


@get("/guide/{name:str}", opt=READER)
async def system_guide(name: FromPath[str], connectors: NamedDependency[Connectors]) -> Response:
    """Last ned guide for <system>: the page (/guide/tripletex) or its PDF
    (/guide/tripletex.pdf)."""
    system, as_pdf = (name[:-4], True) if name.endswith(".pdf") else (name, False)
    connector = connectors.describe(system)
    if connector.wording.guide_path != f"/guide/{system}":
        raise NotFoundException()
    guide = load(system)
    if as_pdf:
        return Response(
            content=await guide_pdf(guide),
            media_type=PDF,
            headers={"Content-Disposition": f'attachment; filename="{guide.file_name}"'},
        )
    context: dict[str, Any] = {
        "guide": guide,
        "name": connector.display_name,
        "inline": inline,
        "image_url": IMAGE_URL,
        "pdf_url": f"/guide/{system}.pdf",
    }
    return Template("pages/guide.html", context=context)
