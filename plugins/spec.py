"""Hook specifications: the versioned public API between the daemon and its plugins.

A plugin is a module (or object) found through the ``scaivault_pki.plugins`` entry-point group whose
functions carry the :data:`hookimpl` marker and are named after a hook below. Misspelled hook names are
caught at start (``PluginManager.check_pending``): the daemon refuses to start rather than silently ignoring
a hook. Every hook here is documented in ``docs/plugins.md`` (a test checks that).

Registration hooks return *classes* whose behaviour is defined by the abstract base classes in
:mod:`scaivault_pki.plugins.api`. Event hooks are notifications: they run after the fact, their return value
is ignored, and an exception in one plugin is logged with the plugin's name and never fails the operation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from scaivault_pki.plugins.api import AcmeCaBackend, CertificateEvent, DnsProvider

PROJECT_NAME = "scaivault_pki"

#: Marks a hook specification (daemon side only).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a hook implementation; plugins decorate their hook functions with it.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def scaivault_pki_dns_provider_types() -> list[type[DnsProvider]]:
    """Register DNS provider types (for ``dns-01`` challenges and ``/v1/pki/dns-providers``).

    :return: the :class:`~scaivault_pki.plugins.api.DnsProvider` subclasses this plugin provides (an empty
        list for none). Each class's ``type_name`` must be unique across installed plugins; a duplicate stops
        the daemon at start with an error naming both plugins.

    .. versionadded:: 0.1
    """


@hookspec
def scaivault_pki_acme_ca_backends() -> list[type[AcmeCaBackend]]:
    """Register ACME CA backend types (the CAs the daemon can order certificates from).

    :return: the :class:`~scaivault_pki.plugins.api.AcmeCaBackend` subclasses this plugin provides (an empty
        list for none); ``type_name`` unique across installed plugins, as for DNS providers.

    .. versionadded:: 0.1
    """


@hookspec
def scaivault_pki_certificate_issued(event: CertificateEvent) -> None:
    """Called after a certificate was issued (``issue`` or ``sign``) and stored.

    :param event: the new certificate (ids, names, validity, PEM; never a private key).
    :return: nothing; the return value is ignored. An exception is logged with the plugin's name and does
        not affect the issuance, which has already been committed.

    .. versionadded:: 0.1
    """


@hookspec
def scaivault_pki_certificate_renewed(event: CertificateEvent, previous_certificate_id: str) -> None:
    """Called after a certificate was renewed; ``event`` is the new certificate.

    Only this hook fires for a renewal (not also :func:`scaivault_pki_certificate_issued`).

    :param event: the new certificate.
    :param previous_certificate_id: id of the certificate that was renewed (it stays valid until it expires
        or is revoked).
    :return: nothing; ignored. Exceptions are logged and never fail the renewal.

    .. versionadded:: 0.1
    """


@hookspec
def scaivault_pki_certificate_revoked(event: CertificateEvent, reason: str) -> None:
    """Called after a certificate was revoked and the revocation stored.

    :param event: the revoked certificate.
    :param reason: the RFC 5280 CRLReason name (``"key_compromise"``, ``"superseded"``, ``"unspecified"``...).
    :return: nothing; ignored. Exceptions are logged and never fail the revocation.

    .. versionadded:: 0.1
    """


@hookspec
def scaivault_pki_certificate_expiring(event: CertificateEvent, expires_in_seconds: int) -> None:
    """Called by the expiry job for each valid certificate that nears expiry (e.g. to send a reminder).

    The job may call it again for the same certificate on later runs; a plugin that notifies should
    de-duplicate if it needs to (``event.certificate_id`` is stable).

    :param event: the certificate about to expire.
    :param expires_in_seconds: seconds left until ``event.not_after`` (may be small, never negative).
    :return: nothing; ignored. Exceptions are logged and never stop the job.

    .. versionadded:: 0.1
    """
