"""``python -m services.intake``."""

from services.intake.bootstrap import bootstrap
from shared.runtime import main

main(bootstrap, "intake")
