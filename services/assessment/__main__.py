"""``python -m services.assessment``."""

from services.assessment.bootstrap import bootstrap
from shared.platform.runtime import main

main(bootstrap, "assessment")
