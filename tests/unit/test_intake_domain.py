"""Intake's domain: who falls under the regeling, what a registration must hold, withdrawing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from services.intake.domain import (
    Aanmelding,
    Aanvraag,
    AanvraagIngetrokken,
    AanvraagOntvangen,
    EerdereAanmelding,
    Functie,
    buiten_regeling_reden,
    dien_in,
    project,
    sluit_af,
    trek_in,
)
from shared.platform.errors import Conflict
from shared.platform.http import create_app
from shared.platform.model import Context

INGEDIEND = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
LATER = datetime(2026, 3, 4, 14, 0, tzinfo=UTC)


def aanmelding_data(**overrides: Any) -> dict[str, Any]:
    """The fields of a valid registration form, with top-level overrides."""
    data: dict[str, Any] = {
        "ingediend_door": "bestuurder",
        "bestuurder": {
            "naam": "Anna de Vries",
            "functie": "burgemeester",
            "email": "anna@example.nl",
            "telefoon": "+31 6 12345678",
            "adres": {
                "straat": "Dorpsstraat",
                "huisnummer": "12a",
                "postcode": "1012 AB",
                "woonplaats": "Amsterdam",
            },
        },
        "werkgever": {
            "organisatie": "Gemeente Amsterdam",
            "organisatie_code": "GM0363",
            "contactpersoon": "Piet Jansen",
            "email": "p.jansen@example.nl",
            "telefoon": "020-1234567",
        },
        "reden": "Dreigbrieven na het raadsbesluit.",
        "toestemming": True,
    }
    data.update(overrides)
    return data


def with_werkgever(**fields: Any) -> dict[str, Any]:
    data = aanmelding_data()
    data["werkgever"] = {**data["werkgever"], **fields}
    return data


def with_bestuurder(**fields: Any) -> dict[str, Any]:
    data = aanmelding_data()
    data["bestuurder"] = {**data["bestuurder"], **fields}
    return data


def with_adres(**fields: Any) -> dict[str, Any]:
    data = aanmelding_data()
    data["bestuurder"]["adres"] = {**data["bestuurder"]["adres"], **fields}
    return data


def ingediend(functie: Functie = Functie.BURGEMEESTER) -> Aanvraag:
    aanmelding = Aanmelding.model_validate(with_bestuurder(functie=functie.value))
    aanvraag = project(None, [dien_in(uuid4(), aanmelding, Context(now=INGEDIEND))])
    assert aanvraag is not None
    return aanvraag


# --- eligibility ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("functie", "reden"),
    [
        (Functie.BURGEMEESTER, None),
        (Functie.WETHOUDER, None),
        (Functie.GEDEPUTEERDE, None),
        (Functie.COMMISSARIS_VAN_DE_KONING, None),
        (Functie.DIJKGRAAF, None),
        (Functie.VOORZITTER_WATERSCHAP, None),
        (Functie.DAGELIJKS_BESTUURSLID_WATERSCHAP, None),
        (Functie.RAADSLID, "raadslid"),
        (Functie.STATENLID, "statenlid"),
        (Functie.OVERIG, "overig"),
    ],
)
def test_eligibility_of_every_functie(functie: Functie, reden: str | None) -> None:
    assert buiten_regeling_reden(functie) == reden
    assert ingediend(functie).binnen_regeling is (reden is None)


def test_every_functie_has_an_expected_eligibility() -> None:
    # A new Functie must be placed inside or outside the regeling on purpose, and tested above.
    assert {f.value for f in Functie} == {
        "burgemeester",
        "wethouder",
        "gedeputeerde",
        "commissaris_van_de_koning",
        "dijkgraaf",
        "voorzitter_waterschap",
        "dagelijks_bestuurslid_waterschap",
        "raadslid",
        "statenlid",
        "overig",
    }


def test_an_aanvraag_outside_the_regeling_is_still_accepted() -> None:
    aanvraag = ingediend(Functie.RAADSLID)
    assert aanvraag.status == "ingediend"
    assert not aanvraag.binnen_regeling


# --- validation of the registration form ---------------------------------------------------------


def test_a_complete_form_is_valid() -> None:
    aanmelding = Aanmelding.model_validate(aanmelding_data())
    assert aanmelding.bestuurder.functie is Functie.BURGEMEESTER
    assert aanmelding.werkgever.organisatie_code == "GM0363"
    assert aanmelding.verhuizing_gepland is False


@pytest.mark.parametrize("postcode", ["1012 AB", "1012AB", "9999 ZZ", " 1012 AB "])
def test_valid_postcodes(postcode: str) -> None:
    aanmelding = Aanmelding.model_validate(with_adres(postcode=postcode))
    assert aanmelding.bestuurder.adres.postcode == postcode.strip()


@pytest.mark.parametrize(
    "postcode", ["0123 AB", "123 AB", "10123 AB", "1012 A", "1012 ABC", "1012-AB", "ABCD 12", ""]
)
def test_invalid_postcodes_are_refused(postcode: str) -> None:
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(with_adres(postcode=postcode))
    assert [e["loc"] for e in info.value.errors()] == [("bestuurder", "adres", "postcode")]


@pytest.mark.parametrize("code", ["GM0363", "GM0001", "PV27", "PV20", "WS0155", "WS0664"])
def test_valid_cbs_organisatie_codes(code: str) -> None:
    aanmelding = Aanmelding.model_validate(with_werkgever(organisatie_code=code))
    assert aanmelding.werkgever.organisatie_code == code


@pytest.mark.parametrize(
    "code",
    [
        "GM363",  # a gemeente has four digits
        "GM03630",
        "gm0363",
        "PV7",  # a provincie has two digits
        "PV027",
        "WS155",  # a waterschap has four digits
        "WS01555",
        "XX0363",
        "0363",
        " GM0363",
        "",
    ],
)
def test_invalid_cbs_organisatie_codes_are_refused(code: str) -> None:
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(with_werkgever(organisatie_code=code))
    assert [e["loc"] for e in info.value.errors()] == [("werkgever", "organisatie_code")]


@pytest.mark.parametrize("email", ["anna@example.nl", "a.b+c@sub.example.org", " anna@example.nl "])
def test_valid_email_addresses(email: str) -> None:
    aanmelding = Aanmelding.model_validate(with_bestuurder(email=email))
    assert aanmelding.bestuurder.email == email.strip()


@pytest.mark.parametrize(
    "email", ["anna", "anna@example", "@example.nl", "anna@@example.nl", "an na@example.nl", ""]
)
def test_invalid_email_addresses_are_refused(email: str) -> None:
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(with_werkgever(email=email))
    assert [e["loc"] for e in info.value.errors()] == [("werkgever", "email")]


@pytest.mark.parametrize(
    ("email", "rule"),
    [
        ("anna@example.nl\r\nBcc: iemand@example.org", "email_stuurteken"),
        ("=?utf-8?q?anna?=@example.nl", "email_encoded_word"),
        ("anna@example.nl, piet@example.nl", "email_meer_dan_een_adres"),
        ("Anna de Vries <anna@example.nl>", "email_weergavenaam"),
        ("anna@intranet.local", "email_ongeldig"),
    ],
)
def test_an_address_that_could_change_a_mail_header_is_refused_by_rule(
    email: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(with_bestuurder(email=email))
    [error] = info.value.errors(include_input=False)
    assert (error["loc"], error["type"]) == (("bestuurder", "email"), rule)
    assert email not in str(error)


def test_the_address_is_stored_as_the_mailer_sends_it() -> None:
    aanmelding = Aanmelding.model_validate(with_werkgever(email=" P.Jansen@Example.NL "))
    assert aanmelding.werkgever.email == "P.Jansen@example.nl"


def test_the_422_names_the_field_and_the_rule_never_the_address() -> None:
    api = create_app(service="intake", title="t", version="1", max_body_bytes=100_000)

    @api.post("/aanvragen")
    def dien_in_(aanmelding: Aanmelding) -> dict[str, str]:
        return {}

    email = "=?utf-8?q?geheim?=@verzonnen.example.nl"
    with TestClient(api) as client:
        response = client.post("/aanvragen", json=with_bestuurder(email=email))
    assert response.status_code == 422
    assert [(e["field"], e["rule"]) for e in response.json()["errors"]] == [
        ("body.bestuurder.email", "email_encoded_word")
    ]
    assert "geheim" not in response.text and "verzonnen" not in response.text


def test_an_aanmelding_an_earlier_release_stored_with_an_address_refused_today_still_loads() -> (
    None
):
    event = dien_in(uuid4(), Aanmelding.model_validate(aanmelding_data()), Context(now=INGEDIEND))
    stored = event.model_dump(mode="json")
    stored["aanmelding"]["bestuurder"]["email"] = "anna,piet@example.nl"

    loaded = AanvraagOntvangen.model_validate(stored)

    assert isinstance(loaded.aanmelding, EerdereAanmelding)
    assert isinstance(loaded.aanmelding, Aanmelding)  # to every reader, an aanmelding
    assert loaded.aanmelding.bestuurder.email == "anna,piet@example.nl"  # as stored
    aanvraag = project(None, [loaded])
    assert aanvraag is not None and aanvraag.aanmelding == loaded.aanmelding
    # Today's addresses load as today's aanmelding.
    assert type(AanvraagOntvangen.model_validate(event.model_dump(mode="json")).aanmelding) is (
        Aanmelding
    )


@pytest.mark.parametrize("telefoon", ["0612345678", "+31 6 12345678", "020-1234567", "(020) 123"])
def test_valid_phone_numbers(telefoon: str) -> None:
    aanmelding = Aanmelding.model_validate(with_bestuurder(telefoon=telefoon))
    assert aanmelding.bestuurder.telefoon == telefoon


@pytest.mark.parametrize(
    "telefoon", ["12345", "06-1234567a", "bel me", "+31 6 1234 5678 9012 3456", "++31612345678"]
)
def test_invalid_phone_numbers_are_refused(telefoon: str) -> None:
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(with_bestuurder(telefoon=telefoon))
    assert [e["loc"] for e in info.value.errors()] == [("bestuurder", "telefoon")]


@pytest.mark.parametrize("telefoon", ["------", "()()()", "- - - - - -"])
def test_a_phone_number_without_digits_is_refused(telefoon: str) -> None:
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(with_bestuurder(telefoon=telefoon))


@pytest.mark.parametrize("toestemming", [False, "true", "ja", None, 1])
def test_consent_must_be_given(toestemming: object) -> None:
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(aanmelding_data(toestemming=toestemming))
    assert [e["loc"] for e in info.value.errors()] == [("toestemming",)]


def test_consent_may_not_be_left_out() -> None:
    data = aanmelding_data()
    del data["toestemming"]
    with pytest.raises(ValidationError) as info:
        Aanmelding.model_validate(data)
    assert [e["loc"] for e in info.value.errors()] == [("toestemming",)]


def test_unknown_fields_are_refused_at_every_level() -> None:
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(aanmelding_data(geboortedatum="1970-01-01"))
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(with_bestuurder(bsn="123456782"))
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(with_werkgever(kvk="12345678"))
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(with_adres(land="NL"))


@pytest.mark.parametrize("ingediend_door", ["aanvrager", "secretariaat", ""])
def test_only_bestuurder_or_werkgever_submits(ingediend_door: str) -> None:
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(aanmelding_data(ingediend_door=ingediend_door))


def test_empty_reden_is_refused() -> None:
    with pytest.raises(ValidationError):
        Aanmelding.model_validate(aanmelding_data(reden="   "))


def test_confirmation_goes_to_whoever_submitted() -> None:
    door_bestuurder = Aanmelding.model_validate(aanmelding_data(ingediend_door="bestuurder"))
    door_werkgever = Aanmelding.model_validate(aanmelding_data(ingediend_door="werkgever"))
    assert door_bestuurder.aanvrager_email == "anna@example.nl"
    assert door_werkgever.aanvrager_email == "p.jansen@example.nl"


# --- submitting, withdrawing, rebuilding ---------------------------------------------------------


def test_dien_in_records_the_registration_as_the_first_event() -> None:
    aanvraag_id = uuid4()
    aanmelding = Aanmelding.model_validate(aanmelding_data())
    ctx = Context(now=INGEDIEND, actor_role="aanvrager", correlation_id="req-1")
    event = dien_in(aanvraag_id, aanmelding, ctx)
    assert isinstance(event, AanvraagOntvangen)
    assert (event.originator_id, event.originator_version) == (aanvraag_id, 1)
    assert event.timestamp == INGEDIEND
    assert event.actor_role == "aanvrager"
    assert event.correlation_id == "req-1"
    assert event.aanmelding == aanmelding


def test_project_rebuilds_a_submitted_aanvraag() -> None:
    aanvraag_id = uuid4()
    aanmelding = Aanmelding.model_validate(aanmelding_data())
    aanvraag = project(None, [dien_in(aanvraag_id, aanmelding, Context(now=INGEDIEND))])
    assert aanvraag is not None
    assert aanvraag.id == aanvraag_id
    assert aanvraag.version == 1
    assert aanvraag.status == "ingediend"
    assert aanvraag.ontvangen_op == INGEDIEND
    assert aanvraag.aanmelding == aanmelding


def test_project_of_no_events_is_none() -> None:
    assert project(None, []) is None


def test_withdrawing_records_who_and_when_and_project_shows_it() -> None:
    aanvraag = ingediend()
    ctx = Context(now=LATER, actor_id="sec-1", actor_role="secretariaat")
    event = trek_in(aanvraag, ctx)
    assert isinstance(event, AanvraagIngetrokken)
    assert (event.originator_id, event.originator_version) == (aanvraag.id, 2)
    assert (event.timestamp, event.actor_id, event.actor_role) == (LATER, "sec-1", "secretariaat")

    ingetrokken = project(aanvraag, [event])
    assert ingetrokken is not None
    assert ingetrokken.status == "ingetrokken"
    assert ingetrokken.version == 2
    assert ingetrokken.aanmelding == aanvraag.aanmelding  # nothing is deleted


def test_project_from_scratch_equals_project_step_by_step() -> None:
    aanvraag_id = uuid4()
    aanmelding = Aanmelding.model_validate(aanmelding_data())
    ontvangen = dien_in(aanvraag_id, aanmelding, Context(now=INGEDIEND))
    stap1 = project(None, [ontvangen])
    assert stap1 is not None
    ingetrokken = trek_in(stap1, Context(now=LATER))
    assert ingetrokken is not None
    assert project(None, [ontvangen, ingetrokken]) == project(stap1, [ingetrokken])


def test_withdrawing_twice_has_one_effect() -> None:
    aanvraag = ingediend()
    first = trek_in(aanvraag, Context(now=LATER))
    assert first is not None
    ingetrokken = project(aanvraag, [first])
    assert ingetrokken is not None
    assert trek_in(ingetrokken, Context(now=LATER)) is None


def test_withdrawing_a_closed_dossier_is_a_conflict() -> None:
    afgesloten = ingediend().model_copy(update={"status": "afgesloten"})
    with pytest.raises(Conflict) as info:
        trek_in(afgesloten, Context(now=LATER))
    assert "afgesloten" in info.value.reason


def test_closing_needs_every_measure_done_unless_the_secretariat_closes() -> None:
    aanvraag = ingediend()
    with pytest.raises(Conflict):
        sluit_af(aanvraag, "alle_maatregelen_uitgevoerd", None, 3, 2, Context(now=LATER))
    with pytest.raises(Conflict):
        sluit_af(aanvraag, "alle_maatregelen_uitgevoerd", None, 0, 0, Context(now=LATER))
    done = sluit_af(aanvraag, "alle_maatregelen_uitgevoerd", None, 3, 3, Context(now=LATER))
    assert done is not None and done.maatregelen_uitgevoerd == 3
    by_hand = sluit_af(aanvraag, "gesloten_door_secretariaat", "reden", 3, 1, Context(now=LATER))
    assert by_hand is not None and by_hand.toelichting == "reden"


def test_closing_twice_has_one_effect_and_a_withdrawn_dossier_is_not_closed() -> None:
    aanvraag = ingediend()
    first = sluit_af(aanvraag, "gesloten_door_secretariaat", None, 0, 0, Context(now=LATER))
    assert first is not None
    afgesloten = project(aanvraag, [first])
    assert afgesloten is not None and afgesloten.status == "afgesloten"
    assert (
        sluit_af(afgesloten, "gesloten_door_secretariaat", None, 0, 0, Context(now=LATER)) is None
    )
    ingetrokken = aanvraag.model_copy(update={"status": "ingetrokken"})
    with pytest.raises(Conflict):
        sluit_af(ingetrokken, "gesloten_door_secretariaat", None, 0, 0, Context(now=LATER))
