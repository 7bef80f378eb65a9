"""Care-product aliases (README 1.3), the respijt payer rule, free-text derivation, and Dutch identifiers."""

from __future__ import annotations

import pytest

from adapters import care_products, identifiers
from adapters.care_products import AmbiguousProduct, UnknownProduct, derive_from_text, product_for_alias


@pytest.mark.parametrize(
    ("alias", "code"), [(alias, code) for code, aliases in care_products.ALIASES.items() for alias in aliases]
)
def test_every_readme_alias_maps_to_its_product(alias: str, code: str) -> None:
    assert product_for_alias(alias) == code


@pytest.mark.parametrize("code", list(care_products.PRODUCTS))
def test_every_display_maps_back_to_its_code(code: str) -> None:
    assert product_for_alias(care_products.PRODUCTS[code].display) == code


@pytest.mark.parametrize("text", ["respijt", "Logeeropvang", "logeren", "Respijtzorg"])
def test_respijt_without_payer_is_ambiguous_unless_a_municipality_sends_it(text: str) -> None:
    with pytest.raises(AmbiguousProduct):
        product_for_alias(text, None, "vvt-provider")
    with pytest.raises(AmbiguousProduct):
        product_for_alias(text)
    assert product_for_alias(text, None, "municipality") == "wmo-kv"
    assert product_for_alias(text, "Wmo") == "wmo-kv"
    assert product_for_alias(text, "zorgkantoor") == "wlz-logeer"


@pytest.mark.parametrize(
    ("text", "payer", "code"),
    [
        ("Respijt (Wmo)", None, "wmo-kv"),
        ("Logeeropvang Wlz", None, "wlz-logeer"),
        ("Crisisbed Wlz", None, "wlz-crisis"),
        ("ELV laag complex", "Zvw", "elv-laag"),
        ("elv  HOOG ", None, "elv-hoog"),
        ("Geriatrische revalidatiezorg", None, "grz"),
    ],
)
def test_spreadsheet_spellings(text: str, payer: str | None, code: str) -> None:
    assert product_for_alias(text, payer) == code


@pytest.mark.parametrize(
    ("text", "payer", "error"),
    [
        ("ELV hoog", "Wlz", AmbiguousProduct),
        ("crisis", "Wmo", AmbiguousProduct),
        ("respijt", "Zvw", AmbiguousProduct),
        ("ELV laag/hoog", None, AmbiguousProduct),
        ("ELV", None, UnknownProduct),
        ("dagbesteding", None, UnknownProduct),
        ("respijt Wmo", "Wlz", AmbiguousProduct),
        ("ELV laag", "Rijksoverheid", UnknownProduct),
    ],
)
def test_conflicts_and_unknowns_are_rejected_not_guessed(text: str, payer: str | None, error: type) -> None:
    with pytest.raises(error):
        product_for_alias(text, payer)


def test_free_text_derivation_reports_words_and_confidence() -> None:
    clear = derive_from_text("Graag opname ELV hoog complex voor mw.")
    assert (clear.code, clear.confidence) == ("elv-hoog", "high")
    assert "'elv hoog'" in clear.explain()
    mixed = derive_from_text("Graag ELV hoog complex; palliatieve fase nog niet aan de orde.")
    assert (mixed.code, mixed.confidence) == ("elv-hoog", "medium")
    weak = derive_from_text("Revalidatie na heupfractuur gewenst.")
    assert (weak.code, weak.confidence) == ("grz", "low")
    nothing = derive_from_text("Graag opname, thuis niet verantwoord.")
    assert nothing.code is None and "No care product" in nothing.explain()


@pytest.mark.parametrize("bsn", ["999990019", "999990032", "123456782", "999911120"])
def test_valid_bsns_pass_the_11_proof(bsn: str) -> None:
    assert identifiers.is_valid_bsn(bsn)


@pytest.mark.parametrize("bsn", ["999990018", "123456789", "000000000", "12345678", "99999001a", ""])
def test_invalid_bsns_fail(bsn: str) -> None:
    assert not identifiers.is_valid_bsn(bsn)


def test_eight_digit_bsn_is_left_padded_before_the_check() -> None:
    assert identifiers.normalize_bsn("9999 0019") == "099990019"
    assert identifiers.normalize_bsn("999.990.019") == "999990019"


@pytest.mark.parametrize(("value", "valid"), [("01054321", True), ("1054321", False), ("0105432A", False)])
def test_agb_and_ura_are_eight_digits(value: str, valid: bool) -> None:
    assert identifiers.is_valid_agb(value) is valid
    assert identifiers.is_valid_ura(value) is valid


def _profile_designations() -> list[tuple[str, str, str]]:
    """(code, designation use, spelling) from the hub's CodeSystem in profiles/ (written by the profiles work)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "profiles" / "codesystems" / "care-product.json"
    if not path.exists():
        return []
    concepts = json.loads(path.read_text(encoding="utf-8"))["concept"]
    return [
        (c["code"], d.get("use", {}).get("code", "alias"), d["value"])
        for c in concepts
        if c["code"] in care_products.PRODUCTS
        for d in c.get("designation", [])
    ]


@pytest.mark.parametrize(("code", "use", "spelling"), _profile_designations())
def test_adapter_aliases_agree_with_the_care_product_code_system(code: str, use: str, spelling: str) -> None:
    """The spreadsheet rules here and the designations in profiles/ must not drift apart."""
    if use == "alias-needs-payer":
        with pytest.raises(AmbiguousProduct):
            product_for_alias(spelling)
        assert product_for_alias(spelling, care_products.PRODUCTS[code].payer) == code
    else:
        assert product_for_alias(spelling) == code
