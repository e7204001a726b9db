"""The CRL jobs: publish CRLs of CAs with new revocations within seconds, and refresh CRLs well before nextUpdate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..durations import parse_duration
from ..pki import crl_publication
from ..schema.models import CertificateAuthority
from ..times import utc_now
from .runner import Job

log = logging.getLogger("scaivault_pki.jobs")

#: How often dirty CAs are looked for: the debounce of "a revocation shows on the CRL within seconds".
DIRTY_INTERVAL_SECONDS = 1.0
#: How often CRL expiry is checked (more often for lifetimes under 4 minutes); CRLs are refreshed when less than
#: half their lifetime is left.
REFRESH_INTERVAL_SECONDS = 60.0
#: A CA whose CRL cannot be published (its key is gone, the HSM is down) is retried with a growing pause, up to this.
MAX_RETRY_SECONDS = 60.0


@dataclass
class CrlJobs:
    """The two CRL jobs, with a per-CA retry pause so one broken CA neither spins nor blocks the others."""

    hsm: Any
    config: Config
    _retry_at: dict[str, tuple[int, float]] = field(default_factory=dict)  # ca id -> (failures, monotonic time)

    def jobs(self) -> list[Job]:
        """The jobs to hand to a :class:`~scaivault_pki.jobs.runner.JobRunner`."""
        # Check often enough that even the shortest configured lifetime is refreshed with time to spare.
        shortest = min(parse_duration(self.config.crl_lifetime), parse_duration(self.config.root_crl_lifetime))
        return [
            # A short lease: should its worker die, another one publishes within seconds, not half a minute.
            Job("crl.publish-dirty", DIRTY_INTERVAL_SECONDS, self.publish_dirty, lease_seconds=10),
            Job("crl.refresh", min(REFRESH_INTERVAL_SECONDS, shortest.total_seconds() / 4), self.refresh),
        ]

    def publish_dirty(self) -> None:
        """Publish new CRLs for every CA a revocation marked dirty."""
        for ca in crl_publication.dirty_cas():
            self._publish(ca)

    def refresh(self) -> None:
        """Publish CRLs for CAs without one or past half their lifetime, then prune old ones."""
        now = utc_now()
        for ca in crl_publication.stale_cas(self.config, now):
            self._publish(ca)
        crl_publication.prune_crls(now)

    def _publish(self, ca: CertificateAuthority) -> None:
        failures, retry_at = self._retry_at.get(ca.id, (0, 0.0))
        if time.monotonic() < retry_at:
            return
        try:
            crl_publication.publish_crls(self.hsm, self.config, ca)
        except Exception as exc:  # noqa: BLE001 - one CA's failure must not stop the others
            failures += 1
            self._retry_at[ca.id] = (failures, time.monotonic() + min(MAX_RETRY_SECONDS, 2.0**failures))
            if failures == 1 or failures % 10 == 0:
                log.warning("crl publication failed", extra={"ca_id": ca.id, "error": f"{type(exc).__name__}: {exc}",
                                                             "failures": failures})
            return
        self._retry_at.pop(ca.id, None)
