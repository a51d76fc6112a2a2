"""``weerbaar replay``: rebuild intake's dossier projection from scratch and switch over to it
(``services.intake.projections.rebuild``); ``python -m services.intake.ops.replay``, run by
``tools/cli.py``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from services.intake.projections.rebuild import LIVE, TARGET, Rebuild, content_hash
from shared.platform import rebuild
from shared.platform.settings import load_settings


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """``weerbaar replay``: 0 done (switched, or rebuilt with --no-switch); 3 lagging; 4 busy;
    130 interrupted."""
    parser = rebuild.parser(
        "weerbaar replay",
        "Rebuild intake's dossier projection from scratch and switch over to it.",
        TARGET,
        "events",
    )
    parser.add_argument("--from", dest="source", choices=("store", "stream"), default="store")
    args = parser.parse_args(argv)
    settings = load_settings()
    return rebuild.command(
        parser,
        args,
        LIVE,
        # What a rebuild reproduces: a rebuild from the logs orders rows by log position, the
        # live projection by stream sequence, so the sequence is left out; everything else,
        # envelopes and folded views included, must match.
        live_hash=lambda: content_hash(settings.database_url, with_sequence=False),
        build=lambda: Rebuild(settings, source=args.source, target=args.target or TARGET),
        out=out,
    )


if __name__ == "__main__":
    raise SystemExit(main())
