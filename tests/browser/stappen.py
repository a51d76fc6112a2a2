"""Page steps that more than one browser test takes: the secretariat planning a conversation
with the picker, the adviseur's appointments and report form, a page's one-time note."""

from __future__ import annotations

from playwright.sync_api import Locator, Page, expect

from tests.support import wait_until


def melding(page: Page, tekst: str) -> None:
    """The page's one-time note says ``tekst``."""
    expect(page.locator("#melding")).to_contain_text(tekst)


def plan(page: Page, soort: str, dag_index: int, tijd: str, adviseur: str | None = None) -> None:
    """Plan a conversation with the picker (the n-th working day offered, a start time); the
    adviseur's id typed where the portal offers no list of them (OIDC mode)."""
    form = page.locator(f"form:has(input[name=soort][value={soort}])")
    datum = form.locator("select[name=datum]")
    datum.select_option(index=dag_index)
    form.locator("select[name=tijd]").select_option(tijd)
    if adviseur is not None:
        form.get_by_label("Kenmerk van de adviseur").fill(adviseur)
    if soort == "gesprek_werkgever":
        form.get_by_label("Link naar de videoverbinding").fill("https://video.example.org/k/1")
    form.get_by_role("button").click()


def artikel(page: Page, begin: str) -> Locator:
    """The appointment whose heading starts with ``begin``."""
    return page.locator("article").filter(has=page.locator(f"h3:text-matches('^{begin}')"))


def maatregel(page: Page, rij: int, domein: str, tekst: str, *keuzes: str) -> None:
    """Fill in measure ``rij`` (0-based): domain, description, priority, who, costs."""
    veld = page.locator(f"fieldset:has(> legend:text-is('Maatregel {rij + 1}'))")
    veld.get_by_label("Domein").select_option(label=domein)
    veld.get_by_label("Omschrijving").fill(tekst)
    for label, keuze in zip(("Prioriteit", "Wie voert hem uit", "Kosten"), keuzes, strict=False):
        veld.get_by_label(label).select_option(label=keuze)


def sla_op(page: Page) -> None:
    """Save the draft; while assessment has not yet heard of both conversations and the
    woningscan it refuses (409, said on the page, the form kept), so save again until then."""

    def opgeslagen() -> bool | None:
        with page.expect_navigation():
            page.get_by_role("button", name="Opslaan als concept").click()
        expect(page.locator("#melding, #foutoverzicht")).to_be_visible()
        if page.locator("#melding").count():
            return True
        expect(page.locator("#foutoverzicht")).to_contain_text("Nog niet gedaan")
        return None

    wait_until(opgeslagen, timeout=60, what="assessment to know the conversations")
