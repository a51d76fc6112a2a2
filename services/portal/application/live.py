"""Live pages: an open page is told, within about a second, that what its viewer sees has changed.

The portal reads the system's public event stream (subjects only: the event's name and its
dossier id). A page subscribes to one dossier, or to one of its role's lists. When an event
lands that concerns the subscription, the connection asks the services again *with the
viewer's own token* what the viewer sees, and pushes "gewijzigd" only when that answer
changed: a push never tells the viewer more than the API would show them, and it carries
nothing (no event name, no data); the page then fetches itself again.

A connection waits on a flag, never on a queue: the fan-out only sets flags, so a slow or
vanished client never holds it up, and a burst of events is one flag set once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from services.portal.application.bva import WACHTRIJ_VRAAG
from services.portal.application.ports import Apis
from services.portal.application.secretariaat import Filters
from services.portal.application.uitkomsten import Gelukt, Onbereikbaar, TeVaak, Uitkomst

#: The subjects of the public stream: ``weerbaar.<service>.<EventName>.<aanvraag_id>``.
ONDERWERP_PREFIX = "weerbaar"
ALLE_ONDERWERPEN = f"{ONDERWERP_PREFIX}.>"

#: A comment line this often, so proxies keep the connection open.
HARTSLAG_S = 15.0
#: At most one push per connection per this many seconds.
DEMPING_S = 1.0
#: After an event, how long the viewer's answer is asked again for the change (the services'
#: read models follow the stream a moment later), and how often.
NAKIJKEN_S = 3.0
PEILEN_S = 0.25
#: Open connections: per session (a few tabs; below the six connections a browser opens to one
#: host over HTTP/1.1, so that pages still load beside them) and in all.
MAX_PER_SESSIE = 4
MAX_TOTAAL = 400

#: Each list a role may follow live: who may, and what its viewer sees of it.
LIJSTEN: Mapping[str, str] = {
    "werkvoorraad": "secretariaat",
    "toetsing": "bva",
    "afspraken": "adviseur",
}


@dataclass(frozen=True)
class Gebeurtenis:
    """An event on the stream, as its subject names it (never its contents)."""

    naam: str
    aanvraag_id: UUID | None


def uit_onderwerp(onderwerp: str) -> Gebeurtenis | None:
    """The event a subject names (None: not a public event's subject)."""
    delen = onderwerp.split(".")
    if len(delen) != 4 or delen[0] != ONDERWERP_PREFIX or not delen[2]:
        return None
    try:
        aanvraag_id: UUID | None = UUID(delen[3])
    except ValueError:
        aanvraag_id = None  # an event of no one dossier
    return Gebeurtenis(delen[2], aanvraag_id)


class Vol(Exception):
    """Too many open connections (for this session, or in all)."""


@dataclass(eq=False)
class Abonnement:
    """One open connection: a session following one dossier (or, ``dossier`` None, a list)."""

    sessie: str
    dossier: UUID | None
    signaal: asyncio.Event = field(default_factory=asyncio.Event)

    def betreft(self, gebeurtenis: Gebeurtenis) -> bool:
        """Whether the event may change what this connection's page shows."""
        return self.dossier is None or gebeurtenis.aanvraag_id == self.dossier


class Verdeler:
    """The fan-out: the stream's events to the open connections they concern.

    Runs on the portal's event loop (the stream's callback and the connections share it)."""

    def __init__(self, max_per_sessie: int = MAX_PER_SESSIE, max_totaal: int = MAX_TOTAAL):
        self.max_per_sessie = max_per_sessie
        self.max_totaal = max_totaal
        self._open: set[Abonnement] = set()

    def neem(self, sessie: str, dossier: UUID | None) -> Abonnement:
        """A new connection; ``Vol`` when the session or the portal has too many."""
        if len(self._open) >= self.max_totaal:
            raise Vol("the portal has too many open connections")
        if sum(1 for a in self._open if a.sessie == sessie) >= self.max_per_sessie:
            raise Vol("this session has too many open connections")
        abonnement = Abonnement(sessie, dossier)
        self._open.add(abonnement)
        return abonnement

    def laat_los(self, abonnement: Abonnement) -> None:
        """The connection ended."""
        self._open.discard(abonnement)

    @property
    def aantal(self) -> int:
        """How many connections are open."""
        return len(self._open)

    def verdeel(self, gebeurtenis: Gebeurtenis) -> int:
        """Flag every connection the event concerns (never waits); how many were flagged."""
        geraakt = 0
        for abonnement in tuple(self._open):
            if abonnement.betreft(gebeurtenis):
                abonnement.signaal.set()
                geraakt += 1
        return geraakt


class Luisteraar(Protocol):
    """Feeds the stream's events to a ``Verdeler`` while the portal runs."""

    async def start(self) -> None:
        """Begin (returns at once; connecting goes on in the background)."""

    async def stop(self) -> None:
        """End and let go of the connection."""


class Weg:
    """What a refused or ended answer is: the connection ends."""


WEG = Weg()

#: What the viewer sees now (an API answer's data; ``WEG``: refused, the connection ends;
#: None: the services could not answer now).
Zicht = Callable[[], Awaitable[object]]


def zicht_uit(uitkomsten: tuple[Uitkomst, ...]) -> object:
    """The comparable data of the viewer's answers, ``WEG`` when one was refused, None when a
    service could not answer now."""
    delen: list[object] = []
    for uitkomst in uitkomsten:
        match uitkomst:
            case Gelukt(data=data, lijst=lijst):
                delen.append((data, lijst))
            case Onbereikbaar() | TeVaak():
                return None
            case _:
                return WEG
    return delen


def zicht_van(
    apis: Apis,
    dossier: UUID | None,
    lijst: str | None,
    pagina: Mapping[str, str] | None = None,
) -> Callable[[], object]:
    """What the viewer's page shows, asked with the viewer's APIs as the page asks: the
    dossier, or the list (the werkvoorraad with the page's own filters and start, ``pagina``:
    its query string; malformed values dropped as the page drops them)."""
    if dossier is not None:
        return lambda: zicht_uit((apis.dossier(dossier),))
    if lijst == "werkvoorraad":
        vraag = Filters.uit(pagina or {}).api_filters()
        return lambda: zicht_uit((apis.dossiers(vraag),))
    if lijst == "toetsing":
        return lambda: zicht_uit((apis.dossiers(dict(WACHTRIJ_VRAAG)),))
    if lijst == "afspraken":
        return lambda: zicht_uit((apis.mijn_afspraken("gepland"), apis.mijn_afspraken("gevoerd")))
    raise ValueError(f"no live list {lijst!r}")


GEWIJZIGD = "event: gewijzigd\ndata: gewijzigd\n\n"
EINDE = "event: einde\ndata: einde\n\n"
HARTSLAG = ": hartslag\n\n"
#: The first lines: the connection is open; after a drop the browser tries again in 5 s.
BEGIN = "retry: 5000\n: verbonden\n\n"


@dataclass(frozen=True)
class Tempo:
    """The connection's timings (tests pass shorter ones)."""

    hartslag_s: float = HARTSLAG_S
    demping_s: float = DEMPING_S
    nakijken_s: float = NAKIJKEN_S
    peilen_s: float = PEILEN_S


async def _nieuw_zicht(zicht: Zicht, vorig: object, tempo: Tempo) -> object:
    """The viewer's answer once it differs from ``vorig`` (None: it did not change within
    ``nakijken_s``; ``WEG``: refused). Asked at once, then after ``peilen_s``, twice that, …:
    a few calls per event, however busy the stream."""
    tot = time.monotonic() + tempo.nakijken_s
    wacht = tempo.peilen_s
    while True:
        nu = await zicht()
        if nu is WEG or (nu is not None and nu != vorig):
            return nu
        if time.monotonic() + wacht > tot:
            return None
        await asyncio.sleep(wacht)
        wacht *= 2


async def stroom(
    verdeler: Verdeler,
    abonnement: Abonnement,
    zicht: Zicht,
    eerste: object,
    verloopt: float,
    tempo: Tempo = Tempo(),
    klok: Callable[[], float] = time.time,
    *,
    token_verloopt: float | None = None,
) -> AsyncIterator[str]:
    """The connection's server-sent events: "gewijzigd" when the viewer's answer changed (at
    most one per ``demping_s``), a heartbeat comment when quiet, "einde" when the session
    expires (``verloopt``, Unix time) or access is refused. When the access token expires
    first (``token_verloopt``) the stream just closes: the browser connects again and the
    portal renews the token on the way, as for a page. Lets go of the subscription at the end,
    also when the client went away."""
    stil_om = token_verloopt if token_verloopt is not None and token_verloopt < verloopt else None
    vorig = eerste
    laatste = float("-inf")
    try:
        yield BEGIN
        while True:
            if stil_om is not None and stil_om <= klok():
                return
            tot = min(verloopt, stil_om or verloopt)
            if tot <= klok():
                yield EINDE
                return
            try:
                await asyncio.wait_for(
                    abonnement.signaal.wait(), timeout=min(tempo.hartslag_s, tot - klok())
                )
            except TimeoutError:
                if klok() < tot:
                    yield HARTSLAG
                continue
            nog = laatste + tempo.demping_s - time.monotonic()
            if nog > 0:
                await asyncio.sleep(nog)  # what lands meanwhile is in the same push
            abonnement.signaal.clear()
            nieuw = await _nieuw_zicht(zicht, vorig, tempo)
            if nieuw is WEG:
                yield EINDE
                return
            if nieuw is None:
                continue
            vorig = nieuw
            laatste = time.monotonic()
            yield GEWIJZIGD
    finally:
        verdeler.laat_los(abonnement)
