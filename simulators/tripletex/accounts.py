"""Norwegian standard chart of accounts (NS 4102) and VAT codes used by every simulated company.

Real Tripletex companies start from this standard plan and then add their own accounts; a
fixed subset keeps the simulator deterministic while still covering every account class.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class VatCode:
    id: int
    number: str
    name: str
    percentage: Decimal


# Tripletex's standard VAT codes ("mva-koder"); ids mirror the code numbers so refs are readable.
VAT_CODES: dict[int, VatCode] = {
    code.id: code
    for code in (
        VatCode(0, "0", "Ingen avgiftsbehandling", Decimal("0")),
        VatCode(1, "1", "Fradrag inngående avgift, høy sats", Decimal("25")),
        VatCode(11, "11", "Fradrag inngående avgift, middels sats", Decimal("15")),
        VatCode(13, "13", "Fradrag inngående avgift, lav sats", Decimal("12")),
        VatCode(3, "3", "Utgående avgift, høy sats", Decimal("25")),
        VatCode(31, "31", "Utgående avgift, middels sats", Decimal("15")),
        VatCode(33, "33", "Utgående avgift, lav sats", Decimal("12")),
        VatCode(5, "5", "Ingen utgående avgift (innenfor mva-loven)", Decimal("0")),
        VatCode(6, "6", "Ingen utgående avgift (utenfor mva-loven)", Decimal("0")),
    )
}

NO_VAT = 0
INPUT_VAT_HIGH = 1
OUTPUT_VAT_HIGH = 3
SALES_VAT_CODES = (3, 31, 33, 5, 6)
PURCHASE_VAT_CODES = (0, 1, 11, 13)


@dataclass(frozen=True)
class StandardAccount:
    number: int
    name: str
    vat_type_id: int = NO_VAT
    is_bank_account: bool = False
    is_closeable: bool = False  # customer/supplier ledgers have open items that can be closed
    require_reconciliation: bool = False


_A = StandardAccount

CHART: tuple[StandardAccount, ...] = (
    _A(1070, "Utsatt skattefordel"),
    _A(1200, "Maskiner og anlegg"),
    _A(1230, "Personbiler"),
    _A(1250, "Inventar"),
    _A(1280, "Kontormaskiner"),
    _A(1290, "Andre driftsmidler"),
    _A(1400, "Varelager"),
    _A(1500, "Kundefordringer", is_closeable=True, require_reconciliation=True),
    _A(1570, "Andre kortsiktige fordringer"),
    _A(1579, "Mellomværende"),
    _A(1700, "Forskuddsbetalt leiekostnad"),
    _A(1710, "Forskuddsbetalt rentekostnad"),
    _A(1749, "Andre forskuddsbetalte kostnader"),
    _A(1900, "Kontanter"),
    _A(1920, "Bankinnskudd", is_bank_account=True, require_reconciliation=True),
    _A(1950, "Bankinnskudd for skattetrekk", is_bank_account=True, require_reconciliation=True),
    _A(2000, "Aksjekapital"),
    _A(2050, "Annen egenkapital"),
    _A(2080, "Udekket tap"),
    _A(2220, "Gjeld til kredittinstitusjoner"),
    _A(2400, "Leverandørgjeld", is_closeable=True, require_reconciliation=True),
    _A(2500, "Betalbar skatt, ikke utlignet"),
    _A(2600, "Forskuddstrekk", require_reconciliation=True),
    _A(2700, "Utgående merverdiavgift, høy sats"),
    _A(2701, "Utgående merverdiavgift, middels sats"),
    _A(2702, "Utgående merverdiavgift, lav sats"),
    _A(2710, "Inngående merverdiavgift, høy sats"),
    _A(2711, "Inngående merverdiavgift, middels sats"),
    _A(2740, "Oppgjørskonto merverdiavgift", require_reconciliation=True),
    _A(2770, "Skyldig arbeidsgiveravgift", require_reconciliation=True),
    _A(2910, "Gjeld til ansatte og eiere"),
    _A(2930, "Skyldig lønn"),
    _A(2940, "Skyldige feriepenger"),
    _A(2960, "Påløpte kostnader"),
    _A(2990, "Annen kortsiktig gjeld"),
    _A(3000, "Salgsinntekt, avgiftspliktig", OUTPUT_VAT_HIGH),
    _A(3030, "Salgsinntekt, avgiftspliktig, middels sats", 31),
    _A(3100, "Salgsinntekt, avgiftsfri", 5),
    _A(3200, "Salgsinntekt, utenfor avgiftsområdet", 6),
    _A(3400, "Offentlig tilskudd/refusjon"),
    _A(3900, "Annen driftsrelatert inntekt"),
    _A(4000, "Innkjøp av råvarer og halvfabrikata", INPUT_VAT_HIGH),
    _A(4300, "Innkjøp av varer for videresalg", INPUT_VAT_HIGH),
    _A(4500, "Fremmedytelse og underentreprise", INPUT_VAT_HIGH),
    _A(5000, "Lønn til ansatte"),
    _A(5020, "Feriepenger"),
    _A(5330, "Godtgjørelse til styre- og bedriftsforsamling"),
    _A(5400, "Arbeidsgiveravgift"),
    _A(5900, "Annen personalkostnad"),
    _A(6010, "Avskrivning på transportmidler, maskiner og inventar"),
    _A(6300, "Leie lokale"),
    _A(6340, "Lys, varme", INPUT_VAT_HIGH),
    _A(6360, "Renhold", INPUT_VAT_HIGH),
    _A(6540, "Inventar", INPUT_VAT_HIGH),
    _A(6550, "Driftsmateriale", INPUT_VAT_HIGH),
    _A(6700, "Revisjonshonorar", INPUT_VAT_HIGH),
    _A(6705, "Regnskapshonorar", INPUT_VAT_HIGH),
    _A(6800, "Kontorrekvisita", INPUT_VAT_HIGH),
    _A(6860, "Møte, kurs, oppdatering o.l.", INPUT_VAT_HIGH),
    _A(6900, "Telefon", INPUT_VAT_HIGH),
    _A(6940, "Porto"),
    _A(7000, "Drivstoff", INPUT_VAT_HIGH),
    _A(7100, "Bilgodtgjørelse, opplysningspliktig"),
    _A(7140, "Reisekostnad, ikke opplysningspliktig"),
    _A(7320, "Reklamekostnad", INPUT_VAT_HIGH),
    _A(7350, "Representasjon, fradragsberettiget"),
    _A(7500, "Forsikringspremie"),
    _A(7770, "Bank og kortgebyrer"),
    _A(7790, "Annen kostnad, fradragsberettiget", INPUT_VAT_HIGH),
    _A(7830, "Tap på fordringer"),
    _A(8050, "Annen renteinntekt"),
    _A(8060, "Valutagevinst (agio)"),
    _A(8150, "Annen rentekostnad"),
    _A(8160, "Valutatap (disagio)"),
    _A(8300, "Betalbar skatt"),
    _A(8320, "Endring utsatt skatt"),
    _A(8800, "Årsresultat"),
    _A(8960, "Overføringer annen egenkapital"),
)

# Accounts a company has switched off; they stay in the plan (Tripletex never deletes a used
# account) but are flagged inactive, so the app sees both kinds.
INACTIVE_CANDIDATES = (1290, 1579, 1710, 2080, 5330, 7100, 8160)

FIRST_RESULT_ACCOUNT = 3000  # NS 4102: classes 1–2 are the balance, 3–8 the result

_BALANCE_GROUPS = {
    10: "Immaterielle eiendeler o.l.",
    12: "Transportmidler, inventar og maskiner o.l.",
    14: "Varelager og forskudd til leverandører",
    15: "Kortsiktige fordringer",
    17: "Forskuddsbetalt kostnad, påløpt inntekt o.l.",
    19: "Bankinnskudd, kontanter og lignende",
    20: "Egenkapital",
    22: "Annen langsiktig gjeld",
    24: "Leverandørgjeld",
    25: "Betalbar skatt",
    26: "Skattetrekk og andre trekk",
    27: "Skyldige offentlige avgifter",
    29: "Annen kortsiktig gjeld",
    30: "Salgsinntekt, avgiftspliktig",
    31: "Salgsinntekt, avgiftsfri",
    32: "Salgsinntekt, utenfor avgiftsområdet",
    34: "Offentlig tilskudd/refusjon",
    39: "Annen driftsrelatert inntekt",
    40: "Forbruk av råvarer og innkjøpte halvfabrikata",
    43: "Innkjøp av varer for videresalg",
    45: "Fremmedytelse og underentreprise",
    50: "Lønn til ansatte",
    53: "Annen opplysningspliktig godtgjørelse",
    54: "Arbeidsgiveravgift og pensjonskostnad",
    59: "Annen personalkostnad",
    60: "Av- og nedskrivning",
    63: "Kostnader lokaler",
    65: "Verktøy, inventar og driftsmaterialer som ikke skal aktiveres",
    67: "Fremmed tjeneste",
    68: "Kontorkostnad, trykksak o.l.",
    69: "Telefon, porto o.l.",
    70: "Kostnad transportmidler",
    71: "Kostnad og godtgjørelse for reiser, diett, bil o.l.",
    73: "Salgs-, reklame- og representasjonskostnad",
    75: "Forsikringspremie, garanti- og servicekostnad",
    77: "Annen kostnad",
    78: "Tap o.l.",
    80: "Finansinntekt",
    81: "Finanskostnad",
    83: "Skattekostnad på ordinært resultat",
    88: "Årsresultat",
    89: "Overføringer og disponeringer",
}


def is_balance_account(number: int) -> bool:
    return number < FIRST_RESULT_ACCOUNT


def balance_group(number: int) -> str:
    return _BALANCE_GROUPS.get(number // 100, "")


def account_type(number: int) -> str:
    """The spec's Account.type enum, from the NS 4102 class of the number."""
    if number < 2000:
        return "ASSETS"
    if number < 2100:
        return "EQUITY"
    if number < 3000:
        return "LIABILITIES"
    if number < 4000:
        return "OPERATING_REVENUES"
    if number < 8000:
        return "OPERATING_EXPENSES"
    if number < 8100:
        return "INVESTMENT_INCOME"
    if number < 8300:
        return "COST_OF_CAPITAL"
    if number < 8400:
        return "TAX_ON_ORDINARY_ACTIVITIES"
    if number < 8500:
        return "EXTRAORDINARY_INCOME"
    if number < 8600:
        return "EXTRAORDINARY_COST"
    if number < 8800:
        return "TAX_ON_EXTRAORDINARY_ACTIVITIES"
    if number < 8900:
        return "ANNUAL_RESULT"
    return "TRANSFERS_AND_ALLOCATIONS"


def legal_vat_types(number: int) -> tuple[int, ...]:
    if 3000 <= number < 4000:
        return SALES_VAT_CODES
    if 4000 <= number < 8000:
        return PURCHASE_VAT_CODES
    return (NO_VAT,)
