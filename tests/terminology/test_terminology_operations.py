"""$lookup, $validate-code, $expand, `:in` expansion and alias resolution over the hub's own profiles/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.valueset import ValueSet

from hub.terminology.errors import TerminologyError, TerminologyRequestInvalid
from hub.terminology.loader import ProfileSet, profile_set
from hub.terminology.operations import (
    CARE_PRODUCT,
    expand,
    expand_codes,
    lookup,
    resolve_alias,
    validate_code,
)

HUB = "https://zorgnet-hub.nl/fhir"
CARE_PRODUCT_VS = f"{HUB}/ValueSet/care-product"
SCT = "http://snomed.info/sct"
POLICY_GOAL_VS = "https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalPolicyGoal"
ICD_VS = "https://fhir.iknl.nl/fhir/ValueSet/ACP-MedicalDeviceProductType-ICD"
CONFORMANCE = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "iknl-pzp-acp-r4"


def param(params: dict[str, Any], name: str) -> Any:
    """The value of the first top-level parameter called `name` (None when absent)."""
    for p in params["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value"))
    return None


def properties(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for p in params["parameter"]:
        if p["name"] == "property":
            parts = {part["name"]: part for part in p["part"]}
            value = next(v for k, v in parts["value"].items() if k.startswith("value"))
            out[parts["code"]["valueCode"]] = value
    return out


def codes(value_set: dict[str, Any]) -> list[str]:
    return [c["code"] for c in value_set["expansion"].get("contains", [])]


# ------------------------------------------------------------------ $lookup
def test_lookup_of_elv_hoog_returns_display_payer_setting_and_aliases(profiles: ProfileSet) -> None:
    result = lookup(profiles, CARE_PRODUCT, "elv-hoog")
    Parameters.model_validate(result)
    assert param(result, "name") == "CareProduct"
    assert param(result, "version") == "0.1.0"
    assert param(result, "display") == "ELV hoog complex"
    props = properties(result)
    assert props["payer"] == "Zvw"
    assert props["setting"] == "bed"
    assert "specialist ouderengeneeskunde" in props["definition"]
    designations = [p for p in result["parameter"] if p["name"] == "designation"]
    values = {part["valueString"] for d in designations for part in d["part"] if part["name"] == "value"}
    assert {"ELV-HC", "hoog complex"} <= values
    uses = {part["valueCoding"]["code"] for d in designations for part in d["part"] if part["name"] == "use"}
    assert uses == {"alias"}


def test_lookup_of_wmo_kv_gives_the_wmo_payer(profiles: ProfileSet) -> None:
    assert properties(lookup(profiles, CARE_PRODUCT, "wmo-kv"))["payer"] == "Wmo"
    assert properties(lookup(profiles, CARE_PRODUCT, "wijkverpleging"))["setting"] == "home"


def test_lookup_of_iwmo_category_04_is_kortdurend_verblijf(profiles: ProfileSet) -> None:
    result = lookup(profiles, f"{HUB}/CodeSystem/iwmo-productcategorie", "04")
    assert param(result, "display") == "Kortdurend verblijf"


def test_lookup_with_matching_version_works_and_other_version_is_not_found(profiles: ProfileSet) -> None:
    assert (
        param(lookup(profiles, CARE_PRODUCT, "grz", version="0.1.0"), "display")
        == "Geriatrische revalidatiezorg"
    )
    with pytest.raises(TerminologyError, match=r"version 9\.9"):
        lookup(profiles, CARE_PRODUCT, "grz", version="9.9")


def test_lookup_of_unknown_code_or_system_is_404_not_found(profiles: ProfileSet) -> None:
    with pytest.raises(TerminologyError) as err:
        lookup(profiles, CARE_PRODUCT, "ELV-HOOG")  # codes are case sensitive
    assert (err.value.status, err.value.code) == (404, "not-found")
    with pytest.raises(TerminologyError, match="not known"):
        lookup(profiles, "http://example.org/unknown", "x")


def test_lookup_reports_parent_and_child_in_a_hierarchy() -> None:
    profiles = profile_set([_tree_code_system()])
    props = lookup(profiles, "urn:test:tree", "b")["parameter"]
    coded = [(p["part"][0]["valueCode"], p["part"][1]["valueCode"]) for p in props if p["name"] == "property"]
    assert ("parent", "a") in coded and ("child", "c") in coded


# ------------------------------------------------------------------ $validate-code
def test_validate_code_in_care_product_value_set(profiles: ProfileSet) -> None:
    ok = validate_code(profiles, url=CARE_PRODUCT_VS, code="elv-hoog")
    Parameters.model_validate(ok)
    assert param(ok, "result") is True
    assert param(ok, "display") == "ELV hoog complex"
    bad = validate_code(profiles, url=CARE_PRODUCT_VS, code="foo")
    assert param(bad, "result") is False
    assert "foo" in param(bad, "message")


def test_validate_code_checks_the_system_when_given(profiles: ProfileSet) -> None:
    assert param(validate_code(profiles, url=CARE_PRODUCT_VS, system=CARE_PRODUCT, code="grz"), "result")
    assert not param(validate_code(profiles, url=CARE_PRODUCT_VS, system=SCT, code="grz"), "result")
    assert param(validate_code(profiles, url=POLICY_GOAL_VS, system=SCT, code="385987000"), "result")
    assert not param(validate_code(profiles, url=POLICY_GOAL_VS, system=SCT, code="713603004"), "result")


def test_validate_code_against_a_code_system_without_value_set(profiles: ProfileSet) -> None:
    assert param(validate_code(profiles, system=CARE_PRODUCT, code="wlz-10vv"), "result") is True
    assert param(validate_code(profiles, system=CARE_PRODUCT, code="10VV"), "result") is False


def test_validate_code_accepts_display_or_designation_and_rejects_a_wrong_display(
    profiles: ProfileSet,
) -> None:
    assert param(
        validate_code(profiles, url=CARE_PRODUCT_VS, code="elv-hoog", display="elv hoog complex"), "result"
    )
    assert param(validate_code(profiles, system=CARE_PRODUCT, code="elv-hoog", display="ELV-HC"), "result")
    wrong = validate_code(profiles, url=CARE_PRODUCT_VS, code="elv-hoog", display="ELV laag complex")
    assert param(wrong, "result") is False
    assert "ELV hoog complex" in param(wrong, "message")


def test_validate_code_reserved_bed_status_is_a_hub_code_not_v2(profiles: ProfileSet) -> None:
    url = f"{HUB}/ValueSet/bed-operational-status"
    assert param(
        validate_code(profiles, url=url, system=f"{HUB}/CodeSystem/bed-status-extra", code="reserved"),
        "result",
    )
    v2 = "http://terminology.hl7.org/CodeSystem/v2-0116"
    assert not param(validate_code(profiles, url=url, system=v2, code="reserved"), "result")
    assert param(validate_code(profiles, url=url, system=v2, code="U"), "result")


def test_validate_code_errors(profiles: ProfileSet) -> None:
    with pytest.raises(TerminologyError) as err:
        validate_code(profiles, url=f"{HUB}/ValueSet/nope", code="x")
    assert err.value.status == 404
    with pytest.raises(TerminologyRequestInvalid) as bad:
        validate_code(profiles, code="x")
    assert (bad.value.status, bad.value.code) == (400, "invalid")


# ------------------------------------------------------------------ $expand
def test_expand_care_product_has_all_ten_codes(profiles: ProfileSet) -> None:
    result = expand(profiles, CARE_PRODUCT_VS, timestamp="2026-11-23T10:00:00+01:00")
    ValueSet.model_validate(result)
    assert result["expansion"]["total"] == 10
    assert {"elv-laag", "elv-hoog", "wmo-kv", "wijkverpleging", "spoedzorg-thuis"} <= set(codes(result))
    assert result["expansion"]["timestamp"] == "2026-11-23T10:00:00+01:00"


def test_expand_with_filter_hoog_gives_only_elv_hoog(profiles: ProfileSet) -> None:
    result = expand(profiles, CARE_PRODUCT_VS, filter="hoog")
    assert codes(result) == ["elv-hoog"]
    assert result["expansion"]["total"] == 1
    assert {"name": "filter", "valueString": "hoog"} in result["expansion"]["parameter"]


def test_expand_filter_matches_designations_and_ignores_case_and_accents(profiles: ProfileSet) -> None:
    assert codes(expand(profiles, CARE_PRODUCT_VS, filter="ptz")) == ["elv-pall"]
    assert set(codes(expand(profiles, CARE_PRODUCT_VS, filter="ELV"))) == {"elv-laag", "elv-hoog", "elv-pall"}
    assert codes(expand(profiles, CARE_PRODUCT_VS, filter="Geriátrische REVALIDATIE")) == ["grz"]
    empty = expand(profiles, CARE_PRODUCT_VS, filter="zzz")
    assert empty["expansion"]["total"] == 0 and "contains" not in empty["expansion"]


def test_expand_pages_with_count_and_offset_but_reports_the_full_total(profiles: ProfileSet) -> None:
    full = codes(expand(profiles, CARE_PRODUCT_VS))
    page = expand(profiles, CARE_PRODUCT_VS, count=3, offset=2)
    assert codes(page) == full[2:5]
    assert page["expansion"]["total"] == 10 and page["expansion"]["offset"] == 2
    with pytest.raises(TerminologyRequestInvalid):
        expand(profiles, CARE_PRODUCT_VS, count=-1)


def test_expand_bed_and_home_value_sets_split_the_products(profiles: ProfileSet) -> None:
    bed = set(codes(expand(profiles, f"{HUB}/ValueSet/care-product-bed")))
    home = set(codes(expand(profiles, f"{HUB}/ValueSet/care-product-home")))
    assert home == {"wijkverpleging", "spoedzorg-thuis"}
    assert len(bed) == 8 and not bed & home
    assert bed | home == set(codes(expand(profiles, CARE_PRODUCT_VS)))


def test_expand_includes_designations_only_on_request(profiles: ProfileSet) -> None:
    plain = expand(profiles, CARE_PRODUCT_VS, filter="hoog")["expansion"]["contains"][0]
    rich = expand(profiles, CARE_PRODUCT_VS, filter="hoog", include_designations=True)["expansion"][
        "contains"
    ][0]
    assert "designation" not in plain
    assert "ELV-HC" in {d["value"] for d in rich["designation"]}


def test_expand_unknown_value_set_is_not_found(profiles: ProfileSet) -> None:
    with pytest.raises(TerminologyError) as err:
        expand(profiles, f"{HUB}/ValueSet/unknown")
    assert (err.value.status, err.value.code) == (404, "not-found")


def test_expand_whole_code_system_the_hub_does_not_have_is_an_error() -> None:
    profiles = profile_set([_value_set("urn:test:vs", {"include": [{"system": "http://loinc.org"}]})])
    with pytest.raises(TerminologyError, match="loinc"):
        expand(profiles, "urn:test:vs")


def test_expand_handles_nested_value_sets_excludes_and_property_filters(profiles: ProfileSet) -> None:
    extra = [
        _value_set(
            "urn:test:beds-minus-wlz",
            {
                "include": [{"valueSet": [CARE_PRODUCT_VS]}],
                "exclude": [
                    {"valueSet": [f"{HUB}/ValueSet/care-product-home"]},
                    {"system": CARE_PRODUCT, "filter": [{"property": "payer", "op": "=", "value": "Wlz"}]},
                ],
            },
        ),
        _value_set(
            "urn:test:tree-below-a",
            {
                "include": [
                    {
                        "system": "urn:test:tree",
                        "filter": [{"property": "concept", "op": "is-a", "value": "b"}],
                    }
                ]
            },
        ),
        _tree_code_system(),
    ]
    combined = profile_set([*(r for kind in profiles.by_type.values() for r in kind), *extra])
    assert set(codes(expand(combined, "urn:test:beds-minus-wlz"))) == {
        "elv-laag",
        "elv-hoog",
        "elv-pall",
        "wmo-kv",
        "grz",
    }
    assert codes(expand(combined, "urn:test:tree-below-a")) == ["b", "c"]


def test_expand_rejects_a_filter_it_cannot_evaluate() -> None:
    profiles = profile_set(
        [
            _tree_code_system(),
            _value_set(
                "urn:test:vs",
                {
                    "include": [
                        {
                            "system": "urn:test:tree",
                            "filter": [{"property": "x", "op": "regex", "value": "."}],
                        }
                    ]
                },
            ),
        ]
    )
    with pytest.raises(TerminologyRequestInvalid):
        expand(profiles, "urn:test:vs")


# ------------------------------------------------------------------ expand_codes (search :in)
def test_expand_codes_of_acp_medical_policy_goal(profiles: ProfileSet) -> None:
    assert expand_codes(profiles, POLICY_GOAL_VS) == {
        (SCT, "385987000"),
        (SCT, "1351964001"),
        (SCT, "713148004"),
    }


def test_expand_codes_of_the_icd_value_set_holds_the_ig_examples(profiles: ProfileSet) -> None:
    icd = expand_codes(profiles, ICD_VS)
    assert {(SCT, "72506001"), (SCT, "465460004")} <= icd
    assert (SCT, "713603004") not in icd


def test_pzp_conformance_examples_match_the_in_queries(profiles: ProfileSet) -> None:
    def coded(kind: str, element: str) -> set[tuple[str, str]]:
        found = set()
        for path in CONFORMANCE.glob(f"{kind}-*.json"):
            for coding in orjson.loads(path.read_bytes())[element]["coding"]:
                found.add((coding["system"], coding["code"]))
        return found

    assert CONFORMANCE.is_dir(), f"shared/conformance must sit beside the repository ({CONFORMANCE})"
    goals, devices = coded("Goal", "description"), coded("Device", "type")
    assert goals and goals <= expand_codes(profiles, POLICY_GOAL_VS)
    assert devices and devices <= expand_codes(profiles, ICD_VS)


# ------------------------------------------------------------------ resolve_alias
def test_resolve_alias_of_a_spreadsheet_spelling(profiles: ProfileSet) -> None:
    assert resolve_alias(profiles, "ELV-HC ") == "elv-hoog"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("ELV laag", "elv-laag"),
        ("elv-lc", "elv-laag"),
        ("ELV L", "elv-laag"),
        ("ELV  H", "elv-hoog"),
        ("ELV HC", "elv-hoog"),
        ("elvhc", "elv-hoog"),
        ("ELV_PTZ", "elv-pall"),
        ("10 VV", "wlz-10vv"),
        ("Hoog Complex", "elv-hoog"),
        ("hóóg complex", "elv-hoog"),
        ("ELV-PTZ", "elv-pall"),
        ("Hospice", "elv-pall"),
        ("crisisbed", "wlz-crisis"),
        ("Spoed Wlz", "wlz-crisis"),
        ("logeer Wlz", "wlz-logeer"),
        ("KV", "wmo-kv"),
        ("Kortdurend verblijf", "wmo-kv"),
        ("geriatrische revalidatie", "grz"),
        ("10vv", "wlz-10vv"),
        ("elv-hoog", "elv-hoog"),
        ("ELV hoog complex", "elv-hoog"),
        ("Wijkverpleging", "wijkverpleging"),
        ("spoedzorg thuis", "spoedzorg-thuis"),
    ],
)
def test_resolve_alias_accepts_every_known_spelling(profiles: ProfileSet, text: str, code: str) -> None:
    assert resolve_alias(profiles, text) == code


def test_resolve_alias_without_payer_refuses_respite_spellings(profiles: ProfileSet) -> None:
    assert resolve_alias(profiles, "respijt") is None
    assert resolve_alias(profiles, "Logeeropvang") is None
    assert resolve_alias(profiles, "logeren") is None


def test_resolve_alias_with_payer_decides_respite(profiles: ProfileSet) -> None:
    assert resolve_alias(profiles, "respijt", payer="Wmo") == "wmo-kv"
    assert resolve_alias(profiles, "respijt", payer="wlz") == "wlz-logeer"
    assert resolve_alias(profiles, "logeeropvang", payer="WMO") == "wmo-kv"
    assert resolve_alias(profiles, "logeren", payer="Wlz") == "wlz-logeer"
    assert resolve_alias(profiles, "respijt", payer="Zvw") is None


def test_resolve_alias_with_a_contradicting_payer_is_none(profiles: ProfileSet) -> None:
    assert resolve_alias(profiles, "ELV hoog", payer="Zvw") == "elv-hoog"
    assert resolve_alias(profiles, "ELV hoog", payer="Wmo") is None


def test_resolve_alias_of_unknown_text_is_none(profiles: ProfileSet) -> None:
    assert resolve_alias(profiles, "tandarts") is None
    assert resolve_alias(profiles, "  - ") is None


# ------------------------------------------------------------------ helpers
def _tree_code_system() -> dict[str, Any]:
    return {
        "resourceType": "CodeSystem",
        "id": "tree",
        "url": "urn:test:tree",
        "name": "Tree",
        "status": "active",
        "content": "complete",
        "concept": [{"code": "a", "concept": [{"code": "b", "concept": [{"code": "c"}]}]}, {"code": "d"}],
    }


def _value_set(url: str, compose: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "ValueSet",
        "id": url.rsplit(":", 1)[-1],
        "url": url,
        "status": "active",
        "compose": compose,
    }
