"""The hub's care products and the spellings sources use for them (domain README 1.3).

Spreadsheets and letters name products in many ways ("ELV-HC", "hoog complex", "Crisisbed Wlz"). Two rules
keep us honest: "respijt"/"logeeropvang"/"logeren" is Wmo *or* Wlz, so it needs a payer (or a municipality as
sender) and is otherwise rejected; and a payer that contradicts the product ("ELV hoog (Wlz)") is rejected
too. We never guess. Codes: `elv-*` eerstelijnsverblijf (Zvw), `wlz-*` Wet langdurige zorg, `wmo-kv` Wmo
kortdurend verblijf, `grz` geriatrische revalidatiezorg.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from adapters.identifiers import HUB_CODES

SYSTEM = HUB_CODES + "care-product"

Confidence = Literal["high", "medium", "low"]


@dataclass(frozen=True)
class CareProduct:
    code: str
    display: str
    payer: str  # "zvw" | "wlz" | "wmo"


PRODUCTS: dict[str, CareProduct] = {
    p.code: p
    for p in (
        CareProduct("elv-laag", "ELV laag complex", "zvw"),
        CareProduct("elv-hoog", "ELV hoog complex", "zvw"),
        CareProduct("elv-pall", "ELV palliatief terminale zorg", "zvw"),
        CareProduct("wlz-crisis", "Wlz crisisopname (VV)", "wlz"),
        CareProduct("wlz-logeer", "Wlz logeeropvang", "wlz"),
        CareProduct("wmo-kv", "Wmo kortdurend verblijf (respijt)", "wmo"),
        CareProduct("grz", "Geriatrische revalidatiezorg", "zvw"),
        CareProduct("wlz-10vv", "Wlz palliatief-terminaal (10VV)", "wlz"),
    )
}

# README 1.3 alias column; product_for_alias accepts all of these (and more spellings through its rules).
ALIASES: dict[str, tuple[str, ...]] = {
    "elv-laag": ("ELV laag", "ELV-LC", "laag complex", "ELV L"),
    "elv-hoog": ("ELV hoog", "ELV-HC", "hoog complex", "ELV H"),
    "elv-pall": ("ELV palliatief", "palliatief", "PTZ", "ELV-PTZ", "hospice"),
    "wlz-crisis": ("crisis", "Wlz crisis", "crisisbed", "spoed Wlz"),
    "wlz-logeer": ("logeer Wlz",),
    "wmo-kv": ("KV", "kortdurend verblijf"),
    "grz": ("GRZ", "revalidatie", "geriatrische revalidatie"),
    "wlz-10vv": ("10VV",),
}

_PAYERS = {
    "wmo": "wmo",
    "gemeente": "wmo",
    "wlz": "wlz",
    "zorgkantoor": "wlz",
    "zvw": "zvw",
    "zorgverzekeraar": "zvw",
    "verzekeraar": "zvw",
}
_RESPITE_WORDS = ("respijt", "respijtzorg", "logeeropvang", "logeren", "logeer")
_RESPITE = "respite"  # internal marker: product known up to its payer


class ProductNotResolved(ValueError):
    """The text does not name exactly one care product; `str(err)` says why, for a Problem message."""


class UnknownProduct(ProductNotResolved):
    """No rule recognises the text."""


class AmbiguousProduct(ProductNotResolved):
    """The text fits more than one product (or contradicts its payer); a human must decide."""


def normalize(text: str) -> str:
    """Lower case, no diacritics, punctuation to spaces, so "ELV-HC" and "elv hc" compare equal."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


def normalize_payer(text: str | None) -> str | None:
    """Map a payer cell ("Wmo", "gemeente", "Wlz", "zorgkantoor", "Zvw") to wmo/wlz/zvw; None when empty."""
    if text is None or not normalize(text):
        return None
    payer = _PAYERS.get(normalize(text))
    if payer is None:
        raise UnknownProduct(f"unknown payer {text!r} (expected Wmo, Wlz or Zvw)")
    return payer


def coding(code: str) -> dict[str, str]:
    """The care-product Coding for a code, with the display from the hub CodeSystem."""
    return {"system": SYSTEM, "code": code, "display": PRODUCTS[code].display}


def product_for_alias(text: str, payer: str | None = None, sender_kind: str | None = None) -> str:
    """Resolve a product name from a spreadsheet cell or coded display to one care-product code, or raise.

    `payer` is a payer column if the source has one; `sender_kind` "municipality" settles respijt as Wmo.
    """
    words = normalize(text).split()
    if not words:
        raise UnknownProduct("no care product given")
    stated = _stated_payer(words, payer)
    matches = _match_words(words)
    if len(matches) > 1:
        names = " / ".join(sorted(matches))
        raise AmbiguousProduct(f"{text!r} matches more than one care product ({names})")
    if not matches:
        raise UnknownProduct(f"{text!r} is not a known care product")
    code = matches.pop()
    if code == _RESPITE:
        return _respite_by_payer(text, stated, sender_kind)
    if stated is not None and stated != PRODUCTS[code].payer:
        raise AmbiguousProduct(
            f"{text!r} names {PRODUCTS[code].display} ({PRODUCTS[code].payer.capitalize()}) "
            f"but the payer is {stated.capitalize()}"
        )
    return code


def _stated_payer(words: list[str], payer: str | None) -> str | None:
    """The one payer named by the payer column and/or the text itself; two different ones are a conflict."""
    found = {_PAYERS[w] for w in words if w in ("wmo", "wlz", "zvw")}
    column = normalize_payer(payer)
    if column is not None:
        found.add(column)
    if len(found) > 1:
        raise AmbiguousProduct(f"conflicting payers: {', '.join(sorted(found))}")
    return found.pop() if found else None


def _match_words(words: list[str]) -> set[str]:
    """Every product a rule recognises in the words; the specific rules win over the ELV complexity words."""
    has = set(words).__contains__
    joined = " ".join(words)
    if has("10vv"):
        return {"wlz-10vv"}
    if has("grz") or any(w.startswith("revalidatie") for w in words):
        return {"grz"}
    if any(w.startswith("crisis") for w in words) or (has("spoed") and has("wlz")):
        return {"wlz-crisis"}
    if any(w.startswith(_RESPITE_WORDS) for w in words):
        return {_RESPITE}
    if has("kv") or "kortdurend verblijf" in joined:
        return {"wmo-kv"}
    found: set[str] = set()
    if any(w.startswith(("palliatie", "terminal")) for w in words) or has("ptz") or has("hospice"):
        found.add("elv-pall")
    if has("hoog") or has("hc") or has("hoogcomplex") or (has("elv") and has("h")):
        found.add("elv-hoog")
    if has("laag") or has("lc") or has("laagcomplex") or (has("elv") and has("l")):
        found.add("elv-laag")
    return found


def _respite_by_payer(text: str, payer: str | None, sender_kind: str | None) -> str:
    """README 1.3: respijt/logeeropvang is wmo-kv only if Wmo is stated or a municipality sent it."""
    if payer == "wmo" or (payer is None and sender_kind == "municipality"):
        return "wmo-kv"
    if payer == "wlz":
        return "wlz-logeer"
    if payer == "zvw":
        raise AmbiguousProduct(f"{text!r}: there is no Zvw respite product (Wmo or Wlz only)")
    raise AmbiguousProduct(
        f"{text!r} is ambiguous: Wmo kortdurend verblijf or Wlz logeeropvang; state the payer (Wmo/Wlz)"
    )


@dataclass(frozen=True)
class Derivation:
    """A care product guessed from free text, with how sure the rules are and what they saw."""

    code: str | None
    confidence: Confidence
    mentions: tuple[tuple[str, str], ...]  # (phrase found, product code or "respite"/"elv")

    def explain(self) -> str:
        """One sentence for a triage note: what was derived, from which words, and how sure."""
        seen = ", ".join(f"'{phrase}'" for phrase, _ in self.mentions) or "no product keywords"
        if self.code is None:
            return f"No care product derived from the letter text ({seen}); confidence {self.confidence}."
        return (
            f"Care product derived from free text: {self.code} ({PRODUCTS[self.code].display}) "
            f"based on {seen}; confidence {self.confidence}."
        )


# Free text needs stricter rules than a spreadsheet cell: "hoog" alone may be a blood pressure.
_STRONG_PHRASES: tuple[tuple[str, str], ...] = (
    (r"\b10 ?vv\b", "wlz-10vv"),
    (r"\belv (?:hoog|hc|h)\b|\bhoog complex\b", "elv-hoog"),
    (r"\belv (?:laag|lc|l)\b|\blaag complex\b", "elv-laag"),
    (r"\belv (?:palliatie\w*|ptz)\b|\bpalliatief terminale\b|\bptz\b|\bhospice\b", "elv-pall"),
    (r"\bcrisis ?(?:opname|bed)\w*\b|\bwlz crisis\b", "wlz-crisis"),
    (r"\bgrz\b|\bgeriatrische revalidatie\w*\b", "grz"),
    (r"\bwmo kortdurend verblijf\b", "wmo-kv"),
)
_WEAK_PHRASES: tuple[tuple[str, str], ...] = (
    (r"\bpalliatie\w*\b|\bterminale fase\b", "elv-pall"),
    (r"\bcrisis\b", "wlz-crisis"),
    (r"\brevalidatie\w*\b", "grz"),
    (r"\brespijt\w*\b|\blogeeropvang\b", _RESPITE),
    (r"\belv\b|\beerstelijns ?verblijf\b", "elv"),
)


def derive_from_text(text: str) -> Derivation:
    """Keyword rules for free-text referrals (MEDVRI): strong phrases decide, weak ones lower confidence."""
    plain = normalize(text)
    strong = _scan(plain, _STRONG_PHRASES)
    weak = [m for m in _scan(plain, _WEAK_PHRASES) if not any(m[0] in s[0] for s in strong)]
    strong_codes = {code for _, code in strong}
    weak_codes = {code for _, code in weak if code in PRODUCTS}
    mentions = tuple(strong + weak)
    if len(strong_codes) == 1:
        code = strong_codes.pop()
        confidence: Confidence = "high" if weak_codes <= {code} else "medium"
        return Derivation(code, confidence, mentions)
    if not strong_codes and len(weak_codes) == 1:
        return Derivation(weak_codes.pop(), "low", mentions)
    return Derivation(None, "low", mentions)


def _scan(plain: str, rules: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """All (phrase, code) hits of the rules in normalised text, in rule order, without repeats."""
    hits: list[tuple[str, str]] = []
    for pattern, code in rules:
        for match in re.finditer(pattern, plain):
            if (match.group(0), code) not in hits:
                hits.append((match.group(0), code))
    return hits
