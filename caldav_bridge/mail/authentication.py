"""Who sent an emailed reply, and what proves it (iMIP in).

The From header is read as mail servers read it (RFC 5322, by the stdlib's modern header
parser) and must be exactly one plain mailbox: several addresses, groups, comments, encoded
words or another address in the display name, defects of any kind are refused, since a mail
program and a DMARC checker could each read such a header differently.

The proof that the mail really comes from the From domain is DMARC, or a DKIM signature of
that domain (relaxed alignment, kept simple: the same domain or one a subdomain of the other),
taken from the Authentication-Results header (RFC 8601, parsed by ``authres``) that a trusted
relay added, or from a DKIM signature verified here (``dkimpy``). Of the Authentication-Results
headers, only the top-most one with a trusted authserv-id counts: the relay adds its own on top,
and RFC 8601 section 5 has it remove any incoming header claiming its id; we rely on that, and
anything lower down may have come with the message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from email.errors import UndecodableBytesDefect
from email.headerregistry import Address, AddressHeader, BaseHeader
from email.message import EmailMessage
from email.policy import default
from typing import Any

import authres
import dkim
import dkim.dnsplug

from caldav_bridge.config import ImipSettings
from caldav_bridge.domain.errors import InvalidInput, NotAllowed

logger = logging.getLogger("caldav_bridge.mail.replies")

# dkimpy's TXT look-up: (name, timeout=...) -> the record, or None
DnsFunction = Callable[..., bytes | None]


class TemporaryFailure(Exception):
    """The proof could not be checked now (a DNS time-out): the mail server should retry."""


# ---------------------------------------------------------------------------- the sender


def sender(message: EmailMessage, raw: bytes, settings: ImipSettings) -> Address:
    """The one mailbox the message is from (From, and Sender when present, the same)."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    if b"\x00" in head or re.search(rb"\r(?!\n)", head):
        # Python ends a line at a bare CR, a DKIM or DMARC checker may not: two readings.
        raise NotAllowed("the message's header holds a NUL or a bare CR")
    froms = _raw_values(message, "From")
    if not froms:
        raise InvalidInput("the message has no sender address (From)")
    if len(froms) > 1:
        raise NotAllowed(f"the message has {len(froms)} From headers; one is needed")
    address = _mailbox("From", froms[0])
    senders = _raw_values(message, "Sender")
    if len(senders) > 1:
        raise NotAllowed(f"the message has {len(senders)} Sender headers")
    if senders:
        other = _mailbox("Sender", senders[0])
        if not same_mailbox(other.addr_spec, address.addr_spec, settings):
            raise NotAllowed(f"the Sender {other.addr_spec} is not the From {address.addr_spec}")
    return address


def same_mailbox(one: str, other: str, settings: ImipSettings) -> bool:
    """The same address: the domain in any case, the local part as configured."""
    local, _, domain = one.rpartition("@")
    other_local, _, other_domain = other.rpartition("@")
    if not settings.case_sensitive_local_part:
        local, other_local = local.lower(), other_local.lower()
    return (local, domain.lower()) == (other_local, other_domain.lower())


def may_answer_for(sender: str, attendee: str, settings: ImipSettings) -> bool:
    """The sender is the attendee, or one of the aliases configured for them."""
    return same_mailbox(sender, attendee, settings) or any(
        same_mailbox(key, attendee, settings)
        and any(same_mailbox(sender, alias, settings) for alias in aliases)
        for key, aliases in settings.aliases.items()
    )


def _raw_values(message: EmailMessage, name: str) -> list[str]:
    """The header's values as they came (folded, undecoded), top first."""
    return [str(value) for key, value in message.raw_items() if key.lower() == name.lower()]


def _mailbox(name: str, raw: str) -> Address:
    value = re.sub(r"\r?\n(?=[ \t])", "", raw)  # unfolded (RFC 5322 2.2.3)
    if any(c in value for c in "\x00\r\n"):
        raise NotAllowed(f"the {name} header holds a NUL or a stray line break")
    header = default.header_factory(name, value)
    assert isinstance(header, AddressHeader)
    assert isinstance(header, BaseHeader)
    # Raw UTF-8 in a display name is allowed (RFC 6532); every other defect is refused.
    defects = [d for d in header.defects if not isinstance(d, UndecodableBytesDefect)]
    if defects:
        raise NotAllowed(f"the {name} header is not a well-formed mailbox ({defects[0]})")
    groups = header.groups
    if len(groups) != 1 or groups[0].display_name is not None or len(header.addresses) != 1:
        raise NotAllowed(f"the {name} header must name exactly one mailbox, no list or group")
    if AddressHeader.value_parser(value).comments:
        raise NotAllowed(f"the {name} header holds a comment")
    address = header.addresses[0]
    spec = address.addr_spec
    if not address.username or not address.domain or '"' in spec or not spec.isascii():
        raise NotAllowed(f"the {name} address {spec!r} is not a plain user@domain address")
    if spec not in value:  # an encoded word, or spaces, inside the address itself
        raise NotAllowed(f"the {name} address is not written as one plain user@domain")
    name_text = address.display_name
    if "@" in name_text and name_text.strip().strip("<>").lower() != spec.lower():
        raise NotAllowed(f"the {name} display name {name_text!r} holds another address")
    return address


# ---------------------------------------------------------------------------- the proof


def aligned(signer: str, domain: str) -> bool:
    """Relaxed alignment, kept simple: the same domain, or one a subdomain of the other (never
    a bare top-level domain)."""
    signer, domain = signer.lower().rstrip("."), domain.lower().rstrip(".")
    if "." not in signer or "." not in domain:
        return False
    return signer == domain or signer.endswith(f".{domain}") or domain.endswith(f".{signer}")


def authenticate(
    message: EmailMessage,
    raw: bytes,
    domain: str,
    settings: ImipSettings,
    dnsfunc: DnsFunction | None = None,
) -> str:
    """What proves the message comes from ``domain``; NotAllowed with the reason if nothing."""
    if settings.policy == "none":
        return "not checked ([imip] policy = none)"
    settings.require_proof_source()
    seen: list[str] = []
    if settings.trusted_authserv_ids:
        relay = _relay_results(message, settings.trusted_authserv_ids)
        if relay is None:
            trusted = ", ".join(sorted(settings.trusted_authserv_ids))
            seen.append(f"no Authentication-Results header from {trusted}")
        else:
            authserv_id, results = relay
            proof = _proof(results, domain, settings.policy)
            if proof:
                return f"{proof} by {authserv_id}"
            summary = ", ".join(f"{r.method}={r.result}" for r in results) or "nothing"
            seen.append(f"{authserv_id} found {summary}")
    if settings.verify_dkim:
        proof, found = _verified_dkim(raw, domain, dnsfunc)
        if proof:
            return proof
        seen.append(found)
    raise NotAllowed(f"the reply is not authenticated for {domain}: {'; '.join(seen)}")


def _relay_results(message: EmailMessage, trusted: frozenset[str]) -> tuple[str, Any] | None:
    """The results of the top-most Authentication-Results header with a trusted authserv-id."""
    for value in message.get_all("Authentication-Results", []):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(str(value))
        except authres.AuthResError as exc:
            # What lies below an unreadable header may have come with the message: stop.
            logger.warning("an Authentication-Results header could not be read: %s", exc)
            return None
        if str(header.authserv_id).lower() in trusted:
            return str(header.authserv_id), list(header.results)
    return None


def _property(result: Any, kind: str, name: str) -> str:
    for prop in getattr(result, "properties", []):
        if (prop.type, prop.name) == (kind, name):
            return str(prop.value)
    return ""


def _proof(results: Sequence[Any], domain: str, policy: str) -> str:
    """The passing result the policy asks for ('' if none)."""
    for result in results:
        method, verdict = str(result.method).lower(), str(result.result).lower()
        if verdict != "pass":
            continue
        header_from = _property(result, "header", "from").lower()
        if method == "dmarc" and policy == "dmarc" and header_from == domain.lower():
            return f"dmarc=pass for {domain}"
        signer = _property(result, "header", "d") or _property(result, "header", "i")
        signer = signer.rpartition("@")[2]
        if method == "dkim" and signer and aligned(signer, domain):
            return f"dkim=pass (d={signer})"
    return ""


def _verified_dkim(raw: bytes, domain: str, dnsfunc: DnsFunction | None) -> tuple[str, str]:
    """(proof, '') for a valid DKIM signature aligned with ``domain``, else ('', what was seen).

    A signature must cover From and the whole body (no l= tag: what follows could be anything).
    """
    try:
        verifier = dkim.DKIM(raw)
    except dkim.DKIMException as exc:
        return "", f"the message cannot be checked for DKIM ({exc})"
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    lookup: DnsFunction = dnsfunc or dkim.dnsplug.get_txt
    timed_out: list[bytes] = []

    def looking_up(name: bytes, timeout: float = 5) -> bytes | None:
        # dkimpy takes a time-out for an invalid signature: remember it, to retry instead.
        try:
            return lookup(name, timeout=timeout)
        except dkim.DnsTimeoutError:
            timed_out.append(name)
            raise

    failures: list[str] = []
    for index in range(count):
        try:
            valid = verifier.verify(index, dnsfunc=looking_up)
        except dkim.DKIMException as exc:
            failures.append(str(exc))
            continue
        if timed_out:
            raise TemporaryFailure(f"the DKIM key {timed_out[0].decode()} could not be looked up")
        signer = bytes(verifier.domain or b"").decode("ascii", "replace")
        covers_all = b"from" in verifier.include_headers and b"l" not in verifier.signature_fields
        if valid and covers_all and aligned(signer, domain):
            return f"dkim=pass (d={signer}, verified here)", ""
        failures.append(f"d={signer} {'valid' if valid else 'invalid'}")
    if not count:
        return "", "no DKIM signature"
    return "", f"no valid DKIM signature aligned with {domain} ({'; '.join(failures)})"
