"""Every gateway maps an event's skeleton to the same public events as the whole event.

The relays decode stored events without their personal values (no data key read, nothing
decrypted: ``PydanticMapper.to_domain_events(skeleton=True)``), because a public event carries
nothing personal. That holds only while no gateway reads a personal field: here every event of
dossiers taken through every branch of the process, in every service, is decoded both ways and
mapped, and the public events must be equal.
"""

from __future__ import annotations

import pytest

from shared.platform.eventstore import PydanticMapper
from tests.integration.inprocess import InProcessSystem

pytestmark = pytest.mark.integration

BRANCHES = ("ingetrokken", "afgekeurd", "geweigerd", "vrijgegeven", "abonnement")


@pytest.fixture(scope="module")
def system(inprocess_system: InProcessSystem) -> InProcessSystem:
    for stand in BRANCHES:
        inprocess_system.dossier(stand)
    return inprocess_system


@pytest.mark.parametrize(
    "service", ["intake", "scheduling", "assessment", "approval", "notifications"]
)
def test_the_skeleton_of_every_event_announces_the_same(
    system: InProcessSystem, service: str
) -> None:
    components = system.components[service]
    mapper = components.app.mapper
    assert isinstance(mapper, PydanticMapper)
    stored = list(components.app.recorder.select_notifications(1, 100_000))
    assert stored, f"{service} recorded events"
    whole = mapper.to_domain_events(stored)
    skeletons = mapper.to_domain_events(stored, skeleton=True)
    without_personal = 0
    for full, skeleton in zip(whole, skeletons, strict=True):
        announced = [e.model_dump(mode="json") for e in components.gateway(full)]
        from_skeleton = [e.model_dump(mode="json") for e in components.gateway(skeleton)]
        assert from_skeleton == announced, type(full).__name__
        without_personal += skeleton.vergeten and not full.vergeten
    if service in ("intake", "assessment"):
        # Services that hold personal data: the comparison covered events that carry some.
        assert without_personal > 0, f"{service}: no event with personal data was compared"
