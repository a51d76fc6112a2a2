"""``python -m services.intake``."""

from services.intake.bootstrap import bootstrap
from shared.platform.runtime import main

main(bootstrap, "intake")
