"""Encryption at rest per dossier and forgetting (crypto-shredding), on real PostgreSQL.

Intake, assessment and approval run in-process (``bootstrap`` with TestClients); a small bus
takes what each one recorded through its gateway and delivers the public events to the others'
subscription handlers, as relay and consumers would. Scheduling's facts (conversations held, the
woningscan) are delivered as its public events. Who a caller is in a dossier is asked of intake's
real internal API (``DossierParties`` on intake's TestClient).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from services.approval.bootstrap import bootstrap as approval_bootstrap
from services.assessment.bootstrap import bootstrap as assessment_bootstrap
from services.assessment.domain import PkvwStatusGewijzigd, RapportHerzien, RapportOpgesteld
from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.bootstrap import bootstrap as intake_bootstrap
from services.intake.domain import (
    Aanmelding,
    AanvraagOntvangen,
    DossierAfgesloten,
    PersoonsgegevensVergeten,
    VergetenAanmelding,
)
from services.intake.ops.forget import Heraangebracht, forget, main, reapply
from shared.contracts import events as public
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.access import opaque_actor_id
from shared.platform.consumer import Delivery
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import public_event_id
from shared.platform.forgotten import ForgetRecord, Forgotten
from shared.platform.keys import KeyEncryptionKeys, KeyStoreError, retire, rotate
from shared.platform.model import VERGETEN, DomainEvent, FixedClock
from shared.platform.parties import DossierParties
from shared.platform.runtime import Components
from shared.platform.settings import SERVICES, Settings
from tests.support import aanmelding, personal_values, token

pytestmark = pytest.mark.integration

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
KEY_SERVICES = ("intake", "assessment", "approval")


def nats_match(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` the rest."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(tokens) > index
        if index >= len(tokens) or part not in ("*", tokens[index]):
            return False
    return len(wanted) == len(tokens)


@dataclass
class Stelsel:
    """Intake, assessment and approval of one test, joined by an in-process bus."""

    settings: Settings
    services: dict[str, Components]
    clients: dict[str, TestClient]
    positions: dict[str, int] = field(default_factory=dict)
    sequence: int = 0

    def app(self, service: str) -> Any:
        """A service's application."""
        return self.services[service].app

    @property
    def intake(self) -> Intake:
        """Intake's application."""
        app = self.app("intake")
        assert isinstance(app, Intake)
        return app

    def deliver(self, event: public.PublicEvent, envelope: CloudEvent) -> None:
        """Hand one public event to every subscription that takes its subject."""
        self.sequence += 1
        subject = subject_for(event)
        for components in self.services.values():
            for subscription in components.subscriptions:
                if any(nats_match(p, subject) for p in subscription.subjects):
                    subscription.handler(
                        Delivery(envelope, event, stream_sequence=self.sequence, attempt=1)
                    )

    def publish(self, event: public.PublicEvent) -> None:
        """A public event of a service that does not run here (scheduling)."""
        envelope = to_cloudevent(
            event,
            id=str(uuid4()),
            source=self.settings.source_for(event.emitting_service),
            time=NU,
            actorid=f"svc-{event.emitting_service}",
            actorrole="systeem",
        )
        self.deliver(event, envelope)

    def pump(self) -> None:
        """Relay what every service recorded until nothing new is recorded."""
        moved = True
        while moved:
            moved = False
            for service, components in self.services.items():
                start = self.positions.get(service, 0) + 1
                for notification in components.app.recorder.select_notifications(start, 1000):
                    moved = True
                    self.positions[service] = notification.id
                    event = components.app.mapper.to_domain_event(notification)
                    assert isinstance(event, DomainEvent)
                    for index, announced in enumerate(components.gateway(event)):
                        envelope = to_cloudevent(
                            announced,
                            id=public_event_id(
                                service, event.originator_id, event.originator_version, index
                            ),
                            source=self.settings.source_for(service),
                            time=event.timestamp,
                            correlationid=event.correlation_id,
                            causationid=event.causation_id,
                            actorrole=event.actor_role,
                            actorid=event.actor_id,
                        )
                        self.deliver(announced, envelope)

    def als(self, role: str, sub: str, **claims: Any) -> dict[str, str]:
        """A token for a role."""
        return token(self.settings.data_dir, role, sub=sub, **claims)

    def call(self, service: str, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
        """Call a service's API."""
        return self.clients[service].request(method, url, headers=headers, **kw)


@pytest.fixture
def stelsel(settings: Settings) -> Iterator[Stelsel]:
    clock = FixedClock(NU)
    intake = intake_bootstrap(settings, clock)
    service_token = token(settings.data_dir, "dienst", sub="svc-test")["Authorization"][7:]
    with TestClient(intake.api) as intake_client:
        parties = DossierParties("http://intake", lambda: service_token)
        parties.client = intake_client  # intake's real internal API, in-process
        assessment = assessment_bootstrap(settings, clock, parties=parties)
        approval = approval_bootstrap(settings, clock, parties=parties)
        with (
            TestClient(assessment.api) as assessment_client,
            TestClient(approval.api) as approval_client,
        ):
            yield Stelsel(
                settings,
                {"intake": intake, "assessment": assessment, "approval": approval},
                {
                    "intake": intake_client,
                    "assessment": assessment_client,
                    "approval": approval_client,
                },
            )


@dataclass(frozen=True)
class Dossier:
    """A dossier driven to an approved report, and every personal value it holds."""

    aanvraag_id: UUID
    rapport_id: UUID
    body: dict[str, Any]
    secrets: tuple[str, ...]  # every personal value, as a leak would contain it

    @property
    def bestuurder_email(self) -> str:
        """The bestuurder's e-mail (the claim that makes a token theirs)."""
        return str(self.body["bestuurder"]["email"])


def report(tag: str) -> dict[str, Any]:
    """A report whose every text is tagged (so a leak is easy to find)."""
    return {
        "bevindingen": {
            "werk": f"Dreigmails op het werk Bevinding{tag}A.",
            "wonen": f"Achterdeur zonder slot Bevinding{tag}B.",
            "informatie": f"Adres vindbaar Bevinding{tag}C.",
            "verplaatsen": f"Vaste route Bevinding{tag}D.",
        },
        "maatregelen": [
            {
                "domein": "wonen",
                "omschrijving": f"Inbraakwerend slot Maatregel{tag}E",
                "kosten": "met_kosten",
                "uitvoerder": "werkgever",
                "prioriteit": "hoog",
            },
            {
                "domein": "informatie",
                "omschrijving": f"Adres afschermen Maatregel{tag}F",
                "kosten": "kosteloos",
                "uitvoerder": "bestuurder",
                "prioriteit": "middel",
            },
        ],
    }


def texts(body: dict[str, Any]) -> list[str]:
    """The personal texts of a report body."""
    return [*body["bevindingen"].values(), *(m["omschrijving"] for m in body["maatregelen"])]


def drive(stelsel: Stelsel) -> Dossier:
    """Register, research, draft, reject (with reasons), revise, approve, report the PKVW."""
    body = aanmelding()
    response = stelsel.call("intake", "POST", "/aanvragen", {}, json=body)
    assert response.status_code == 201, response.text
    aanvraag_id = UUID(response.json()["aanvraag_id"])
    stelsel.pump()
    for soort in (public.AfspraakSoort.GESPREK_WERKGEVER, public.AfspraakSoort.GESPREK_BESTUURDER):
        stelsel.publish(
            public.GesprekGevoerd(
                aanvraag_id=aanvraag_id, afspraak_id=uuid4(), soort=soort, gevoerd_op=NU
            )
        )
    stelsel.publish(
        public.WoningscanUitgevoerd(aanvraag_id=aanvraag_id, afspraak_id=uuid4(), uitgevoerd_op=NU)
    )
    tag = secrets.token_hex(4)
    eerste, tweede = report(tag + "v1"), report(tag + "v2")
    adviseur, bva = stelsel.als("adviseur", "adv-1"), stelsel.als("bva", "bva-1")
    response = stelsel.call(
        "assessment", "POST", f"/aanvragen/{aanvraag_id}/rapport", adviseur, json=eerste
    )
    assert response.status_code == 201, response.text
    rapport_id = UUID(response.json()["rapport_id"])
    hash_v1 = response.json()["inhoud_hash"]
    assert stelsel.call(
        "assessment", "POST", f"/rapporten/{rapport_id}/indienen", adviseur
    ).is_success
    stelsel.pump()
    redenen = [f"Slot ontbreekt bij de achterdeur Reden{tag}G", f"Route niet gewijzigd Reden{tag}H"]
    response = stelsel.call(
        "approval",
        "POST",
        f"/rapporten/{rapport_id}/afkeuren",
        bva,
        json={"versie": 1, "inhoud_hash": hash_v1, "redenen": redenen},
    )
    assert response.status_code == 200, response.text
    stelsel.pump()
    response = stelsel.call("assessment", "PUT", f"/rapporten/{rapport_id}", adviseur, json=tweede)
    assert response.status_code == 200, response.text
    hash_v2 = response.json()["inhoud_hash"]
    assert stelsel.call(
        "assessment", "POST", f"/rapporten/{rapport_id}/indienen", adviseur
    ).is_success
    stelsel.pump()
    response = stelsel.call(
        "approval",
        "POST",
        f"/rapporten/{rapport_id}/goedkeuren",
        bva,
        json={"versie": 2, "inhoud_hash": hash_v2},
    )
    assert response.status_code == 200, response.text
    stelsel.pump()
    nummer = f"PKVW{tag}N"
    response = stelsel.call(
        "assessment",
        "POST",
        f"/aanvragen/{aanvraag_id}/pkvw",
        stelsel.als("bestuurder", "best-1", email=body["bestuurder"]["email"]),
        json={"status": "certificaat", "afgegeven_op": "2026-04-01", "nummer": nummer},
    )
    assert response.status_code == 200, response.text
    stelsel.pump()
    werkgever = body["werkgever"]
    geheimen = (
        *personal_values(body),
        werkgever["telefoon"],
        *texts(eerste),
        *texts(tweede),
        *redenen,
        nummer,
        tag,
    )
    return Dossier(aanvraag_id, rapport_id, body, tuple(geheimen))


def raw_states(settings: Settings) -> dict[str, list[bytes]]:
    """The stored ``state`` of every event of the three services, as PostgreSQL holds it."""
    with psycopg.connect(settings.database_url) as conn:
        return {
            service: [
                bytes(row[0])
                for row in conn.execute(
                    SQL("SELECT state FROM {} ORDER BY notification_id").format(
                        Identifier(service, f"{service}_events")
                    )
                )
            ]
            for service in KEY_SERVICES
        }


def replay(stelsel: Stelsel) -> dict[str, list[DomainEvent]]:
    """Every stored event of the three services, decoded as a replay would."""
    return {
        service: [
            stelsel.app(service).mapper.to_domain_event(n)
            for n in stelsel.app(service).recorder.select_notifications(1, 100_000)
        ]
        for service in KEY_SERVICES
    }


def announced(
    stelsel: Stelsel, events: dict[str, list[DomainEvent]]
) -> dict[str, list[dict[str, Any]]]:
    """What each service's gateway announces of these events (the public skeleton)."""
    return {
        service: [
            announcement.model_dump(mode="json")
            for event in recorded
            for announcement in stelsel.services[service].gateway(event)
        ]
        for service, recorded in events.items()
    }


def leaks(text: str, dossier: Dossier) -> list[str]:
    """The personal values of the dossier that occur in a text."""
    return [value for value in dossier.secrets if value in text]


def of_type(events: Sequence[DomainEvent], cls: type[DomainEvent]) -> list[Any]:
    """The events of one class."""
    return [e for e in events if isinstance(e, cls)]


def dienst(stelsel: Stelsel) -> dict[str, str]:
    """A service token (what notifications sends to intake's claim-check)."""
    return stelsel.als("dienst", "svc-notifications")


# --- at rest, and while the key exists ----------------------------------------------------------


def test_personal_data_is_encrypted_at_rest_and_reads_back_while_the_key_exists(
    stelsel: Stelsel,
) -> None:
    dossier = drive(stelsel)

    for service, states in raw_states(stelsel.settings).items():
        stored = b"\n".join(states).decode()
        assert leaks(stored, dossier) == [], f"{service} stores personal data in clear"
    # The skeleton stays readable in the stored JSON: no key needed to see what happened.
    (ontvangen,) = [
        json.loads(s) for s in raw_states(stelsel.settings)["intake"] if b"aanmelding" in s
    ]
    assert ontvangen["aanmelding"]["bestuurder"]["functie"] == "burgemeester"
    assert ontvangen["aanmelding"]["werkgever"]["organisatie_code"] == "GM0363"
    assert set(ontvangen["aanmelding"]["bestuurder"]["email"]) == {"enc", "ct"}

    assert stelsel.intake.persoonsgegevens(dossier.aanvraag_id) == Aanmelding.model_validate(
        dossier.body
    )
    response = stelsel.call(
        "intake", "GET", f"/internal/aanvragen/{dossier.aanvraag_id}/ontvanger", dienst(stelsel)
    )
    assert response.json() == {"email": dossier.body["bestuurder"]["email"]}
    response = stelsel.call(
        "assessment", "GET", f"/rapporten/{dossier.rapport_id}", stelsel.als("adviseur", "adv-1")
    )
    assert response.status_code == 200
    assert response.json()["vergeten"] is False
    assert response.json()["inhoud"]["bevindingen"]["werk"].startswith("Dreigmails op het werk")
    redenen = stelsel.call(
        "approval",
        "GET",
        f"/rapporten/{dossier.rapport_id}/beoordelingen",
        stelsel.als("bva", "bva-1"),
    ).json()["versies"][0]["redenen"]
    assert redenen[0].startswith("Slot ontbreekt bij de achterdeur")


def test_each_dossier_has_its_own_key_kept_apart_from_the_events(stelsel: Stelsel) -> None:
    first, second = drive(stelsel), drive(stelsel)

    with psycopg.connect(stelsel.settings.database_url, row_factory=dict_row) as conn:
        for service in KEY_SERVICES:
            rows = conn.execute(
                SQL("SELECT aanvraag_id, key_id, kek_id, wrapped_key FROM {}").format(
                    Identifier(service, "dossier_keys")
                )
            ).fetchall()
            assert {r["aanvraag_id"] for r in rows} == {first.aanvraag_id, second.aanvraag_id}
            assert len({r["key_id"] for r in rows}) == 2
            assert {r["kek_id"] for r in rows} == {"1"}
            assert all(len(bytes(r["wrapped_key"])) == 12 + 32 + 16 for r in rows)
    assert [p.name for p in stelsel.settings.kek_path.glob("kek-*")] == ["kek-1.key"]

    forget(stelsel.settings, first.aanvraag_id, "fg-1", "verzoek_betrokkene")

    # Forgetting one person leaves the other readable.
    assert stelsel.intake.persoonsgegevens(second.aanvraag_id).bestuurder.email == (
        second.bestuurder_email
    )


# --- forgetting -----------------------------------------------------------------------------------


def test_after_forgetting_no_api_replay_or_reader_reveals_the_person(stelsel: Stelsel) -> None:
    dossier = drive(stelsel)
    rows_before = {s: len(states) for s, states in raw_states(stelsel.settings).items()}
    raw_before = raw_states(stelsel.settings)
    skeleton_before = announced(stelsel, replay(stelsel))
    hash_before = stelsel.app("assessment").rapport(dossier.rapport_id).huidige.inhoud_hash

    result = forget(stelsel.settings, dossier.aanvraag_id, "fg-1", "verzoek_betrokkene", now=NU)

    assert result.vastgelegd
    assert result.diensten == KEY_SERVICES
    # The stored events are untouched: the same rows, the same bytes (a hash chain still holds).
    after = raw_states(stelsel.settings)
    for service, states in after.items():
        assert states[: rows_before[service]] == raw_before[service]
    assert {s: len(v) for s, v in after.items()} == {
        **rows_before,
        "intake": rows_before["intake"] + 1,
    }

    # A full replay decodes every event and contains none of the person's data.
    events = replay(stelsel)
    everything = "\n".join(e.model_dump_json() for recorded in events.values() for e in recorded)
    assert leaks(everything, dossier) == []
    (ontvangen,) = of_type(events["intake"], AanvraagOntvangen)
    assert ontvangen.vergeten
    assert isinstance(ontvangen.aanmelding, VergetenAanmelding)
    assert ontvangen.aanmelding.bestuurder.functie == "burgemeester"
    assert ontvangen.timestamp == NU and ontvangen.originator_id == dossier.aanvraag_id
    versies = [*of_type(events["assessment"], RapportOpgesteld)]
    versies += of_type(events["assessment"], RapportHerzien)
    for versie in versies:
        assert versie.vergeten
        assert versie.inhoud.bevindingen.werk == VERGETEN
        assert {m.omschrijving for m in versie.inhoud.maatregelen} == {VERGETEN}
        assert [m.domein for m in versie.inhoud.maatregelen] == ["wonen", "informatie"]
    (pkvw,) = of_type(events["assessment"], PkvwStatusGewijzigd)
    assert (pkvw.nummer, pkvw.status, pkvw.afgegeven_op) == (
        VERGETEN,
        "certificaat",
        date(2026, 4, 1),
    )
    (recorded,) = of_type(events["intake"], PersoonsgegevensVergeten)
    assert (recorded.reden, recorded.actor_role, recorded.diensten) == (
        "verzoek_betrokkene",
        "beheerder",
        ("intake", "assessment", "approval"),
    )
    assert recorded.actor_id == opaque_actor_id("fg-1")  # a pseudonym, never the name

    # The skeleton remains: every gateway announces exactly what it announced before, plus the
    # forgetting itself; the report keeps the hash of the version the BVA approved.
    skeleton_after = announced(stelsel, events)
    assert skeleton_after == {
        **skeleton_before,
        "intake": [
            *skeleton_before["intake"],
            {
                "aanvraag_id": str(dossier.aanvraag_id),
                "vergeten_op": "2026-05-11T10:00:00Z",
                "reden": "verzoek_betrokkene",
            },
        ],
    }
    assert stelsel.app("assessment").rapport(dossier.rapport_id).huidige.inhoud_hash == hash_before

    # The APIs: the claim-check refuses clearly, the report shows placeholders.
    for path in ("ontvanger", "adres"):
        response = stelsel.call(
            "intake", "GET", f"/internal/aanvragen/{dossier.aanvraag_id}/{path}", dienst(stelsel)
        )
        assert response.status_code == 410
        assert response.json()["code"] == "persoonsgegevens_vergeten"
        assert leaks(response.text, dossier) == []
    response = stelsel.call(
        "assessment", "GET", f"/rapporten/{dossier.rapport_id}", stelsel.als("compliance", "c-1")
    )
    assert response.status_code == 200
    inzage = response.json()
    assert inzage["vergeten"] is True
    assert inzage["inhoud"]["bevindingen"]["wonen"] == VERGETEN
    assert inzage["inhoud_hash"] == hash_before
    assert leaks(response.text, dossier) == []
    response = stelsel.call(
        "approval",
        "GET",
        f"/rapporten/{dossier.rapport_id}/beoordelingen",
        stelsel.als("bva", "bva-1"),
    )
    assert response.json()["versies"][0]["redenen"] == [VERGETEN, VERGETEN]
    assert response.json()["versies"][0]["besluit"] == "afgekeurd"
    assert leaks(response.text, dossier) == []

    # The other readers cope: the relay's gateways ran above; the dossier projection takes the
    # public event and its audit trail holds nothing personal.
    stelsel.pump()
    compliance = stelsel.als("compliance", "c-1")
    view = stelsel.call("intake", "GET", f"/aanvragen/{dossier.aanvraag_id}", compliance).json()
    assert view["persoonsgegevens_vergeten_op"] == "2026-05-11T10:00:00Z"
    assert view["status"] == "goedgekeurd"
    assert "PersoonsgegevensVergeten" in [r["gebeurtenis"] for r in view["tijdlijn"]]
    audit = stelsel.call("intake", "GET", f"/aanvragen/{dossier.aanvraag_id}/audit", compliance)
    assert audit.status_code == 200 and leaks(audit.text, dossier) == []
    # The audit export of the dossier, in each of its formats, likewise.
    for formaat in ("json", "csv", "html"):
        export = stelsel.call(
            "intake",
            "GET",
            "/audit/export",
            compliance,
            params={"aanvraag_id": dossier.aanvraag_id, "formaat": formaat},
        )
        assert export.status_code == 200, export.text
        assert str(dossier.aanvraag_id) in export.text  # it is the dossier's export
        assert leaks(export.text, dossier) == [], formaat
    # The bestuurder can no longer be matched to the dossier: the e-mail hash went too.
    bestuurder = stelsel.als("bestuurder", "best-1", email=dossier.bestuurder_email)
    assert (
        stelsel.call("intake", "GET", f"/aanvragen/{dossier.aanvraag_id}", bestuurder).status_code
        == 404
    )


def test_a_forgotten_dossier_takes_no_new_personal_data_but_the_process_goes_on(
    stelsel: Stelsel,
) -> None:
    dossier = drive(stelsel)
    forget(stelsel.settings, dossier.aanvraag_id, "fg-1", "toestemming_ingetrokken")

    # Personal data for the dossier are refused in the service that would store them...
    response = stelsel.call(
        "intake",
        "POST",
        f"/aanvragen/{dossier.aanvraag_id}/afsluiten",
        stelsel.als("secretariaat", "sec-1"),
        json={"toelichting": "Op verzoek van de bestuurder gesloten"},
    )
    assert response.status_code == 410
    assert response.json()["code"] == "persoonsgegevens_vergeten"
    # ...while a step without personal data is recorded as usual.
    response = stelsel.call(
        "intake",
        "POST",
        f"/aanvragen/{dossier.aanvraag_id}/intrekken",
        stelsel.als("secretariaat", "sec-1"),
    )
    assert response.status_code == 200
    assert stelsel.intake.aanvraag(dossier.aanvraag_id).status == "ingetrokken"


def test_the_closing_note_is_forgotten_too_and_scheduling_gets_a_tombstone(
    stelsel: Stelsel,
) -> None:
    body = aanmelding()
    aanvraag_id = UUID(
        stelsel.call("intake", "POST", "/aanvragen", {}, json=body).json()["aanvraag_id"]
    )
    note = f"Gesloten na telefoongesprek Toelichting{secrets.token_hex(4)}"
    response = stelsel.call(
        "intake",
        "POST",
        f"/aanvragen/{aanvraag_id}/afsluiten",
        stelsel.als("secretariaat", "sec-1"),
        json={"toelichting": note},
    )
    assert response.status_code == 200
    assert note.encode() not in b"".join(raw_states(stelsel.settings)["intake"])

    result = forget(stelsel.settings, aanvraag_id, "fg-1", "bewaartermijn_verstreken")

    # Only intake held personal data of this dossier; every other service got a tombstone.
    assert result.diensten == ("intake",)
    (closed,) = of_type(replay(stelsel)["intake"], DossierAfgesloten)
    assert (closed.toelichting, closed.reden, closed.vergeten) == (
        VERGETEN,
        "gesloten_door_secretariaat",
        True,
    )
    with psycopg.connect(stelsel.settings.database_url, row_factory=dict_row) as conn:
        for service in SERVICES:
            row = conn.execute(
                SQL("SELECT wrapped_key, destroyed_reason FROM {} WHERE aanvraag_id = %s").format(
                    Identifier(service, "dossier_keys")
                ),
                (aanvraag_id,),
            ).fetchone()
            assert row == {"wrapped_key": None, "destroyed_reason": "bewaartermijn_verstreken"}


def test_forgetting_twice_changes_nothing_and_is_recorded_once(stelsel: Stelsel) -> None:
    dossier = drive(stelsel)
    first = forget(stelsel.settings, dossier.aanvraag_id, "fg-1", "verzoek_betrokkene")
    keys_after_first = {
        service: stelsel.app(service).keys.status(dossier.aanvraag_id) for service in KEY_SERVICES
    }

    again = forget(stelsel.settings, dossier.aanvraag_id, "fg-2", "onrechtmatig_verwerkt")

    assert first.vastgelegd and not again.vastgelegd
    assert again.diensten == ()
    assert len(of_type(replay(stelsel)["intake"], PersoonsgegevensVergeten)) == 1
    for service in KEY_SERVICES:
        status = stelsel.app(service).keys.status(dossier.aanvraag_id)
        assert status == keys_after_first[service]  # the first who, when and why are kept
        assert status is not None
        assert (status.destroyed_by, status.destroyed_reason) == (
            opaque_actor_id("fg-1"),
            "verzoek_betrokkene",
        )


def test_forgetting_an_unknown_dossier_destroys_nothing(stelsel: Stelsel) -> None:
    dossier = drive(stelsel)
    with pytest.raises(NietGevonden):
        forget(stelsel.settings, uuid4(), "fg-1", "verzoek_betrokkene")
    assert stelsel.intake.persoonsgegevens(dossier.aanvraag_id).reden == dossier.body["reden"]


def test_the_command_line_forgets_and_says_so(
    stelsel: Stelsel, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dossier = drive(stelsel)
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", stelsel.settings.database_url)
    monkeypatch.setenv("WEERBAAR_NATS_URL", stelsel.settings.nats_url)
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(stelsel.settings.data_dir))
    argv = [str(dossier.aanvraag_id), "--reden", "verzoek_betrokkene", "--door", "fg-1"]

    assert main(argv) == 0
    assert "personal data forgotten (keys destroyed: intake, assessment, approval)" in (
        capsys.readouterr().out
    )
    assert main(argv) == 0
    assert "was forgotten before" in capsys.readouterr().out
    assert main([str(uuid4()), "--reden", "verzoek_betrokkene"]) == 1
    with pytest.raises(SystemExit):
        main([str(dossier.aanvraag_id), "--reden", "zomaar"])


# --- rotating the key-encryption key --------------------------------------------------------------


def test_kek_rotation_rewraps_every_key_and_keeps_everything_readable(stelsel: Stelsel) -> None:
    dossier, forgotten = drive(stelsel), drive(stelsel)
    forget(stelsel.settings, forgotten.aanvraag_id, "fg-1", "verzoek_betrokkene")
    kek_dir = stelsel.settings.kek_path
    before = replay(stelsel)
    with pytest.raises(KeyStoreError):
        retire(stelsel.settings.database_url, kek_dir, SERVICES, "1")  # still the active one

    rotation = rotate(stelsel.settings.database_url, kek_dir, SERVICES)

    assert rotation.kek_id == "2"
    assert {s: rotation.rewrapped.get(s) for s in KEY_SERVICES} == {s: 1 for s in KEY_SERVICES}
    assert rotation.retirable == ["1"]
    retire(stelsel.settings.database_url, kek_dir, SERVICES, "1")
    assert KeyEncryptionKeys(kek_dir).ids() == ["2"]
    # The running services and a freshly started one read everything as before.
    assert replay(stelsel) == before
    restarted = intake_application(stelsel.settings.eventsourcing_env("intake"))
    assert restarted.persoonsgegevens(dossier.aanvraag_id) == Aanmelding.model_validate(
        dossier.body
    )
    assert isinstance(restarted.aanvraag(forgotten.aanvraag_id).aanmelding, VergetenAanmelding)
    response = stelsel.call(
        "assessment", "GET", f"/rapporten/{dossier.rapport_id}", stelsel.als("adviseur", "adv-1")
    )
    assert response.json()["inhoud"]["bevindingen"]["werk"].startswith("Dreigmails op het werk")
    # New dossiers get keys wrapped by the new KEK.
    newer = drive(stelsel)
    with psycopg.connect(stelsel.settings.database_url) as conn:
        row = conn.execute(
            "SELECT kek_id FROM intake.dossier_keys WHERE aanvraag_id = %s", (newer.aanvraag_id,)
        ).fetchone()
    assert row == ("2",)


def test_a_service_refuses_to_start_without_the_kek_its_keys_need(stelsel: Stelsel) -> None:
    drive(stelsel)
    kek = stelsel.settings.kek_path / "kek-1.key"
    kek.rename(kek.with_suffix(".bak"))
    with pytest.raises(KeyStoreError, match=r"kek-1\.key"):
        intake_application(stelsel.settings.eventsourcing_env("intake"))
    assert not kek.exists()  # not replaced by a new one that would unwrap nothing


def test_a_service_refuses_to_start_with_another_installations_kek(stelsel: Stelsel) -> None:
    drive(stelsel)
    (stelsel.settings.kek_path / "kek-1.key").write_bytes(bytes(32))
    with pytest.raises(KeyStoreError, match=r"not the key that wrapped"):
        intake_application(stelsel.settings.eventsourcing_env("intake"))


# --- the forget record: a forget survives a restore -------------------------------------------


def test_a_forget_is_written_to_the_record_beside_the_keks_before_the_keys_go(
    stelsel: Stelsel,
) -> None:
    dossier, other = drive(stelsel), drive(stelsel)
    forget(stelsel.settings, dossier.aanvraag_id, "fg-1", "verzoek_betrokkene", now=NU)
    forget(stelsel.settings, dossier.aanvraag_id, "fg-2", "onrechtmatig_verwerkt")  # again
    with pytest.raises(NietGevonden):
        forget(stelsel.settings, uuid4(), "fg-1", "verzoek_betrokkene")

    record = ForgetRecord(stelsel.settings.kek_path)
    assert record.path.parent == stelsel.settings.kek_path
    assert record.entries() == [
        Forgotten(dossier.aanvraag_id, "verzoek_betrokkene", opaque_actor_id("fg-1"), NU)
    ], "one entry per forgotten dossier, the first decision; an unknown dossier not at all"
    text = record.path.read_text()
    assert other.aanvraag_id.hex not in text.replace("-", "")
    for value in personal_values(dossier.body):
        assert value not in text


def _restored_before_the_forget(stelsel: Stelsel, dossier: Dossier) -> None:
    """The state a restore of a backup made before the forget leaves: the record names the
    dossier, the database holds its keys live and no PersoonsgegevensVergeten."""
    ForgetRecord(stelsel.settings.kek_path).add(
        Forgotten(dossier.aanvraag_id, "verzoek_betrokkene", opaque_actor_id("fg-1"), NU)
    )


def test_intake_forgets_again_at_start_what_the_record_says_was_forgotten(
    stelsel: Stelsel, caplog: pytest.LogCaptureFixture
) -> None:
    dossier, kept = drive(stelsel), drive(stelsel)
    _restored_before_the_forget(stelsel, dossier)
    assert stelsel.intake.persoonsgegevens(dossier.aanvraag_id) is not None

    with caplog.at_level(logging.WARNING, logger="weerbaar.intake.forget"):
        started = intake_bootstrap(stelsel.settings, FixedClock(NU))
    try:
        app = started.app
        assert isinstance(app, Intake)
        assert isinstance(app.aanvraag(dossier.aanvraag_id).aanmelding, VergetenAanmelding)
        assert app.persoonsgegevens(kept.aanvraag_id) == Aanmelding.model_validate(kept.body)
        # Every service's key of the dossier is gone again, and intake recorded it (once).
        with psycopg.connect(stelsel.settings.database_url) as conn:
            for service in KEY_SERVICES:
                row = conn.execute(
                    SQL(
                        "SELECT wrapped_key, destroyed_reason FROM {} WHERE aanvraag_id = %s"
                    ).format(Identifier(service, "dossier_keys")),
                    (dossier.aanvraag_id,),
                ).fetchone()
                assert row == (None, "verzoek_betrokkene"), service
        recorded = [
            e
            for e in replay(stelsel)["intake"]
            if isinstance(e, PersoonsgegevensVergeten) and e.originator_id == dossier.aanvraag_id
        ]
        assert len(recorded) == 1
        assert recorded[0].actor_id == opaque_actor_id("fg-1")
        [line] = [r for r in caplog.records if r.getMessage().startswith("forget re-applied")]
        assert line.__dict__["aanvraag_id"] == str(dossier.aanvraag_id)
        assert line.__dict__["recorded_again"] is True
    finally:
        started.app.close()

    # Starting again finds nothing live: nothing happens twice.
    assert reapply(stelsel.settings) == Heraangebracht((), ())


def test_a_forget_of_a_dossier_the_restored_database_lacks_is_reported_not_failed(
    stelsel: Stelsel,
) -> None:
    ForgetRecord(stelsel.settings.kek_path).add(
        Forgotten(uuid4(), "verzoek_betrokkene", opaque_actor_id("fg-1"), NU)
    )
    done = reapply(stelsel.settings)
    assert done.opnieuw_vergeten == () and len(done.onbekend) == 1
