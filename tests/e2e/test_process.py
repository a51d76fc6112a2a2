"""Complete dossiers through the HTTP APIs of the five services, as processes on real servers.

One system (fresh database and streams) serves every test of this module; each test drives its
own dossier. The last test checks what the whole run put on the stream and in the mailbox.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import ALL_EVENTS, from_cloudevent
from shared.platform.auth import load_or_create_secret
from shared.platform.settings import SERVICES
from tests import servers
from tests.support import (
    StreamMessage,
    pseudonym,
    reset_streams,
    settings_for,
    stream_messages,
    wait_until,
)
from tools.demo import Actors, DossierDriver, aanmelding_voor, personal_values, rapport_inhoud
from tools.embedded import free_port
from tools.mailcatcher import CaughtMail, MailCatcher, list_messages
from tools.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, nats_url: str
) -> Iterator[tuple[System, MailCatcher]]:
    """The five services on a fresh database and fresh streams, with a real SMTP server."""
    base = tmp_path_factory.mktemp("process")
    database = servers.create_database(postgres_server_url)
    reset_streams(settings_for(database, nats_url, base))
    catcher = MailCatcher(base / "mail", port=0)
    catcher.start()
    system = System(
        data_dir=base / "data",
        database_url=database,
        nats_url=nats_url,
        smtp=("127.0.0.1", catcher.port),
        preferred_ports={s: free_port() for s in SERVICES},
    )
    system.data_dir.mkdir()
    system.start_services(timeout=90)
    try:
        yield system, catcher
    finally:
        system.stop()
        catcher.stop()
        servers.drop_database(postgres_server_url, database)


#: Every driver of this module, for the final checks over the whole run.
DRIVERS: list[DossierDriver] = []


@pytest.fixture
def driver(world: tuple[System, MailCatcher]) -> Iterator[DossierDriver]:
    """A driver for a new dossier with its own bestuurder."""
    system, _ = world
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"bestuurder.{secrets.token_hex(4)}@example.org",
        organisatie="GM0363",
    )
    with httpx.Client(timeout=15) as client:
        d = DossierDriver({s: system.url(s) for s in SERVICES}, actors, client)
        DRIVERS.append(d)
        yield d


def _on_stream(system: System, aanvraag_id: str) -> list[StreamMessage]:
    return [m for m in stream_messages(system.nats_url or "") if m.subject.endswith(aanvraag_id)]


def _names(messages: list[StreamMessage]) -> list[str]:
    return [m.subject.split(".")[2] for m in messages]


def _approved_and_released(d: DossierDriver) -> None:
    d.registreer()
    d.neem_contact_op()
    d.plan_gesprekken()
    d.voer_gesprekken()
    d.schrijf_rapport()
    d.beoordeel(d.dien_in(), goedkeuren=True)


def test_happy_path_with_rejection_revision_toelichting_and_closing(
    world: tuple[System, MailCatcher], driver: DossierDriver
) -> None:
    system, _ = world
    d = driver
    d.registreer()
    d.neem_contact_op()
    d.plan_gesprekken()
    d.voer_gesprekken()
    d.schrijf_rapport()
    d.beoordeel(d.dien_in(), goedkeuren=False)
    d.herzie()
    tweede = d.dien_in()
    assert tweede["versie"] == 2
    d.beoordeel(tweede, goedkeuren=True)
    gelezen = d.lees_rapport("bestuurder").json()
    assert gelezen["versie"] == 2
    # The bestuurder asks for an explanation; the secretariat plans it.
    d.eventually(
        "POST",
        "scheduling",
        f"/aanvragen/{d.aanvraag_id}/toelichting",
        "bestuurder",
        "scheduling to know the report reached the bestuurder",
    )
    toelichting = d.call(
        "POST",
        "scheduling",
        f"/aanvragen/{d.aanvraag_id}/afspraken",
        "secretariaat",
        json={
            "soort": "toelichting",
            "gepland_op": "2099-01-05T10:00:00+01:00",
            "duur_minuten": 45,
            "adviseur_id": d.actors.subs["adviseur"],
            "video_link": "https://video.example.org/toelichting",
            "partij": "bestuurder",
        },
    ).json()
    d.call(
        "POST", "scheduling", f"/afspraken/{toelichting['afspraak_id']}/annuleren", "secretariaat"
    )
    d.instemming(geeft=True)
    d.lees_rapport("werkgever")
    d.pkvw_certificaat()
    assert d.voer_maatregelen_uit() == 3
    dossier = d.wait_for_status("afgesloten")

    assert [v["besluit"] for v in dossier["rapport"]["versies"]] == ["afgekeurd", "goedgekeurd"]
    assert dossier["rapport"]["instemming"] == "gegeven"
    assert dossier["pkvw"]["status"] == "certificaat"
    assert all(m["uitgevoerd_op"] for m in dossier["maatregelen"])
    assert dossier["afsluit_reden"] == "alle_maatregelen_uitgevoerd"
    soorten = {a["soort"]: a["status"] for a in dossier["afspraken"]}
    assert soorten == {
        "gesprek_werkgever": "gevoerd",
        "gesprek_bestuurder": "gevoerd",
        "toelichting": "geannuleerd",
    }
    names = _names(_on_stream(system, d.aanvraag_id))
    assert names.count("DossierAfgesloten") == 1

    # The audit trail lists every read of the personal data: the report reads by role, and each
    # address handed to the notifications service, with who, role and when.
    def audit_complete() -> list[dict[str, object]] | None:
        trail: list[dict[str, object]] = d.call(
            "GET", "intake", f"/aanvragen/{d.aanvraag_id}/audit", "compliance"
        ).json()
        kinds = {str(e["type"]).split(".")[-2] for e in trail}
        wanted = {"PersoonsgegevensVerstrekt", "RapportIngezien", "DossierAfgesloten"}
        return trail if wanted <= kinds else None

    trail = wait_until(audit_complete, what="the reads in the audit trail")
    handed_out = [e for e in trail if str(e["type"]).endswith("PersoonsgegevensVerstrekt.v1")]
    notifications = pseudonym(system.data_dir, "svc-notifications")
    assert handed_out and all(e["actorid"] == notifications for e in handed_out)
    assert all(e["actorrole"] == "dienst" and e["time"] for e in handed_out)
    readers = {e["actorrole"] for e in trail if str(e["type"]).endswith("RapportIngezien.v1")}
    assert {"bestuurder", "werkgever"} <= readers
    for step in (
        "AanvraagIngediend",
        "ContactOpgenomen",
        "AfspraakGepland",
        "AfspraakVerzet",
        "AfspraakGeannuleerd",
        "GesprekGevoerd",
        "WoningscanUitgevoerd",
        "ToelichtingAangevraagd",
        "RapportOpgesteld",
        "RapportTerToetsingAangeboden",
        "RapportAfgekeurd",
        "RapportHerzien",
        "RapportGoedgekeurd",
        "RapportVerstrektAanBestuurder",
        "RapportIngezien",
        "InstemmingGegeven",
        "RapportVrijgegeven",
        "PkvwStatusGewijzigd",
        "MaatregelUitgevoerd",
    ):
        assert step in names, step


def test_consent_refused_then_given_late(
    world: tuple[System, MailCatcher], driver: DossierDriver
) -> None:
    system, _ = world
    d = driver
    _approved_and_released(d)
    d.instemming(geeft=False)
    d.wait_for_status("instemming_geweigerd")
    refused = d.probeer_te_lezen("werkgever")
    assert refused.status_code == 403
    d.instemming(geeft=True)
    d.wait_for_status("vrijgegeven")
    assert d.lees_rapport("werkgever").status_code == 200

    def recorded() -> list[CloudEvent] | None:
        envelopes = [CloudEvent.from_json(m.data) for m in _on_stream(system, d.aanvraag_id)]
        weigering = [
            e
            for e in envelopes
            if e.type.endswith("ToegangGeweigerd.v1")
            and e.data["actie"] == "GET /rapporten/{rapport_id}"
        ]
        ingezien = [
            e
            for e in envelopes
            if e.type.endswith("RapportIngezien.v1") and e.data["rol"] == "werkgever"
        ]
        return [*weigering, *ingezien] if weigering and ingezien else None

    events = wait_until(recorded, what="the refusal and the later read on the stream")
    refusal = next(e for e in events if e.type.endswith("ToegangGeweigerd.v1"))
    assert refusal.data["status_code"] == 403
    assert refusal.actorrole == "werkgever"
    read = next(e for e in events if e.type.endswith("RapportIngezien.v1"))
    werkgever = pseudonym(system.data_dir, d.actors.subs["werkgever"])
    assert read.actorid == werkgever
    names = _names(_on_stream(system, d.aanvraag_id))
    assert names.index("InstemmingGeweigerd") < names.index("InstemmingGegeven")

    # Both are in the dossier's audit trail, with who, role and when.
    def in_audit() -> list[dict[str, object]] | None:
        trail: list[dict[str, object]] = d.call(
            "GET", "intake", f"/aanvragen/{d.aanvraag_id}/audit", "compliance"
        ).json()
        ids = {e["id"] for e in trail}
        return trail if {refusal.id, read.id} <= ids else None

    trail = wait_until(in_audit, what="the refusal and the read in the audit trail")
    entry = next(e for e in trail if e["id"] == refusal.id)
    assert entry["actorrole"] == "werkgever" and entry["actorid"] == werkgever
    assert entry["time"]


def test_withdrawal_halfway_stops_every_later_step(
    world: tuple[System, MailCatcher], driver: DossierDriver
) -> None:
    system, _ = world
    d = driver
    d.registreer()
    d.neem_contact_op()
    d.plan_gesprekken()
    d.call("POST", "intake", f"/aanvragen/{d.aanvraag_id}/intrekken", "bestuurder")
    again = d.call("POST", "intake", f"/aanvragen/{d.aanvraag_id}/intrekken", "bestuurder")
    assert again.status_code == 200  # a repeated withdrawal has one effect
    d.wait_for_status("ingetrokken")

    # Scheduling hears of the withdrawal from the stream; once it has, holding a conversation is
    # a step out of order.
    wait_until(
        lambda: (
            d.call(
                "GET", "scheduling", f"/aanvragen/{d.aanvraag_id}/planning", "secretariaat"
            ).json()["gestopt"]
            == "ingetrokken"
        ),
        what="scheduling to hear of the withdrawal",
    )
    held = d.call(
        "POST",
        "scheduling",
        f"/afspraken/{d.afspraken['gesprek_bestuurder']}/gevoerd",
        "adviseur",
        json={"woningscan_uitgevoerd": True},
        expect=409,
    )
    assert held.json()["code"] == "dossier_ingetrokken"
    d.call(
        "POST",
        "assessment",
        f"/aanvragen/{d.aanvraag_id}/rapport",
        "adviseur",
        json=rapport_inhoud(1),
        expect=409,
    )
    dossier = wait_until(
        lambda: (
            (x := d.dossier()) and all(a["status"] == "geannuleerd" for a in x["afspraken"]) and x
        ),
        what="the planned appointments cancelled",
    )
    assert dossier["status"] == "ingetrokken"
    names = _names(_on_stream(system, d.aanvraag_id))
    assert names.count("AanvraagIngetrokken") == 1
    assert "GesprekGevoerd" not in names


def test_pkvw_decides_who_pays(world: tuple[System, MailCatcher], driver: DossierDriver) -> None:
    d = driver
    _approved_and_released(d)
    d.instemming(geeft=True)
    stand = d.eventually(
        "GET",
        "assessment",
        f"/aanvragen/{d.aanvraag_id}/maatregelen",
        "secretariaat",
        "the measures",
    ).json()
    met_kosten = next(m for m in stand["maatregelen"] if m["kosten"] == "met_kosten")
    kosteloos = next(m for m in stand["maatregelen"] if m["kosten"] == "kosteloos")
    assert met_kosten["betaalt"] == "wacht_op_pkvw"
    assert kosteloos["betaalt"] == "direct_uitvoerbaar"
    d.lees_rapport("werkgever")  # assessment has heard of the release
    wacht = d.call(
        "POST",
        "assessment",
        f"/maatregelen/{met_kosten['maatregel_id']}/uitgevoerd",
        "werkgever",
        expect=409,
    )
    assert wacht.json()["code"] == "wacht_op_pkvw"
    d.call(
        "POST", "assessment", f"/maatregelen/{kosteloos['maatregel_id']}/uitgevoerd", "bestuurder"
    )
    d.pkvw_certificaat()
    stand = d.call(
        "GET", "assessment", f"/aanvragen/{d.aanvraag_id}/maatregelen", "secretariaat"
    ).json()
    assert next(m for m in stand["maatregelen"] if m["kosten"] == "met_kosten")["betaalt"] == (
        "werkgever"
    )
    d.call(
        "POST", "assessment", f"/maatregelen/{met_kosten['maatregel_id']}/uitgevoerd", "werkgever"
    )
    dossier = wait_until(
        lambda: (
            (x := d.dossier())
            and any(m["uitgevoerd_op"] for m in x["maatregelen"] if m["kosten"] == "met_kosten")
            and x
        ),
        what="the measure carried out in the dossier",
    )
    assert {m["betaalt"] for m in dossier["maatregelen"] if m["kosten"] == "met_kosten"} == {
        "werkgever"
    }


def test_the_author_may_not_approve_their_own_report(
    world: tuple[System, MailCatcher], driver: DossierDriver
) -> None:
    d = driver
    d.registreer()
    d.neem_contact_op()
    d.plan_gesprekken()
    d.voer_gesprekken()
    d.schrijf_rapport()
    ingediend = d.dien_in()
    body = {"versie": ingediend["versie"], "inhoud_hash": ingediend["inhoud_hash"]}
    author_as_bva = d.actors.subs["adviseur"]

    def refused() -> httpx.Response | None:
        response = d.call(
            "POST",
            "approval",
            f"/rapporten/{d.rapport_id}/goedkeuren",
            "bva",
            sub=author_as_bva,
            json=body,
            expect=(403, 404, 409),
        )
        return response if response.status_code == 403 else None

    answer = wait_until(refused, what="approval to refuse the author")
    assert answer.json()["code"] == "vier_ogen"
    d.beoordeel(ingediend, goedkeuren=True)  # another reviewer may


def test_weerbaar_forget_on_the_running_system(
    world: tuple[System, MailCatcher], driver: DossierDriver
) -> None:
    """Forgetting takes effect at once in the running services; the stream announces it."""
    system, _ = world
    d = driver
    _approved_and_released(d)
    before = d.lees_rapport("adviseur").json()

    done = subprocess.run(
        [sys.executable, "-m", "services.intake.ops.forget", d.aanvraag_id, "--reden",
         "verzoek_betrokkene", "--door", "fg-1"],
        env=system.env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    # No restart, no cache: the running assessment shows the placeholders right away.
    after = d.call("GET", "assessment", f"/rapporten/{d.rapport_id}", "adviseur")
    assert after.json()["vergeten"] is True
    assert after.json()["inhoud_hash"] == before["inhoud_hash"]
    assert [v for v in personal_values(d.actors) if v in after.text] == []
    ontvanger = d.call(
        "GET",
        "intake",
        f"/internal/aanvragen/{d.aanvraag_id}/ontvanger",
        "dienst",
        sub="svc-notifications",
        expect=(410,),
    )
    assert ontvanger.json()["code"] == "persoonsgegevens_vergeten"
    dossier = wait_until(
        lambda: d.dossier().get("persoonsgegevens_vergeten_op") and d.dossier(),
        what="the dossier to show that its personal data were forgotten",
    )
    assert dossier["status"] == "goedgekeurd"
    assert _names(_on_stream(system, d.aanvraag_id)).count("PersoonsgegevensVergeten") == 1


def test_every_public_event_went_out_once_and_every_mail_once(
    world: tuple[System, MailCatcher],
) -> None:
    """Over the whole run: valid CloudEvents on their subjects, no duplicates, one mail each."""
    system, catcher = world
    secretariaat = DRIVERS[0].actors.headers("secretariaat")

    def settled() -> tuple[list[StreamMessage], list[CaughtMail]] | None:
        """The run has come to rest: nothing planned is still unsent, every mail that went out
        is announced on the stream (the last steps' mails may still be on their way)."""
        with httpx.Client(timeout=10) as client:
            planned = client.get(
                f"{system.url('notifications')}/notificaties",
                params={"status": "gepland"},
                headers=secretariaat,
            ).json()
        stream = stream_messages(system.nats_url or "")
        caught = list_messages(catcher.directory)
        announced = [m for m in stream if m.subject.split(".")[2] == "NotificatieVerzonden"]
        return (stream, caught) if not planned and len(caught) == len(announced) else None

    messages, mails = wait_until(settled, timeout=60, what="every planned mail sent and announced")
    ids = Counter(m.headers["Nats-Msg-Id"] for m in messages)
    assert max(ids.values()) == 1, "an event is on the stream twice"
    seen: set[str] = set()
    for message in messages:
        envelope = CloudEvent.from_json(message.data)
        event = from_cloudevent(envelope)
        assert message.subject.split(".")[2] == type(event).event_name
        assert envelope.id == message.headers["Nats-Msg-Id"]
        seen.add(type(event).event_name)
    # Emitted elsewhere: ContacttermijnVerstreken needs three working days to pass (shown by
    # tests/integration/test_escalation.py), NotificatieMislukt a failing SMTP server (shown by
    # tests/e2e/test_walking_skeleton.py), AanvraagBuitenRegeling a raadslid (same file).
    elsewhere = {"ContacttermijnVerstreken", "NotificatieMislukt", "AanvraagBuitenRegeling"}
    # Legal holds and retention's destructions: tests/e2e/test_compliance.py.
    elsewhere |= {"BewaarplichtOpgelegd", "BewaarplichtOpgeheven", "GegevensVernietigd"}
    # A webhook subscription that keeps failing and recovers: tests/integration/test_webhooks.py.
    elsewhere |= {"WebhookAbonnementGefaald", "WebhookAbonnementHersteld"}
    expected = {model.event_name for model in ALL_EVENTS} - elsewhere
    assert expected - seen == set()

    # No personal data on NATS, in any log line, or in any error body of the whole run.
    published = b"\n".join(m.data + repr(m.headers).encode() for m in messages).decode()
    logs = "\n".join(p.read_text() for p in (system.data_dir / "logs").glob("*.log"))
    errors = "\n".join(body for d in DRIVERS for body in d.error_bodies)
    assert DRIVERS and errors, "the run had refusals and conflicts to scan"
    for d in DRIVERS:
        for value in personal_values(d.actors):
            assert value not in published, f"personal data on NATS: {value[:12]}…"
            assert value not in logs, f"personal data in a log: {value[:12]}…"
            assert value not in errors, f"personal data in an error body: {value[:12]}…"
    # A mail to the werkgever holds nothing of the bestuurder's contact data or home.
    for mail in mails:
        text = mail.path.read_text(errors="replace")
        if any(d.actors.bestuurder_email in mail.to for d in DRIVERS):
            continue
        for d in DRIVERS:
            body = aanmelding_voor(d.actors.bestuurder_email, d.actors.organisatie)["bestuurder"]
            for value in (body["telefoon"], body["adres"]["straat"], body["email"]):
                assert value not in text, "the bestuurder's data in someone else's mail"
    per_id = Counter(m.message_id for m in mails)
    assert max(per_id.values()) == 1, "an e-mail went out twice"
    sent = [m for m in messages if m.subject.split(".")[2] == "NotificatieVerzonden"]
    assert len(mails) == len(sent)
