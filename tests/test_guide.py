"""The setup guides: our own text for each system, with the screenshots the browser tests make
(tests/browser/test_guide_images.py), as a printable page and as a PDF to download."""

from __future__ import annotations

import re

import pytest
from fontTools.ttLib import TTFont
from litestar.testing import AsyncTestClient

from routes import guide as guide_route
from routes.guide import FONTS, GUIDES, IMAGES, build_pdf, inline, load, parse

SYSTEMS = ["tripletex", "poweroffice", "saft"]
# The product we rebuild came with its maker's guide (../shared/seed/): its company name and
# web address are not ours and must not come back.
VENDOR = ("sticos",)
# The only web address a guide may show is a placeholder for the app's own.
URL = re.compile(r"https?://(?!<adressen til appen>)\S+")


# --- The page ------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("system", SYSTEMS)
async def test_each_guide_is_a_page_with_its_pictures_and_a_pdf_button(
    client: AsyncTestClient, system: str
) -> None:
    guide = load(system)
    page = await client.get(f"/guide/{system}")
    assert page.status_code == 200
    html = page.text
    assert f"<h1>{guide.title}</h1>" in html
    button = f'<a class="button primary" href="/guide/{system}.pdf" download>Last ned som PDF</a>'
    assert button in html
    figures = re.findall(r'<img src="(/static/guide/[\w.-]+\.png)" alt="([^"]+)"', html)
    assert len(figures) == len(guide.images) >= 2
    for number, (src, alt) in enumerate(figures, start=1):
        assert len(alt) > 40  # says what is on the picture
        assert f"<figcaption>Figur {number}. " in html
        image = await client.get(src)
        assert image.status_code == 200, src
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
    # Steps as a numbered list, the names of buttons in bold, what the user types escaped.
    assert "<ol><li>" in html
    assert "<strong>Ny integrasjon</strong>" in html


@pytest.mark.anyio
async def test_tripletex_guide_explains_the_key_the_switches_and_the_fixes(
    client: AsyncTestClient,
) -> None:
    text = (await client.get("/guide/tripletex")).text
    for fact in [
        # the key in Tripletex: the accountant's key with client access, or the office's own
        "Regnskapskontorets brukernøkkel",
        "Klienttilgang",
        "Standardrettigheter for regnskapsførere",
        "Nøkkel for regnskapskontorets eget selskap",
        # our app, in the order the accountant meets it
        "<strong>Ny integrasjon</strong>",
        "<strong>Egen brukernøkkel</strong>",
        "<strong>Opprett</strong>",
        "<strong>AKTIV</strong>",
        "<strong>Aktiver alle</strong>",
        "<strong>SEND DATA</strong>",
        "<strong>FULL SYNKRONISERING</strong>",
        "<strong>SLETT KONTOER</strong>",
        "<strong>Oppdater klientliste</strong>",
        "<strong>Endre system</strong>",
        "<strong>Slett system</strong>",
        "Nye tall hentet",
        # a client that has not given the office API access
        "<strong>Regnskap → Innstillinger → Regnskapsførers tilgang</strong>",
        "<strong>Sjekk tilgang på nytt</strong>",
    ]:
        assert fact in text, fact
    # Særskriving the app's own text avoids.
    assert "Tripletex integrasjon" not in text and "API tilgang" not in text


@pytest.mark.database_agnostic
@pytest.mark.parametrize("system", SYSTEMS)
def test_guides_name_no_other_vendor_and_no_web_address(system: str) -> None:
    source = (GUIDES / f"{system}.txt").read_text(encoding="utf-8")
    for name in VENDOR:
        assert name not in source.casefold()
    assert URL.findall(source) == []


@pytest.mark.anyio
async def test_the_printed_page_names_no_other_vendor(client: AsyncTestClient) -> None:
    for system in SYSTEMS:
        html = (await client.get(f"/guide/{system}")).text.casefold()
        for name in VENDOR:
            assert name not in html, system


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/guide/ukjent", "/guide/ukjent.pdf", "/guide/fiken.pdf"])
async def test_a_system_without_a_guide_is_not_found(client: AsyncTestClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


# --- The PDF -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("system", SYSTEMS)
async def test_the_pdf_is_a_download_with_the_pictures_built_once(
    client: AsyncTestClient, system: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[str] = []

    def counted(guide: guide_route.Guide) -> bytes:
        builds.append(guide.system)
        return build_pdf(guide)

    monkeypatch.setattr(guide_route, "_pdfs", {})
    monkeypatch.setattr(guide_route, "build_pdf", counted)
    response = await client.get(f"/guide/{system}.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == f'attachment; filename="guide-{system}.pdf"'
    pdf = response.content
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    guide = load(system)
    assert pdf.count(b"/Subtype /Image") == len(set(guide.images))
    assert pdf.count(b"/FontFile2") >= 2  # the fonts travel with it: æøå on any machine
    assert f"/Title ({guide.title})".encode() in pdf
    assert 20_000 < len(pdf) < 2_000_000
    again = await client.get(f"/guide/{system}.pdf")
    assert again.content == pdf
    assert builds == [system]


@pytest.mark.database_agnostic
@pytest.mark.parametrize("system", SYSTEMS)
def test_the_pdf_holds_the_guide_text(system: str) -> None:
    guide = load(system)
    text = pdf_text(build_pdf(guide, compress=False))
    squashed = " ".join(text.split())
    assert guide.title in squashed
    for block in guide.blocks:
        if block.kind == "heading":
            assert block.text in squashed, block.text
        if block.kind == "figure":
            assert f"Figur {block.number}. {block.caption}" in squashed
    assert "**" not in squashed  # bold is bold, not asterisks
    pages = len(re.findall(r"Side \d+ av \d+", squashed))
    assert pages >= 2 and f"Side {pages} av {pages}" in squashed  # numbered "n av N"
    if system == "tripletex":
        assert "Standardrettigheter for regnskapsførere" in squashed
        assert "Regnskap → Innstillinger → Regnskapsførers tilgang" in squashed


@pytest.mark.database_agnostic
def test_the_fonts_have_every_character_the_guides_use() -> None:
    """The PDF's fonts are cut down to Latin and punctuation: a guide that uses a character
    outside them would print a blank there."""
    sans = set(TTFont(FONTS / "DejaVuSans.ttf").getBestCmap())
    bold = set(TTFont(FONTS / "DejaVuSans-Bold.ttf").getBestCmap())
    mono = set(TTFont(FONTS / "DejaVuSansMono.ttf").getBestCmap())
    for system in SYSTEMS:
        guide = load(system)
        for block in guide.blocks:
            text = block.text + "".join(block.items) + block.caption
            font = mono if block.kind == "command" else sans & bold
            missing = {c for c in text if c != "\n" and ord(c) not in font}
            assert not missing, (system, sorted(missing))
    assert (FONTS / "LICENSE-DejaVu.txt").is_file()


# --- The source format ---------------------------------------------------------------------


@pytest.mark.database_agnostic
def test_the_guide_format() -> None:
    guide = parse(
        "test",
        "Tittel\n\nEn overskrift\n\nEn setning med **Knapp** og <b>.\n\n"
        "1. Først\n2. Så **Lagre**\n\n- Ett\n- To\n\n"
        "$ curl -X POST https://<adressen til appen>\n\n"
        f"[bilde: {load('tripletex').images[0]} | Det som vises | Bildeteksten]\n\n"
        "[bilde: finnes-ikke.png | Bare alt-tekst]\n\nKort, men en setning.",
    )
    assert guide.title == "Tittel"
    kinds = [block.kind for block in guide.blocks]
    assert kinds == [
        "heading",
        "paragraph",
        "steps",
        "bullets",
        "command",
        "figure",
        "figure",
        "paragraph",
    ]
    assert guide.blocks[2].items == ("Først", "Så **Lagre**")
    assert inline(guide.blocks[1].text) == "En setning med <strong>Knapp</strong> og &lt;b&gt;."
    shown, missing = guide.blocks[5], guide.blocks[6]
    assert (shown.alt, shown.caption, shown.number) == ("Det som vises", "Bildeteksten", 1)
    assert shown.width <= 1000 and shown.height > 0
    assert (missing.caption, missing.number, missing.width) == ("Bare alt-tekst", 2, 0)
    assert guide.images[1] == "finnes-ikke.png"  # the browser test's check names it
    assert not (IMAGES / "finnes-ikke.png").exists()


def pdf_text(pdf: bytes) -> str:
    """The text of an uncompressed PDF as fpdf2 writes it: each font's codes (two bytes a
    glyph, in literal strings) mapped back to characters by the font's ToUnicode map."""
    body = pdf.decode("latin-1")
    objects = {
        int(number): content
        for number, content in re.findall(r"(\d+) 0 obj\n(.*?)\nendobj", body, re.DOTALL)
    }
    to_unicode: dict[int, dict[int, str]] = {}
    for number, content in objects.items():
        found = re.search(r"/ToUnicode (\d+) 0 R", content)
        if found:
            cmap = objects[int(found.group(1))]
            if "/Filter /FlateDecode" in cmap:  # not expected with compression off
                raise AssertionError("compressed ToUnicode map")
            pairs = re.findall(r"<([0-9A-F]{4})> <([0-9A-F]+)>", cmap)
            to_unicode[number] = {
                int(code, 16): bytes.fromhex(text).decode("utf-16-be") for code, text in pairs
            }
    fonts = dict(re.findall(r"/(F\d+) (\d+) 0 R", body))
    text: list[str] = []
    current: dict[int, str] = {}
    pattern = re.compile(r"/(F\d+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\) Tj|(ET)", re.DOTALL)
    for stream in re.findall(r"stream\n(.*?)\nendstream", body, re.DOTALL):
        for font, string, end in pattern.findall(stream):
            if font:
                current = to_unicode[int(fonts[font])]
            elif string:
                raw = unescape(string).encode("latin-1")
                codes = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
                text.append("".join(current.get(code, "\ufffd") for code in codes))
            elif end:
                text.append(" ")
    return "".join(text)


def unescape(string: str) -> str:
    escapes = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}

    def one(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped[0] in "01234567":
            return chr(int(escaped, 8))
        return escapes.get(escaped, escaped)

    return re.sub(r"\\([0-7]{1,3}|.)", one, string, flags=re.DOTALL)
