"""The audit export: who did what in a dossier (or a period), every read and refusal, the deadlines.

Built from the dossier projection's stored public events (the audit trail, ``EVENTS``): who
submitted, planned, held, wrote, reviewed, approved, consented, released, **read** (which version,
when) and was refused, and whether the contact deadline was met. As JSON and CSV for machines and
as an HTML document a compliance officer can file; each states whether the services' event logs
were verified against their tamper-evident chains when it was made, and the result (the
verification itself is ``services.intake.adapters.verify_chains``).

It holds no personal data: public events carry none, and actors are opaque ids (the token's
``sub``), never names or e-mail addresses.

The export is a query of the read model and its view (``build``, ``Export``); its formats
(``render``) are here too, beside it, because both entry points render it and they do not know
each other: ``GET /audit/export`` (``services.intake.api``) serves it to compliance,
``weerbaar audit-export`` (``services.intake.ops.audit_export``) writes it for the operator.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL

from services.intake.projections.dossier import EVENTS, stored_in_recorded_order
from shared.contracts.envelope import format_rfc3339
from shared.platform.errors import TeVaak
from shared.platform.model import Clock, utcnow

Formaat = Literal["json", "csv", "html"]

#: What each event says someone did (the export's "handeling"); other events are listed as is.
HANDELINGEN: dict[str, str] = {
    "AanvraagIngediend": "ingediend",
    "AanvraagBuitenRegeling": "buiten regeling vastgesteld",
    "AanvraagIngetrokken": "ingetrokken",
    "DossierAfgesloten": "afgesloten",
    "PersoonsgegevensVerstrekt": "persoonsgegevens verstrekt",
    "PersoonsgegevensVergeten": "persoonsgegevens vergeten",
    "ContacttermijnGesteld": "contacttermijn gesteld",
    "ContactOpgenomen": "contact opgenomen",
    "ContacttermijnVerstreken": "contacttermijn verstreken",
    "AfspraakGepland": "gepland",
    "AfspraakVerzet": "verzet",
    "AfspraakGeannuleerd": "geannuleerd",
    "GesprekGevoerd": "gesprek gevoerd",
    "WoningscanUitgevoerd": "woningscan uitgevoerd",
    "ToelichtingAangevraagd": "toelichting aangevraagd",
    "RapportOpgesteld": "rapport geschreven",
    "RapportHerzien": "rapport herzien",
    "RapportTerToetsingAangeboden": "ter toetsing aangeboden",
    "RapportGoedgekeurd": "goedgekeurd",
    "RapportAfgekeurd": "afgekeurd",
    "RapportVerstrektAanBestuurder": "verstrekt aan bestuurder",
    "InstemmingGegeven": "instemming gegeven",
    "InstemmingGeweigerd": "instemming geweigerd",
    "RapportVrijgegeven": "vrijgegeven",
    "RapportIngezien": "gelezen",
    "PkvwStatusGewijzigd": "PKVW-status gewijzigd",
    "MaatregelUitgevoerd": "maatregel uitgevoerd",
    "NotificatieVerzonden": "notificatie verzonden",
    "NotificatieMislukt": "notificatie mislukt",
    "ToegangGeweigerd": "toegang geweigerd",
}

#: Fields of ``data`` that the export repeats (ids, versions, codes, counts: never personal data).
DETAILS = (
    "aantal",
    "versie",
    "rol",
    "soort",
    "gegevens",
    "reden",
    "actie",
    "status_code",
    "binnen_termijn",
    "deadline",
    "status",
    "instemming",
    "aantal_maatregelen",
)

CSV_COLUMNS = (
    "tijd",
    "aanvraag_id",
    "handeling",
    "gebeurtenis",
    "dienst",
    "rol",
    "actor",
    "versie",
    "details",
    "event_id",
)


@dataclass(frozen=True)
class Regel:
    """One event in the export."""

    tijd: str
    aanvraag_id: str
    handeling: str
    gebeurtenis: str
    dienst: str
    rol: str | None
    actor: str | None
    versie: int | None
    details: str
    event_id: str


@dataclass(frozen=True)
class Termijn:
    """The contact deadline of one dossier and whether it was met."""

    aanvraag_id: str
    deadline: str | None
    contact_op: str | None
    uitkomst: Literal["gehaald", "gemist", "open"]


@dataclass(frozen=True)
class Verificatie:
    """Whether the services' event logs were verified against their chains, and the result."""

    uitgevoerd: bool
    in_orde: bool | None
    diensten: dict[str, str] = field(default_factory=dict)
    toelichting: str = ""


@dataclass(frozen=True)
class Controle:
    """One verification of the chains and the moment it started."""

    verificatie: Verificatie
    gestart_op: datetime
    _gestart: float


#: Callers that may wait for a running verification at once; more are refused (429) at once, so
#: a burst of requests never holds more than this many of the service's worker threads.
WACHTENDEN = 4


class Ketencontrole:
    """The chains' verification, made at most once at a time and kept for a while.

    Verifying recomputes every service's chain from its first row: its cost grows with the whole
    history, not with a dossier. A page that shows the outcome asks ``recent`` and states the
    moment it was made; an export asks ``nu`` (made for it, after it was asked). Callers that
    arrive while one runs wait for it and share it when it is new enough for them (a burst of
    ``nu`` makes at most two: the one running and the next, shared by all who asked meanwhile).
    At most ``wachtenden`` wait at once: the next is told to come back (``TeVaak``, with the
    last verification's duration as ``Retry-After``).
    """

    def __init__(
        self,
        verify: Callable[[], Verificatie],
        clock: Clock,
        max_age_s: float,
        wachtenden: int = WACHTENDEN,
    ) -> None:
        self._verify = verify
        self._clock = clock
        self._max_age_s = max_age_s
        self._wachtenden = wachtenden
        self._lock = threading.Lock()
        self._teller = threading.Lock()
        self._wachtend = 0
        self._duur_s = 1.0
        self._laatste: Controle | None = None

    @property
    def wachtend(self) -> int:
        """How many callers wait for the running verification now."""
        return self._wachtend

    def recent(self) -> Controle:
        """A verification started at most ``max_age_s`` ago; a new one when there is none."""
        return self._gestart_na(time.monotonic() - self._max_age_s)

    def nu(self) -> Controle:
        """A verification started after this call."""
        return self._gestart_na(time.monotonic())

    def _gestart_na(self, grens: float) -> Controle:
        laatste = self._laatste
        if laatste is not None and laatste._gestart >= grens:
            return laatste  # new enough: no need to wait for a running one
        if not self._lock.acquire(blocking=False):
            with self._teller:
                if self._wachtend >= self._wachtenden:
                    raise TeVaak(
                        "Er loopt al een controle van de hash-ketens en er wachten al"
                        f" {self._wachtend} verzoeken op; probeer het zo opnieuw.",
                        retry_after_s=max(1, math.ceil(self._duur_s)),
                        code="ketencontrole_bezig",
                    )
                self._wachtend += 1
            try:
                self._lock.acquire()
            finally:
                with self._teller:
                    self._wachtend -= 1
        try:
            laatste = self._laatste
            if laatste is not None and laatste._gestart >= grens:
                return laatste
            gestart, gestart_op = time.monotonic(), self._clock.now()
            controle = Controle(self._verify(), gestart_op, gestart)
            self._duur_s = time.monotonic() - gestart
            self._laatste = controle
            return controle
        finally:
            self._lock.release()


@dataclass(frozen=True)
class Export:
    """Everything the export says."""

    reikwijdte: dict[str, str]
    gemaakt_op: str
    verificatie: Verificatie
    gebeurtenissen: tuple[Regel, ...]
    termijnen: tuple[Termijn, ...]

    @property
    def actoren(self) -> list[dict[str, Any]]:
        """Each actor (role + opaque id) and what they did, in order of first appearance."""
        seen: dict[tuple[str | None, str | None], dict[str, Any]] = {}
        for regel in self.gebeurtenissen:
            key = (regel.rol, regel.actor)
            entry = seen.setdefault(
                key, {"rol": regel.rol, "actor": regel.actor, "handelingen": {}}
            )
            entry["handelingen"][regel.handeling] = entry["handelingen"].get(regel.handeling, 0) + 1
        return list(seen.values())

    @property
    def inzage(self) -> list[Regel]:
        """Every read of the report: who, which version, when."""
        return [r for r in self.gebeurtenissen if r.gebeurtenis == "RapportIngezien"]

    @property
    def weigeringen(self) -> list[Regel]:
        """Every refused attempt."""
        return [r for r in self.gebeurtenissen if r.gebeurtenis == "ToegangGeweigerd"]

    def as_json(self) -> dict[str, Any]:
        return {
            "reikwijdte": self.reikwijdte,
            "gemaakt_op": self.gemaakt_op,
            "verificatie": asdict(self.verificatie),
            "actoren": self.actoren,
            "inzage": [asdict(r) for r in self.inzage],
            "weigeringen": [asdict(r) for r in self.weigeringen],
            "termijnen": [asdict(t) for t in self.termijnen],
            "gebeurtenissen": [asdict(r) for r in self.gebeurtenissen],
        }


def _regel(envelope: dict[str, Any]) -> Regel:
    name = envelope["type"].split(".")[-2]
    data = envelope.get("data") or {}
    details = {k: data[k] for k in DETAILS if k in data and k != "versie"}
    if name == "ToegangGeweigerd":
        details["dienst"] = data.get("dienst")
    versie = data.get("versie")
    return Regel(
        tijd=envelope["time"],
        aanvraag_id=str(envelope.get("subject") or ""),
        handeling=HANDELINGEN.get(name, name),
        gebeurtenis=name,
        dienst=envelope["source"].rsplit(":", 1)[-1],
        rol=envelope.get("actorrole"),
        actor=envelope.get("actorid"),
        versie=versie if isinstance(versie, int) else None,
        details=" ".join(f"{k}={v}" for k, v in details.items()),
        event_id=envelope["id"],
    )


def termijnen(regels: Iterable[tuple[str, dict[str, Any]]]) -> tuple[Termijn, ...]:
    """Per dossier, the contact deadline: met, missed or still open."""
    per: dict[str, dict[str, Any]] = {}
    for aanvraag_id, envelope in regels:
        name = envelope["type"].split(".")[-2]
        data = envelope.get("data") or {}
        entry = per.setdefault(
            aanvraag_id, {"deadline": None, "contact_op": None, "uitkomst": None}
        )
        if name == "ContacttermijnGesteld":
            entry["deadline"] = data.get("deadline")
        elif name == "ContactOpgenomen":
            entry["contact_op"] = data.get("contact_op")
            entry["uitkomst"] = "gehaald" if data.get("binnen_termijn") else "gemist"
        elif name == "ContacttermijnVerstreken":
            entry["deadline"] = entry["deadline"] or data.get("deadline")
            if entry["uitkomst"] is None:
                entry["uitkomst"] = "gemist"
    return tuple(
        Termijn(
            aanvraag_id=a,
            deadline=e["deadline"],
            contact_op=e["contact_op"],
            uitkomst=e["uitkomst"] or "open",
        )
        for a, e in per.items()
        if e["deadline"] is not None or e["uitkomst"] is not None
    )


def build(
    conn: psycopg.Connection[Any],
    *,
    aanvraag_id: UUID | None = None,
    van: datetime | None = None,
    tot: datetime | None = None,
    verificatie: Verificatie | None = None,
    now: datetime | None = None,
) -> Export | None:
    """The export of one dossier or of a period [van, tot); None for a dossier without events."""
    clauses: list[SQL] = []
    params: list[object] = []
    reikwijdte: dict[str, str] = {}
    if aanvraag_id is not None:
        clauses.append(SQL("aanvraag_id = %s"))
        params.append(aanvraag_id)
        reikwijdte["aanvraag_id"] = str(aanvraag_id)
    if van is not None:
        clauses.append(SQL("time >= %s"))
        params.append(van)
        reikwijdte["van"] = format_rfc3339(van)
    if tot is not None:
        clauses.append(SQL("time < %s"))
        params.append(tot)
        reikwijdte["tot"] = format_rfc3339(tot)
    if not clauses:
        raise ValueError("an export needs a dossier or a period")
    rows = stored_in_recorded_order(
        conn.cursor(row_factory=dict_row)
        .execute(
            SQL(
                "SELECT aanvraag_id::text, time, stream_sequence, log_position, envelope"
                " FROM {} WHERE {}"
            ).format(EVENTS, SQL(" AND ").join(clauses)),
            params,
        )
        .fetchall()
    )
    if aanvraag_id is not None and not rows:
        return None
    envelopes = [(str(r["aanvraag_id"]), r["envelope"]) for r in rows]
    return Export(
        reikwijdte=reikwijdte,
        gemaakt_op=format_rfc3339(now or utcnow()),
        verificatie=verificatie or Verificatie(uitgevoerd=False, in_orde=None, toelichting=""),
        gebeurtenissen=tuple(_regel(e) for _, e in envelopes),
        termijnen=termijnen(envelopes),
    )


def render(export: Export, formaat: Formaat) -> str:
    """The export as text in the chosen format."""
    if formaat == "json":
        return json.dumps(export.as_json(), indent=2, ensure_ascii=False)
    if formaat == "csv":
        return to_csv(export)
    return to_html(export)


def to_csv(export: Export) -> str:
    """One row per event (reads, refusals and deadline events included)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for regel in export.gebeurtenissen:
        writer.writerow(asdict(regel))
    return out.getvalue()


def _cell(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], css: str) -> str:
    head = "".join(f"<th>{_cell(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>\n" for row in rows
    )
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>'


def to_html(export: Export) -> str:
    """A self-contained document to file: scope, verification, actors, reads, refusals, events."""
    v = export.verificatie
    if not v.uitgevoerd:
        verified = "Niet geverifieerd tegen de hash-keten. " + v.toelichting
    else:
        verified = (
            "Geverifieerd tegen de hash-keten van elke dienst bij het maken van dit document: "
            + ("in orde." if v.in_orde else "NIET IN ORDE.")
        )
    scope = ", ".join(f"{k} {v}" for k, v in export.reikwijdte.items())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="nl"><head><meta charset="utf-8">',
        f"<title>Auditverslag {_cell(scope)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "margin-bottom:1.5em}td,th{border:1px solid #999;padding:2px 6px;font-size:90%;"
        "text-align:left}.fout{color:#a00;font-weight:bold}</style></head><body>",
        "<h1>Auditverslag Weerbaar bestuur</h1>",
        f'<p>Reikwijdte: <span class="reikwijdte">{_cell(scope)}</span><br>'
        f'Gemaakt op: <span class="gemaakt-op">{_cell(export.gemaakt_op)}</span></p>',
        "<h2>Verificatie</h2>",
        f'<p class="verificatie{"" if v.in_orde is not False else " fout"}">{_cell(verified)}</p>',
    ]
    if v.diensten:
        parts.append(_table(("dienst", "uitkomst"), sorted(v.diensten.items()), "verificatie"))
    parts += [
        "<p>Dit verslag bevat geen persoonsgegevens: actoren zijn ondoorzichtige kenmerken.</p>",
        "<h2>Actoren</h2>",
        _table(
            ("rol", "actor", "handelingen"),
            (
                (
                    a["rol"],
                    a["actor"],
                    ", ".join(f"{h} ({n}×)" for h, n in a["handelingen"].items()),
                )
                for a in export.actoren
            ),
            "actoren",
        ),
        "<h2>Inzage van het rapport</h2>",
        _table(
            ("tijd", "aanvraag_id", "rol", "actor", "versie"),
            ((r.tijd, r.aanvraag_id, r.rol, r.actor, r.versie) for r in export.inzage),
            "inzage",
        ),
        "<h2>Geweigerde toegang</h2>",
        _table(
            ("tijd", "aanvraag_id", "rol", "actor", "details"),
            ((r.tijd, r.aanvraag_id, r.rol, r.actor, r.details) for r in export.weigeringen),
            "weigeringen",
        ),
        "<h2>Termijnen</h2>",
        _table(
            ("aanvraag_id", "contacttermijn", "contact opgenomen", "uitkomst"),
            ((t.aanvraag_id, t.deadline, t.contact_op, t.uitkomst) for t in export.termijnen),
            "termijnen",
        ),
        "<h2>Alle gebeurtenissen</h2>",
        _table(
            CSV_COLUMNS,
            (tuple(asdict(r).values()) for r in export.gebeurtenissen),
            "gebeurtenissen",
        ),
        "</body></html>",
    ]
    return "\n".join(parts)


MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}
