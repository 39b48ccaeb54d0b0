import pytest

from services.integrations import InputError, check_description

pytestmark = pytest.mark.database_agnostic


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Kontakt ola.nordmann@firma.no", id="email"),
        pytest.param("Fnr 01019012057 for daglig leder", id="national-id"),
        pytest.param("Fnr 010190 12057", id="national-id-grouped"),
        pytest.param("D-nummer 41019012121", id="d-number"),
    ],
)
def test_description_with_personal_data_is_refused(text: str) -> None:
    with pytest.raises(InputError) as refused:
        check_description(text)
    assert refused.value.field == "description"
    assert "personopplysninger" in refused.value.message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("Klienter Bergen", id="words"),
        pytest.param("Konto 1503.12.34567 i banken", id="bank-account-dotted"),
        pytest.param("Kontonummer 15031234567", id="bank-account-11-digits"),
        pytest.param("Orgnr 934228391", id="org-number"),
        pytest.param("", id="empty-is-allowed"),
    ],
)
def test_description_without_personal_data_is_kept(text: str) -> None:
    assert check_description(text) == text


def test_description_whitespace_is_tidied() -> None:
    assert check_description("  Klienter \n Oslo  ") == "Klienter Oslo"


def test_overlong_description_is_refused() -> None:
    with pytest.raises(InputError, match="høyst 200 tegn"):
        check_description("x" * 201)
