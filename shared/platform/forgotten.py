"""The forget record: every ``weerbaar forget``, kept on disk beside the key-encryption keys.

Forgetting destroys a dossier's data keys in PostgreSQL (``shared.platform.keys``). A backup of the
database made before the forget still holds those keys (wrapped by a KEK the deployment keeps), so
restoring it would make the dossier readable again. This record is what survives a restore: it is
not in the database, it lives in the KEK directory (``<kek_dir>/forgotten.jsonl``) and goes into
every backup of the secrets, and it is re-applied after every restore (``weerbaar restore``) and
at every start of intake: each dossier in it whose keys are live again is forgotten again, and
intake records ``PersoonsgegevensVergeten`` once more where the restored history lacks it.

One JSON object per line: the dossier, the reason code, the pseudonym of who decided and when.
Nothing personal: no name, no address, no ``sub``. Appended (and fsynced) *before* the keys are
destroyed, so a forget interrupted half-way is finished at the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from uuid import UUID

FILE_NAME = "forgotten.jsonl"


class ForgetRecordError(Exception):
    """The record cannot be read: an operator must look (a restore must not go on without it)."""


@dataclass(frozen=True)
class Forgotten:
    """One forget: which dossier, why, who decided (a pseudonym) and when."""

    aanvraag_id: UUID
    reden: str
    door: str
    op: datetime

    def to_json(self) -> str:
        """One line of the record."""
        return json.dumps(
            {
                "aanvraag_id": str(self.aanvraag_id),
                "reden": self.reden,
                "door": self.door,
                "op": self.op.isoformat(),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, line: str) -> Forgotten:
        """A line of the record; ValueError/KeyError/TypeError when it is not one."""
        data = json.loads(line)
        op = datetime.fromisoformat(data["op"])
        if op.tzinfo is None:
            raise ValueError("time without a zone")
        return cls(UUID(data["aanvraag_id"]), str(data["reden"]), str(data["door"]), op)


class ForgetRecord:
    """The record in one directory (the KEK directory)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME

    def entries(self) -> list[Forgotten]:
        """Every forget, first one first; one entry per dossier (the first forget counts)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        seen: dict[UUID, Forgotten] = {}
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = Forgotten.from_json(line)
            except (ValueError, KeyError, TypeError):
                if number == len(lines) and not text.endswith("\n"):
                    continue  # a last line torn by a crash while appending: never completed
                raise ForgetRecordError(f"{self.path}: line {number} is not a forget") from None
            seen.setdefault(entry.aanvraag_id, entry)
        return list(seen.values())

    def dossiers(self) -> set[UUID]:
        """The dossiers in the record."""
        return {entry.aanvraag_id for entry in self.entries()}

    def add(self, entry: Forgotten) -> bool:
        """Append a forget (durably) unless its dossier is in the record; True when appended."""
        if entry.aanvraag_id in self.dossiers():
            return False
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            # A last line torn by a crash while appending was never completed (its forget never
            # began): cut it off, or it would sit in the middle of the record.
            size = os.fstat(fd).st_size
            if size:
                text = self.path.read_bytes()
                if not text.endswith(b"\n"):
                    os.ftruncate(fd, text.rfind(b"\n") + 1)
            os.write(fd, (entry.to_json() + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return True

    def merge(self, others: Iterable[Forgotten]) -> list[Forgotten]:
        """Add the forgets of another record (a backup's) that this one lacks; those added.

        The file is replaced atomically: a crash leaves either the old or the merged record.
        """
        mine = self.entries()
        known = {entry.aanvraag_id for entry in mine}
        added = [entry for entry in others if entry.aanvraag_id not in known]
        if not added:
            return []
        merged = sorted([*mine, *added], key=lambda entry: entry.op)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=".forgotten-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, "".join(entry.to_json() + "\n" for entry in merged).encode("utf-8"))
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp_name, self.path)
        finally:
            if fd != -1:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
        return added
