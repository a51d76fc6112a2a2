"""The error summary every journey's forms share (``api/templates/foutoverzicht.html``): the
errors link to their fields, a refusal of no field is a sentence, and the summary takes focus
when the page loads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from services.portal.api.web import HERE, templates


@dataclass(frozen=True)
class Fout:
    veld: str
    tekst: str


@dataclass(frozen=True)
class FoutMetLabel:
    veld: str
    label: str
    tekst: str


def overzicht(*args: Any, **kwargs: Any) -> str:
    macro = templates.env.get_template("foutoverzicht.html").module.foutoverzicht  # type: ignore[attr-defined]
    return str(macro(*args, **kwargs))


def links(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<a class="utrecht-link" href="#([^"]+)">([^<]+)</a>', html)


def test_errors_at_fields_link_to_them_and_the_summary_takes_focus() -> None:
    html = overzicht([Fout("redenen", "Vul ten minste één reden in.")])
    assert 'id="foutoverzicht"' in html and 'role="alert"' in html
    assert 'tabindex="-1" autofocus' in html
    assert '<h2 class="utrecht-heading-2">Dit is niet gelukt</h2>' in html
    assert links(html) == [("redenen", "Vul ten minste één reden in.")]


@pytest.mark.parametrize(
    ("fouten", "opties", "verwacht"),
    [
        # A page with several forms names the field by its form.
        (
            [Fout("datum", "Kies een werkdag.")],
            {"voorvoegsel": "plan-"},
            ("plan-datum", "Kies een werkdag."),
        ),
        # A mapping's items (compliance) and a single pair (a search box) are pairs.
        ({"reden": "Kies een reden."}.items(), {}, ("reden", "Kies een reden.")),
        ([("nummer", "Dat is geen dossiernummer.")], {}, ("nummer", "Dat is geen dossiernummer.")),
        # The registration says the field's label first; a dotted name is a hyphenated id.
        (
            [FoutMetLabel("bestuurder.email", "E-mailadres", "Vul het in.")],
            {},
            ("bestuurder-email", "E-mailadres: Vul het in."),
        ),
    ],
)
def test_every_shape_of_errors_gives_the_same_links(
    fouten: Any, opties: dict[str, str], verwacht: tuple[str, str]
) -> None:
    assert links(overzicht(fouten, **opties)) == [verwacht]


def test_a_refusal_of_no_field_is_a_sentence_that_takes_focus_too() -> None:
    html = overzicht((), "De dienst is nu niet bereikbaar.")
    assert 'id="foutoverzicht"' in html and 'tabindex="-1" autofocus' in html
    assert '<p class="utrecht-paragraph">De dienst is nu niet bereikbaar.</p>' in html
    assert links(html) == []


def test_nothing_refused_shows_nothing() -> None:
    assert overzicht().strip() == ""
    assert overzicht([], None).strip() == ""
    assert overzicht({}.items(), "").strip() == ""


def test_only_the_shared_summary_makes_an_error_summary() -> None:
    eigen = [
        pad.relative_to(HERE / "templates").as_posix()
        for pad in (HERE / "templates").rglob("*.html")
        if pad.name != "foutoverzicht.html"
        and re.search(r'id="foutoverzicht"|utrecht-alert--error', pad.read_text(encoding="utf-8"))
    ]
    # The chains' verification states an outcome, not a refused form.
    assert eigen == ["compliance/verificatie.html"]
