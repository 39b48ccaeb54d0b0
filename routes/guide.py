from pathlib import Path

from litestar import get
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from services.connectors.registry import Connectors

GUIDES = Path(__file__).resolve().parent.parent / "templates" / "guide"


@get("/guide/{system:str}")
async def system_guide(system: FromPath[str], connectors: NamedDependency[Connectors]) -> Template:
    """Last ned guide for <system>: a system's setup guide as a readable, printable page."""
    connector = connectors.describe(system)
    if connector.wording.guide_path != f"/guide/{system}":
        raise NotFoundException()
    text = (GUIDES / f"{system}.txt").read_text()
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return Template(
        "pages/guide.html", context={"paragraphs": paragraphs, "name": connector.display_name}
    )
