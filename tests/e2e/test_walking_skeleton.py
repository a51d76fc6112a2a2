"""The walking skeleton through all five services, as separate processes on real NATS/PostgreSQL."""

from __future__ import annotations

import httpx
import pytest

from tests.support import (
    aanmelding,
    get_json,
    personal_values,
    stream_messages,
    token,
    wait_until,
)
from tools.mailcatcher import MailCatcher, list_messages
from tools.system import System

pytestmark = pytest.mark.e2e


def test_submit_follow_and_restart(system: System, catcher: MailCatcher) -> None:
    body = aanmelding()
    secretariaat = token(system.data_dir, "secretariaat")
    intake = system.url("intake")
    with httpx.Client(timeout=10) as client:
        first = client.post(f"{intake}/aanvragen", json=body, headers={"Idempotency-Key": "a-1"})
        assert first.status_code == 201
        aanvraag_id = first.json()["aanvraag_id"]
        again = client.post(f"{intake}/aanvragen", json=body, headers={"Idempotency-Key": "a-1"})
        assert again.status_code == 201
        assert again.json()["aanvraag_id"] == aanvraag_id

        # The CloudEvent is on its subject, without any of the personal data submitted.
        subject = f"weerbaar.intake.AanvraagIngediend.{aanvraag_id}"
        ingediend = wait_until(
            lambda: [m for m in stream_messages(system.nats_url or "") if m.subject == subject],
            what="AanvraagIngediend on the stream",
        )
        assert len(ingediend) == 1, "the retried request must not publish a second event"
        envelope = ingediend[0].envelope
        assert envelope["type"] == "nl.weerbaarbestuur.AanvraagIngediend.v1"
        assert envelope["subject"] == aanvraag_id
        assert ingediend[0].headers["Nats-Msg-Id"] == envelope["id"]

        # The dossier shows the contact deadline (scheduling's event, folded by intake).
        dossier_url = f"{intake}/aanvragen/{aanvraag_id}"
        dossier = wait_until(
            lambda: (
                (d := get_json(client, dossier_url, secretariaat)) and d["contact_deadline"] and d
            ),
            what="the dossier with its contact deadline",
        )
        assert dossier["status"] == "ingediend"
        assert dossier["binnen_regeling"] is True

        # The confirmation e-mail reached the SMTP server, once, addressed to the submitter.
        mails = wait_until(lambda: list_messages(catcher.directory), what="the confirmation mail")
        assert [m.to for m in mails] == [(body["bestuurder"]["email"],)]
        assert aanvraag_id in mails[0].subject
        wait_until(
            lambda: (
                (d := get_json(client, dossier_url, secretariaat))
                and d["notificaties"]
                and d["notificaties"][0]["status"] == "verzonden"
            ),
            what="NotificatieVerzonden in the dossier",
        )

        contact = client.post(
            f"{system.url('scheduling')}/aanvragen/{aanvraag_id}/contact", headers=secretariaat
        )
        assert contact.status_code == 200
        assert contact.json()["contact_status"] == "opgenomen"
        wait_until(
            lambda: (
                (d := get_json(client, dossier_url, secretariaat))
                and d["status"] == "contact_opgenomen"
            ),
            what="contact in the dossier",
        )

    # Nothing published carries personal data.
    published = b"\n".join(
        m.data + repr(m.headers).encode() for m in stream_messages(system.nats_url or "")
    )
    for value in personal_values(body):
        assert value.encode() not in published, "personal data on NATS"

    # After a restart of every service the dossier is still there.
    for proc in list(system.processes):
        system.stop_process(proc)
    system.start_services(timeout=90)
    with httpx.Client(timeout=10) as client:
        dossier = get_json(client, f"{system.url('intake')}/aanvragen/{aanvraag_id}", secretariaat)
    assert dossier is not None
    assert dossier["status"] == "contact_opgenomen"

    # No service logged the personal data.
    logs = "\n".join(p.read_text() for p in (system.data_dir / "logs").glob("*.log"))
    for value in personal_values(body):
        assert value not in logs, "personal data in a log"


def test_outside_the_regeling_is_recorded_not_dropped(system: System) -> None:
    body = aanmelding()
    body["bestuurder"]["functie"] = "raadslid"
    secretariaat = token(system.data_dir, "secretariaat")
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{system.url('intake')}/aanvragen", json=body)
        assert created.status_code == 201
        aanvraag_id = created.json()["aanvraag_id"]
        dossier = wait_until(
            lambda: (
                (
                    d := get_json(
                        client, f"{system.url('intake')}/aanvragen/{aanvraag_id}", secretariaat
                    )
                )
                and d["buiten_regeling_reden"]
                and d
            ),
            what="the dossier outside the regeling",
        )
    assert dossier["binnen_regeling"] is False
    assert dossier["buiten_regeling_reden"] == "raadslid"
    subjects = {m.subject for m in stream_messages(system.nats_url or "")}
    assert f"weerbaar.intake.AanvraagBuitenRegeling.{aanvraag_id}" in subjects


def test_invalid_registration_names_the_field_and_echoes_nothing(system: System) -> None:
    body = aanmelding()
    body["bestuurder"]["email"] = "Geheime Naam <niet-een-adres>"
    body["werkgever"]["organisatie_code"] = "Gemeente Geheimstad"
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{system.url('intake')}/aanvragen", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"body.bestuurder.email", "body.werkgever.organisatie_code"} <= fields
    for value in (*personal_values(body), "Geheime Naam", "Geheimstad"):
        assert value not in response.text


def test_refused_access_answers_401_and_is_recorded(system: System) -> None:
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{system.url('intake')}/aanvragen", json=aanmelding())
        aanvraag_id = created.json()["aanvraag_id"]
        anonymous = client.get(f"{system.url('intake')}/aanvragen/{aanvraag_id}")
        assert anonymous.status_code == 401
        other = token(system.data_dir, "bestuurder", email="iemand.anders@example.org")
        hidden = client.get(f"{system.url('intake')}/aanvragen/{aanvraag_id}", headers=other)
        assert hidden.status_code == 404
    subject = f"weerbaar.intake.ToegangGeweigerd.{aanvraag_id}"

    def refusals() -> list[dict[str, object]]:
        return [m.envelope for m in stream_messages(system.nats_url or "") if m.subject == subject]

    refused = wait_until(lambda: len(r := refusals()) == 2 and r, what="both refusals")
    assert {e["data"]["status_code"] for e in refused} == {401, 404}  # type: ignore[index]
    assert all(e["data"]["actie"] == "GET /aanvragen/{aanvraag_id}" for e in refused)  # type: ignore[index]


def test_mail_is_retried_until_the_smtp_server_accepts_it(
    system: System, catcher: MailCatcher
) -> None:
    catcher.fail(2)  # the next two deliveries answer 451 (try again later)
    secretariaat = token(system.data_dir, "secretariaat")
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{system.url('intake')}/aanvragen", json=aanmelding())
        aanvraag_id = created.json()["aanvraag_id"]
        mails = wait_until(lambda: list_messages(catcher.directory), what="the mail, at last")
        log = wait_until(
            lambda: [
                n
                for n in get_json(
                    client, f"{system.url('notifications')}/notificaties", secretariaat
                )
                if n["aanvraag_id"] == aanvraag_id and n["status"] == "verzonden"
            ],
            what="the delivery log",
        )
    assert len(mails) == 1
    assert log[0]["pogingen"] == 3
    outcomes = [
        (m.envelope["type"].split(".")[-2], m.envelope["data"]["poging"])
        for m in stream_messages(system.nats_url or "")
        if m.subject.endswith(aanvraag_id) and ".notifications." in m.subject
    ]
    assert outcomes == [
        ("NotificatieMislukt", 1),
        ("NotificatieMislukt", 2),
        ("NotificatieVerzonden", 3),
    ]
