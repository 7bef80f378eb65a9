"""iWmo WMO301/WMO315: social-domain tagging, no free text, respite only, and hardened XML parsing."""

from __future__ import annotations

import orjson
import pytest
from adapter_cases import ASSEN, ESDORP, INPUTS, SAMPLES, entry_for, resources

from adapters import iwmo
from adapters.base import AdapterError

WMO315 = (SAMPLES / "iwmo" / "wmo315_verzoek_kortdurend_verblijf.xml").read_bytes()
WMO301 = (INPUTS / "wmo301_toewijzing_kv.xml").read_bytes()
SOCIAL = {"system": "https://zorgnet-hub.nl/fhir/CodeSystem/data-domain", "code": "social"}

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<wmo315:Bericht xmlns:wmo315="http://www.istandaarden.nl/iwmo/3_2/wmo315/schema">&lol3;</wmo315:Bericht>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE b [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<wmo315:Bericht xmlns:wmo315="http://www.istandaarden.nl/iwmo/3_2/wmo315/schema">&xxe;</wmo315:Bericht>"""


def test_wmo315_is_a_proposed_respite_request_tagged_social() -> None:
    result = iwmo.translate(WMO315, ESDORP)
    for resource in resources(result.bundle):
        assert SOCIAL in resource["meta"]["tag"], resource["resourceType"]
    request = resources(result.bundle, "ServiceRequest")[0]
    assert request["intent"] == "proposal" and request["status"] == "active"
    assert [(c["system"].rsplit("/", 1)[-1], c["code"]) for c in request["code"]["coding"]] == [
        ("care-product", "wmo-kv"),
        ("iwmo-productcategorie", "04"),
        ("0106", "04K01"),
    ]
    assert request["occurrencePeriod"] == {"start": "2026-03-16", "end": "2026-03-29"}
    assert request["quantityQuantity"] == {
        "value": 14,
        "unit": "etmaal",
        "system": "http://unitsofmeasure.org",
        "code": "d",
    }
    patient = resources(result.bundle, "Patient")[0]
    assert patient["gender"] == "male" and patient["birthDate"] == "1941-07-23"
    assert result.message_id == "ESD-315-2026-0042" and result.kind == "WMO315"


def test_commentaar_free_text_never_enters_the_bundle() -> None:
    for source, meta, phrase in ((WMO315, ESDORP, b"mantelzorger"), (WMO301, ASSEN, b"huisarts adviseert")):
        result = iwmo.translate(source, meta)
        assert phrase not in orjson.dumps(result.bundle)
        assert any(p.severity == "information" and "Commentaar" in p.message for p in result.problems)


def test_wmo301_assignment_replaces_by_toewijzingnummer_and_skips_other_categories() -> None:
    result = iwmo.translate(WMO301, ASSEN)
    entry = entry_for(result.bundle, "ServiceRequest", "0106/KV-0106-2026-0042")
    assert entry["request"]["url"].startswith(
        "ServiceRequest?identifier=https://zorgnet-hub.nl/fhir/NamingSystem/iwmo-toewijzingnummer|"
    )
    assert entry["resource"]["intent"] == "order"
    assert entry["resource"]["authoredOn"] == "2026-03-11T10:42:00+01:00"
    assert "73730002/ESD-KV-2026-0042" in [i["value"] for i in entry["resource"]["identifier"]]  # links the 315
    assert len(resources(result.bundle, "ServiceRequest")) == 1
    assert any(p.location == "ToegewezenProduct[2]/Product" for p in result.problems)


@pytest.mark.parametrize(
    "hostile",
    [BILLION_LAUGHS, XXE, BILLION_LAUGHS.decode().encode("utf-16")],
    ids=["billion-laughs", "external-entity", "utf16-doctype"],
)
def test_entity_and_doctype_tricks_are_refused(hostile: bytes) -> None:
    with pytest.raises(AdapterError) as raised:
        iwmo.translate(hostile, ESDORP)
    assert raised.value.code == "security"


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(AdapterError) as raised:
        iwmo.translate(WMO315 + b" " * iwmo.MAX_BYTES, ESDORP)
    assert raised.value.code == "too-costly"


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (WMO315.replace(b"<wmo315:Bsn>999990032", b"<wmo315:Bsn>999990033"), "invalid"),
        (b"<Bericht><Header/></Bericht>", "not-supported"),
        (WMO315.replace(b"wmo315/schema", b"wmo317/schema"), "not-supported"),
        (WMO315.replace(b"</wmo315:Client>", b""), "invalid"),
    ],
)
def test_bad_messages_are_adapter_errors(source: bytes, code: str) -> None:
    with pytest.raises(AdapterError) as raised:
        iwmo.translate(source, ESDORP)
    assert raised.value.code == code


def test_malformed_xml_reports_line_and_column() -> None:
    with pytest.raises(AdapterError) as raised:
        iwmo.translate(WMO315.replace(b"</wmo315:Client>", b""), ESDORP)
    assert raised.value.location is not None and raised.value.location.startswith("line ")


def test_defusedxml_is_the_second_line_when_the_byte_scan_cannot_see_the_doctype() -> None:
    with pytest.raises(AdapterError) as raised:
        iwmo.translate(XXE.decode().encode("utf-16"), ESDORP)
    assert "DTDForbidden" in raised.value.message


def test_a_message_without_respite_stores_nothing_about_the_client() -> None:
    only_begeleiding = WMO315.replace(b"<iwmo:Categorie>04</iwmo:Categorie>", b"<iwmo:Categorie>02</iwmo:Categorie>")
    result = iwmo.translate(only_begeleiding, ESDORP)
    assert result.bundle == {"resourceType": "Bundle", "type": "transaction"}
    assert [p.severity for p in result.problems].count("warning") == 2
