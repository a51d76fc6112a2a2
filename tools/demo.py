"""``weerbaar demo``: one realistic dossier through the whole process, against the running system.

It acts as every person in turn (through the HTTP APIs, with tokens signed by the system's embedded
secret): a bestuurder registers, the secretariat makes contact and records both conversations,
the adviseur records them as held and writes the report, the BVA rejects it, the adviseur revises
it, the BVA approves it, the bestuurder reads it and consents, the werkgever reads it, the PKVW
certificate arrives, the measures are carried out and the dossier closes. Then it prints the
timeline: who did what, when, and the address of the dossier's page in the portal (only its id,
no personal data). The end-to-end tests drive dossiers with the same ``DossierDriver``.

The driver runs on the real clock and cannot wait for next week's appointment: a conversation is
recorded as held only once its planned start has passed, and appointments lie within working
hours. So it records the conversations as the secretariat records appointments that already took
place (``achteraf``), at the latest working-hour slots before now (the default working hours;
a system configured otherwise refuses them). Their start has passed, so no confirmation mail
goes out for them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import httpx

from services.scheduling.domain.calendar import WorkingDayCalendar
from shared.platform.auth import issue_token, load_or_create_secret

T = TypeVar("T")

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
#: The default calendar and working hours (Monday to Friday 08:00-18:00, Atw feestdagen excluded).
KALENDER = WorkingDayCalendar()
GESPREKSDUUR = timedelta(minutes=90)


class DemoError(RuntimeError):
    """A step did not answer as the process says it should."""


@dataclass
class Actors:
    """Tokens for the people in the process."""

    secret: bytes
    bestuurder_email: str
    organisatie: str
    issuer: str = "weerbaar-embedded"
    audience: str = "weerbaar"
    subs: dict[str, str] = field(
        default_factory=lambda: {
            "secretariaat": "sec-demo",
            "adviseur": "adv-demo",
            "bva": "bva-demo",
            "bestuurder": "bst-demo",
            "werkgever": "wg-demo",
            "compliance": "cmp-demo",
        }
    )

    def headers(self, role: str, *, sub: str | None = None) -> dict[str, str]:
        """An Authorization header for a role."""
        claims: dict[str, Any] = {}
        if role == "bestuurder":
            claims["email"] = self.bestuurder_email
        if role == "werkgever":
            claims["organisatie"] = self.organisatie
        token = issue_token(
            self.secret,
            role=role,
            sub=sub or self.subs[role],
            issuer=self.issuer,
            audience=self.audience,
            **claims,
        )
        return {"Authorization": f"Bearer {token}"}


def aanmelding_voor(email: str, organisatie: str) -> dict[str, Any]:
    """A registration (made-up person)."""
    return {
        "ingediend_door": "bestuurder",
        "bestuurder": {
            "naam": "Anna de Vries",
            "functie": "wethouder",
            "email": email,
            "telefoon": "+31 6 11122233",
            "adres": {
                "straat": "Lindenlaan",
                "huisnummer": "4",
                "postcode": "3511 AB",
                "woonplaats": "Utrecht",
            },
        },
        "werkgever": {
            "organisatie": "Gemeente Utrecht",
            "organisatie_code": organisatie,
            "contactpersoon": "Karel Jansen",
            "email": "k.jansen@example.org",
            "telefoon": "030 2860000",
        },
        "reden": "Bedreigingen na een besluit over een woonwijk, ook aan huis.",
        "verhuizing_gepland": False,
        "toestemming": True,
    }


def personal_values(actors: Actors) -> list[str]:
    """The personal data the driver submits: what must never leak outside its owner."""
    body = aanmelding_voor(actors.bestuurder_email, actors.organisatie)
    b, w = body["bestuurder"], body["werkgever"]
    texts = [
        b["naam"],
        b["email"],
        b["telefoon"],
        b["adres"]["straat"],
        b["adres"]["woonplaats"],
        w["contactpersoon"],
        w["email"],
        w["telefoon"],
        body["reden"],
    ]
    for versie in (1, 2):
        inhoud = rapport_inhoud(versie)
        texts += list(inhoud["bevindingen"].values())
        texts += [m["omschrijving"] for m in inhoud["maatregelen"]]
    return texts


def rapport_inhoud(versie: int) -> dict[str, Any]:
    """A report's content (findings per domain, measures)."""
    extra = (
        []
        if versie == 1
        else [
            {
                "domein": "informatie",
                "omschrijving": "Verwijder het huisadres uit openbare registers waar dat kan.",
                "kosten": "kosteloos",
                "uitvoerder": "bestuurder",
                "prioriteit": "middel",
            }
        ]
    )
    return {
        "bevindingen": {
            "werk": "Het gemeentehuis heeft een balie zonder afscherming.",
            "wonen": "De achterdeur heeft geen inbraakwerend slot.",
            "informatie": "Het huisadres is via sociale media te herleiden.",
            "verplaatsen": "Vaste routes op vaste tijden.",
        },
        "maatregelen": [
            {
                "domein": "wonen",
                "omschrijving": "Inbraakwerend hang- en sluitwerk op de achterdeur.",
                "kosten": "met_kosten",
                "uitvoerder": "werkgever",
                "prioriteit": "hoog",
            },
            {
                "domein": "verplaatsen",
                "omschrijving": "Wissel routes en vertrektijden af.",
                "kosten": "kosteloos",
                "uitvoerder": "bestuurder",
                "prioriteit": "middel",
            },
            *extra,
        ],
    }


def _wait(what: str, check: Callable[[], T | None], timeout: float = 60, poll: float = 0.1) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise DemoError(f"waited {timeout:.0f}s for {what}")
        time.sleep(poll)


def _problem_code(response: httpx.Response) -> str:
    """The problem's code (``code``, else the last part of ``type``) of an error answer."""
    try:
        body = response.json()
    except ValueError:
        return "-"
    if not isinstance(body, dict):
        return "-"
    code = body.get("code") or str(body.get("type") or "-").rsplit(":", 1)[-1]
    return str(code)[:60]


class DossierDriver:
    """Takes one dossier through the process over HTTP."""

    #: How long to wait for another service to hear of a step, and how often to look.
    wait_timeout_s = 60.0
    poll_s = 0.1

    def __init__(self, urls: dict[str, str], actors: Actors, client: httpx.Client) -> None:
        self.urls = urls
        self.actors = actors
        self.client = client
        self.aanvraag_id = ""
        self.rapport_id = ""
        self.afspraken: dict[str, str] = {}
        #: Bodies of every error answer, so tests can check none echoes personal data.
        self.error_bodies: list[str] = []

    def call(
        self,
        method: str,
        service: str,
        path: str,
        role: str | None,
        *,
        expect: int | tuple[int, ...] = (200, 201),
        sub: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP call as a role; raises DemoError when the status is not the expected one."""
        headers = kwargs.pop("headers", {})
        if role is not None:
            headers |= self.actors.headers(role, sub=sub)
        response = self.client.request(method, self.urls[service] + path, headers=headers, **kwargs)
        if response.status_code >= 400:
            self.error_bodies.append(response.text)
        wanted = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in wanted:
            raise DemoError(f"{method} {path} as {role}: {response.status_code} {response.text}")
        return response

    def eventually(
        self,
        method: str,
        service: str,
        path: str,
        role: str,
        what: str,
        *,
        retry_on: tuple[int, ...] = (404, 409),
        **kwargs: Any,
    ) -> httpx.Response:
        """Retry a call while the service has not yet heard of an earlier step.

        Each service learns of the others' steps from the stream, a moment later: until then
        it answers as the process says it must (404 unknown, 409 out of order, 403 not yet).
        """

        last: list[str] = []

        def attempt() -> httpx.Response | None:
            response = self.call(
                method, service, path, role, expect=(200, 201, *retry_on), **kwargs
            )
            if response.status_code in (200, 201):
                return response
            last[:] = [f"{response.status_code} {_problem_code(response)}"]
            return None

        try:
            return _wait(what, attempt, self.wait_timeout_s, self.poll_s)
        except DemoError as exc:
            # Which refusal kept coming says which step never arrived.
            raise DemoError(f"{exc} ({method} {path}: last answer {last[0]})") from None

    def dossier(self) -> dict[str, Any]:
        """The dossier as the secretariat sees it."""
        body: dict[str, Any] = self.call(
            "GET", "intake", f"/aanvragen/{self.aanvraag_id}", "secretariaat"
        ).json()
        return body

    def wait_for_status(self, *statuses: str) -> dict[str, Any]:
        """Wait until the dossier projection shows one of these statuses."""

        def check() -> dict[str, Any] | None:
            response = self.call(
                "GET",
                "intake",
                f"/aanvragen/{self.aanvraag_id}",
                "secretariaat",
                expect=(200, 404),
            )
            if response.status_code == 200 and response.json()["status"] in statuses:
                body: dict[str, Any] = response.json()
                return body
            return None

        return _wait(
            f"dossier status {' or '.join(statuses)}", check, self.wait_timeout_s, self.poll_s
        )

    # --- the steps ---

    def registreer(self) -> str:
        """The bestuurder registers (public form)."""
        body = aanmelding_voor(self.actors.bestuurder_email, self.actors.organisatie)
        response = self.call(
            "POST",
            "intake",
            "/aanvragen",
            None,
            json=body,
            headers={"Idempotency-Key": secrets.token_hex(8)},
        )
        self.aanvraag_id = response.json()["aanvraag_id"]
        self.wait_for_status("ingediend")
        return self.aanvraag_id

    def neem_contact_op(self) -> None:
        """The secretariat makes contact."""
        self.eventually(
            "POST",
            "scheduling",
            f"/aanvragen/{self.aanvraag_id}/contact",
            "secretariaat",
            "scheduling to know the dossier",
        )

    def plan_gesprekken(self) -> None:
        """The secretariat records both conversations, arranged by phone and taken place since
        (``achteraf``); the werkgever conversation was put off on the day, which it records too.

        Each at a working-hour slot before now: the werkgever's as held at the latest one, the
        bestuurder's before that, the werkgever's first arrangement a day earlier still.
        """
        gevoerd = KALENDER.latest_start(datetime.now(UTC), GESPREKSDUUR)
        thuis = KALENDER.latest_start(gevoerd - GESPREKSDUUR, GESPREKSDUUR)
        eerst = KALENDER.latest_start(gevoerd - timedelta(days=1), GESPREKSDUUR)
        for soort, gepland_op, extra in (
            (
                "gesprek_werkgever",
                eerst,
                {"video_link": "https://video.example.org/gesprek-werkgever"},
            ),
            ("gesprek_bestuurder", thuis, {}),
        ):
            response = self.call(
                "POST",
                "scheduling",
                f"/aanvragen/{self.aanvraag_id}/afspraken",
                "secretariaat",
                json={
                    "soort": soort,
                    "gepland_op": gepland_op.isoformat(),
                    "duur_minuten": int(GESPREKSDUUR.total_seconds() // 60),
                    "adviseur_id": self.actors.subs["adviseur"],
                    "achteraf": True,
                    **extra,
                },
                headers={"Idempotency-Key": f"{self.aanvraag_id}-{soort}"},
            )
            self.afspraken[soort] = response.json()["afspraak_id"]
        self.call(
            "POST",
            "scheduling",
            f"/afspraken/{self.afspraken['gesprek_werkgever']}/verzetten",
            "secretariaat",
            json={"gepland_op": gevoerd.isoformat(), "achteraf": True},
        )

    def voer_gesprekken(self) -> None:
        """The adviseur holds both conversations; the woningscan at home."""
        self.call(
            "POST",
            "scheduling",
            f"/afspraken/{self.afspraken['gesprek_werkgever']}/gevoerd",
            "adviseur",
            json={"woningscan_uitgevoerd": False},
        )
        self.call(
            "POST",
            "scheduling",
            f"/afspraken/{self.afspraken['gesprek_bestuurder']}/gevoerd",
            "adviseur",
            json={"woningscan_uitgevoerd": True},
        )

    def schrijf_rapport(self) -> str:
        """The adviseur writes the report (once assessment has heard of both conversations)."""
        response = self.eventually(
            "POST",
            "assessment",
            f"/aanvragen/{self.aanvraag_id}/rapport",
            "adviseur",
            "assessment to know the conversations and the woningscan",
            json=rapport_inhoud(1),
            headers={"Idempotency-Key": f"{self.aanvraag_id}-rapport"},
        )
        self.rapport_id = response.json()["rapport_id"]
        return self.rapport_id

    def dien_in(self) -> dict[str, Any]:
        """The adviseur submits the current version for review."""
        body: dict[str, Any] = self.call(
            "POST", "assessment", f"/rapporten/{self.rapport_id}/indienen", "adviseur"
        ).json()
        return body

    def beoordeel(self, ingediend: dict[str, Any], *, goedkeuren: bool) -> None:
        """The BVA decides on the submitted version (once approval has heard of it)."""
        body: dict[str, Any] = {
            "versie": ingediend["versie"],
            "inhoud_hash": ingediend["inhoud_hash"],
        }
        if not goedkeuren:
            body["redenen"] = ["De maatregelen voor het domein informatie ontbreken."]
        action = "goedkeuren" if goedkeuren else "afkeuren"
        self.eventually(
            "POST",
            "approval",
            f"/rapporten/{self.rapport_id}/{action}",
            "bva",
            f"approval to know version {ingediend['versie']}",
            json=body,
        )

    def herzie(self) -> None:
        """The adviseur revises the rejected report (once assessment heard of the rejection)."""
        self.eventually(
            "PUT",
            "assessment",
            f"/rapporten/{self.rapport_id}",
            "adviseur",
            "assessment to know of the rejection",
            json=rapport_inhoud(2),
        )

    def lees_rapport(self, role: str) -> httpx.Response:
        """A person reads the report (once assessment heard of the decision that allows it)."""
        return self.eventually(
            "GET",
            "assessment",
            f"/rapporten/{self.rapport_id}",
            role,
            f"the report to become readable for the {role}",
            retry_on=(403,),
        )

    def probeer_te_lezen(self, role: str) -> httpx.Response:
        """A read that the process must refuse."""
        return self.call(
            "GET", "assessment", f"/rapporten/{self.rapport_id}", role, expect=(403, 404)
        )

    def instemming(self, *, geeft: bool) -> None:
        """The bestuurder consents (or refuses) to share the report with the werkgever."""
        self.eventually(
            "POST",
            "approval",
            f"/rapporten/{self.rapport_id}/instemming",
            "bestuurder",
            "approval to know of the approval",
            json={"instemming": geeft},
        )

    def pkvw_certificaat(self) -> None:
        """The bestuurder reports the PKVW: a declaration, then the certificate."""
        path = f"/aanvragen/{self.aanvraag_id}/pkvw"
        self.call("POST", "assessment", path, "bestuurder", json={"status": "verklaring"})
        self.call(
            "POST",
            "assessment",
            path,
            "bestuurder",
            json={
                "status": "certificaat",
                "afgegeven_op": datetime.now(AMSTERDAM).date().isoformat(),
                "nummer": "PKVW-DEMO-0001",
            },
        )

    def tot_goedgekeurd(self) -> None:
        """From registration to an approved report, with a rejection and a revision first."""
        self.registreer()
        self.neem_contact_op()
        self.plan_gesprekken()
        self.voer_gesprekken()
        self.schrijf_rapport()
        self.beoordeel(self.dien_in(), goedkeuren=False)
        self.herzie()
        self.beoordeel(self.dien_in(), goedkeuren=True)

    def volledig_proces(self) -> dict[str, Any]:
        """Every step as ``weerbaar demo`` takes them (rejection, revision), until closed."""
        self.tot_goedgekeurd()
        self.lees_rapport("bestuurder")
        self.instemming(geeft=True)
        self.lees_rapport("werkgever")
        self.pkvw_certificaat()
        self.voer_maatregelen_uit()
        return self.wait_for_status("afgesloten")

    def voer_maatregelen_uit(self) -> int:
        """Each party carries out its measures."""
        maatregelen = self.eventually(
            "GET",
            "assessment",
            f"/aanvragen/{self.aanvraag_id}/maatregelen",
            "secretariaat",
            "the measures of the approved report",
        ).json()["maatregelen"]
        for maatregel in maatregelen:
            role = maatregel["uitvoerder"]
            self.eventually(
                "POST",
                "assessment",
                f"/maatregelen/{maatregel['maatregel_id']}/uitgevoerd",
                role,
                "the release of the report",
            )
        return len(maatregelen)


def timeline(dossier: dict[str, Any]) -> str:
    """The dossier's timeline as text: when, what, which service, which role."""
    lines = [f"Dossier {dossier['aanvraag_id']} — status {dossier['status']}", ""]
    for regel in dossier["tijdlijn"]:
        moment = datetime.fromisoformat(regel["tijd"]).strftime("%Y-%m-%d %H:%M:%S")
        wie = f"{regel.get('rol') or '-'} ({regel.get('actor_id') or '-'})"
        lines.append(f"{moment}  {regel['gebeurtenis']:<32} {regel['dienst']:<14} {wie}")
    return "\n".join(lines)


def portal_dossier_url(portal: str, aanvraag_id: str) -> str:
    """The secretariaat's page of a dossier in the portal."""
    return f"{portal.rstrip('/')}/secretariaat/dossiers/{aanvraag_id}"


def run_demo(
    urls: dict[str, str],
    data_dir: Path,
    out: Callable[[str], None] = print,
    portal: str | None = None,
) -> dict[str, Any]:
    """Drive one dossier through the whole process, print its timeline and, with the portal's
    URL, the address of the dossier's page there."""
    actors = Actors(
        secret=load_or_create_secret(data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"anna.{secrets.token_hex(3)}@example.org",
        organisatie="GM0344",
    )
    with httpx.Client(timeout=15) as client:
        d = DossierDriver(urls, actors, client)
        steps: list[tuple[str, Callable[[], object]]] = [
            ("De bestuurder meldt zich aan", d.registreer),
            ("Het secretariaat neemt contact op", d.neem_contact_op),
            (
                "Het secretariaat legt beide gesprekken achteraf vast (er is er één verzet)",
                d.plan_gesprekken,
            ),
            ("De adviseur voert de gesprekken en de woningscan", d.voer_gesprekken),
            ("De adviseur stelt het rapport op", d.schrijf_rapport),
        ]
        for title, step in steps:
            out(f"• {title}")
            step()
        out("• De adviseur biedt het rapport ter toetsing aan; de BVA keurt het af")
        d.beoordeel(d.dien_in(), goedkeuren=False)
        out("• De adviseur herziet het rapport en biedt versie 2 aan; de BVA keurt het goed")
        d.herzie()
        d.beoordeel(d.dien_in(), goedkeuren=True)
        out("• De werkgever probeert het rapport te lezen vóór de instemming: geweigerd")
        d.probeer_te_lezen("werkgever")
        out("• De bestuurder leest het rapport en stemt in met delen")
        d.lees_rapport("bestuurder")
        d.instemming(geeft=True)
        out("• De werkgever leest het rapport")
        d.lees_rapport("werkgever")
        out("• De bestuurder haalt het Politiekeurmerk Veilig Wonen")
        d.pkvw_certificaat()
        out("• Bestuurder en werkgever voeren de maatregelen uit")
        d.voer_maatregelen_uit()
        dossier = d.wait_for_status("afgesloten")
        out("")
        out(timeline(dossier))
        if portal:
            out("")
            out(f"In het portaal: {portal_dossier_url(portal, dossier['aanvraag_id'])}")
        return dossier
