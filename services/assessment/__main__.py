"""``python -m services.assessment``."""

from services.assessment.bootstrap import bootstrap
from shared.runtime import main

main(bootstrap, "assessment")
