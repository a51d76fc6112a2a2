"""One valid example of every public event, reused by the contract tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import UUID

from shared.contracts import events as ev

AANVRAAG_ID = UUID("6f1c2a8e-4b7d-4e11-9a3c-0d5e8f7a9b21")
AFSPRAAK_ID = UUID("0b9e5d4c-3a2f-4e1d-8c7b-6a5f4e3d2c1b")
RAPPORT_ID = UUID("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d")
MAATREGEL_ID = UUID("5d4c3b2a-1f0e-4d9c-8b7a-6f5e4d3c2b1a")
NOTIFICATIE_ID = UUID("9c8b7a6f-5e4d-4c3b-2a1f-0e9d8c7b6a5f")
ABONNEMENT_ID = UUID("2e7d9c4b-8a1f-4b3e-9d6c-5f4a3b2c1d0e")
HASH = "3f0a" * 16
MOMENT = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
MAATREGEL = ev.MaatregelSamenvatting(
    maatregel_id=MAATREGEL_ID,
    domein=ev.Domein.WONEN,
    kosten=ev.Kosten.MET_KOSTEN,
    uitvoerder=ev.Partij.WERKGEVER,
    prioriteit=ev.Prioriteit.HOOG,
)
DEADLINE = datetime(2025, 3, 5, 23, 0, tzinfo=UTC)  # end of the third working day, Amsterdam

EXAMPLES: dict[type[ev.PublicEvent], ev.PublicEvent] = {
    example.__class__: example
    for example in (
        ev.AanvraagIngediend(
            aanvraag_id=AANVRAAG_ID,
            ingediend_op=MOMENT,
            ingediend_door=ev.Partij.WERKGEVER,
            organisatie_code="GM0363",
            binnen_regeling=True,
            verhuizing_gepland=False,
        ),
        ev.AanvraagIngetrokken(
            aanvraag_id=AANVRAAG_ID, ingetrokken_op=MOMENT, door_rol=ev.Rol.BESTUURDER
        ),
        ev.AanvraagBuitenRegeling(aanvraag_id=AANVRAAG_ID, reden=ev.BuitenRegelingReden.RAADSLID),
        ev.DossierAfgesloten(
            aanvraag_id=AANVRAAG_ID,
            afgesloten_op=MOMENT,
            reden=ev.AfsluitReden.ALLE_MAATREGELEN_UITGEVOERD,
            maatregelen_totaal=7,
            maatregelen_uitgevoerd=7,
        ),
        ev.PersoonsgegevensVergeten(
            aanvraag_id=AANVRAAG_ID,
            vergeten_op=MOMENT,
            reden=ev.VergeetReden.BEWAARTERMIJN_VERSTREKEN,
        ),
        ev.PersoonsgegevensVerstrekt(
            aanvraag_id=AANVRAAG_ID,
            gegevens=ev.Persoonsgegeven.ADRES_BESTUURDER,
            verstrekt_op=MOMENT,
        ),
        ev.BewaarplichtOpgelegd(
            aanvraag_id=AANVRAAG_ID, reden=ev.BewaarplichtReden.RECHTSZAAK, opgelegd_op=MOMENT
        ),
        ev.BewaarplichtOpgeheven(aanvraag_id=AANVRAAG_ID, opgeheven_op=MOMENT),
        ev.GegevensVernietigd(
            aanvraag_id=AANVRAAG_ID,
            soort="RapportIngezien",
            aantal=4,
            tot=MOMENT,
            vernietigd_op=MOMENT,
        ),
        ev.ContactOpgenomen(aanvraag_id=AANVRAAG_ID, contact_op=MOMENT, binnen_termijn=True),
        ev.ContacttermijnGesteld(
            aanvraag_id=AANVRAAG_ID,
            deadline=DEADLINE,
            werkdagen=3,
            kalender="algemene_termijnenwet",
        ),
        ev.ContacttermijnVerstreken(
            aanvraag_id=AANVRAAG_ID, deadline=DEADLINE, vastgesteld_op=MOMENT
        ),
        ev.AfspraakGepland(
            aanvraag_id=AANVRAAG_ID,
            afspraak_id=AFSPRAAK_ID,
            soort=ev.AfspraakSoort.GESPREK_BESTUURDER,
            vorm=ev.AfspraakVorm.THUIS,
            gepland_op=MOMENT,
            duur_minuten=90,
            adviseur_id="adviseur-7",
        ),
        ev.AfspraakVerzet(
            aanvraag_id=AANVRAAG_ID,
            afspraak_id=AFSPRAAK_ID,
            soort=ev.AfspraakSoort.GESPREK_WERKGEVER,
            gepland_op=datetime(2025, 3, 10, 13, 0, tzinfo=UTC),
            vorige_gepland_op=MOMENT,
        ),
        ev.AfspraakGeannuleerd(
            aanvraag_id=AANVRAAG_ID, afspraak_id=AFSPRAAK_ID, soort=ev.AfspraakSoort.TOELICHTING
        ),
        ev.GesprekGevoerd(
            aanvraag_id=AANVRAAG_ID,
            afspraak_id=AFSPRAAK_ID,
            soort=ev.AfspraakSoort.GESPREK_BESTUURDER,
            gevoerd_op=MOMENT,
        ),
        ev.WoningscanUitgevoerd(
            aanvraag_id=AANVRAAG_ID, afspraak_id=AFSPRAAK_ID, uitgevoerd_op=MOMENT
        ),
        ev.ToelichtingAangevraagd(
            aanvraag_id=AANVRAAG_ID, aangevraagd_door=ev.Partij.BESTUURDER, aangevraagd_op=MOMENT
        ),
        ev.RapportOpgesteld(
            aanvraag_id=AANVRAAG_ID,
            rapport_id=RAPPORT_ID,
            versie=1,
            aantal_maatregelen=1,
            maatregelen=(MAATREGEL,),
        ),
        ev.RapportHerzien(
            aanvraag_id=AANVRAAG_ID,
            rapport_id=RAPPORT_ID,
            versie=2,
            aantal_maatregelen=1,
            maatregelen=(MAATREGEL,),
        ),
        ev.RapportTerToetsingAangeboden(
            aanvraag_id=AANVRAAG_ID, rapport_id=RAPPORT_ID, versie=2, inhoud_hash=HASH
        ),
        ev.RapportIngezien(
            aanvraag_id=AANVRAAG_ID,
            rapport_id=RAPPORT_ID,
            versie=2,
            rol=ev.Rol.BVA,
            ingezien_op=MOMENT,
        ),
        ev.PkvwStatusGewijzigd(
            aanvraag_id=AANVRAAG_ID,
            status=ev.PkvwStatus.CERTIFICAAT,
            geldig_tot=date(2035, 3, 2),
        ),
        ev.MaatregelUitgevoerd(
            aanvraag_id=AANVRAAG_ID,
            maatregel_id=MAATREGEL_ID,
            rapport_id=RAPPORT_ID,
            domein=ev.Domein.INFORMATIE,
            kosten=ev.Kosten.KOSTELOOS,
            uitgevoerd_door=ev.Partij.BESTUURDER,
            uitgevoerd_op=MOMENT,
        ),
        ev.RapportGoedgekeurd(
            aanvraag_id=AANVRAAG_ID, rapport_id=RAPPORT_ID, versie=2, inhoud_hash=HASH
        ),
        ev.RapportAfgekeurd(
            aanvraag_id=AANVRAAG_ID,
            rapport_id=RAPPORT_ID,
            versie=1,
            inhoud_hash=HASH,
            aantal_redenen=2,
        ),
        ev.RapportVerstrektAanBestuurder(aanvraag_id=AANVRAAG_ID, rapport_id=RAPPORT_ID, versie=2),
        ev.InstemmingGegeven(aanvraag_id=AANVRAAG_ID, rapport_id=RAPPORT_ID, versie=2),
        ev.InstemmingGeweigerd(aanvraag_id=AANVRAAG_ID, rapport_id=RAPPORT_ID, versie=2),
        ev.RapportVrijgegeven(
            aanvraag_id=AANVRAAG_ID, rapport_id=RAPPORT_ID, versie=2, organisatie_code="PV27"
        ),
        ev.NotificatieVerzonden(
            aanvraag_id=AANVRAAG_ID,
            notificatie_id=NOTIFICATIE_ID,
            soort="afspraak_bevestiging",
            kanaal="email",
            ontvanger_rol=ev.Rol.BESTUURDER,
            oorzaak_event_id="scheduling-000042",
            poging=1,
        ),
        ev.NotificatieMislukt(
            aanvraag_id=AANVRAAG_ID,
            notificatie_id=NOTIFICATIE_ID,
            soort="afspraak_bevestiging",
            kanaal="email",
            ontvanger_rol=ev.Rol.WERKGEVER,
            oorzaak_event_id="scheduling-000042",
            poging=3,
            reden_code="smtp_timeout",
            definitief=True,
        ),
        ev.ToegangGeweigerd(
            aanvraag_id=AANVRAAG_ID,
            dienst=ev.Dienst.ASSESSMENT,
            actie="GET /rapporten/{id}",
            reden="rol_ontbreekt",
            status_code=403,
        ),
        ev.ToegangGeweigerdV2(
            aanvraag_id=AANVRAAG_ID,
            dienst=ev.Dienst.ASSESSMENT,
            actie="GET /rapporten/{rapport_id}",
            reden="zonder_geldig_token",
            status_code=401,
            aantal=99,
            venster_van=MOMENT,
            venster_tot=MOMENT,
        ),
        ev.WebhookAbonnementGefaald(
            abonnement_id=ABONNEMENT_ID,
            organisatie_code="GM0363",
            opeenvolgende_fouten=5,
            falend_sinds=MOMENT,
            reden_code="http_500",
        ),
        ev.WebhookAbonnementHersteld(
            abonnement_id=ABONNEMENT_ID, organisatie_code="GM0363", hersteld_op=MOMENT
        ),
    )
}
