"""Where our server may connect on a portal admin's behalf (SSRF policy for WAHA URLs).

A portal admin types the URL of their WAHA server, and from then on our
server makes requests there. Without a policy that lets any admin reach our
own loopback ports, the private network and cloud metadata (169.254.169.254).
So a URL stored per portal must:

* be ``http``/``https`` with a host and optional port, and at most a plain
  path (no user info, query, fragment, backslash or blanks), and
* lead to public addresses only: every address its host resolves to is
  checked, when the URL is saved and again at every connection, and the
  connection goes to an address that was checked (:class:`GuardedAdapter`),
  so a DNS answer that changes after the check (rebinding) gains nothing.

The deployment may allow host names, addresses and networks of its own
(``OLCHAT_GATEWAY_ALLOWED_HOSTS``), e.g. a WAHA running beside the app. The
deployment's own ``OLCHAT_WAHA_URL`` is the operator's choice and is not
checked here.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from .base import GatewayUnavailable

MAX_URL_LENGTH = 500

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not reachable on the public internet, or not meant to be dialled at all. The
# ``ipaddress`` properties cover most of these; the list says it outright, so
# the policy does not change with the Python version.
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/128", "::1/128", "::/96", "100::/64", "2001::/23", "2001:db8::/32", "fc00::/7", "fe80::/10",
    "fec0::/10", "ff00::/8", "64:ff9b:1::/48",
))
# The well-known NAT64 prefix: a translator forwards to the IPv4 address in its last 32 bits.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# A last label that is a number makes the host an IPv4 address to URL parsers
# and resolvers ("2130706433", "0177.0.0.1", "0x7f.1"): only the canonical
# dotted quad is accepted as one.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# Characters a WAHA base path may have; no '%', so nothing decodes into '/', '?' or '#'.
_PATH = re.compile(r"^(?:/[A-Za-z0-9._~-]*)*$")
_FORBIDDEN_IN_URL = re.compile(r"[\s\\@?#%\x00-\x1f\x7f]")


class OutboundAddressRefused(GatewayUnavailable):
    """The URL or an address its host resolves to is not one our server may connect to."""

    reason = "unavailable"  # to everyone but the admin saving the URL, it is just unreachable

    def __init__(self, message: str, *, kind: str = "address"):
        super().__init__(message)
        self.kind = kind  # "url": malformed URL; "address": not a public or allowed address


@dataclass(frozen=True)
class Target:
    """The parts of a checked WAHA URL."""

    scheme: str
    host: str  # lower case, no brackets, no trailing dot
    port: int


def parse_base_url(url: str) -> Target:
    """Return the target of a WAHA base URL, or raise OutboundAddressRefused(kind="url")."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise OutboundAddressRefused("URL is empty or too long", kind="url")
    if _FORBIDDEN_IN_URL.search(url) or not url.isascii():
        raise OutboundAddressRefused("URL has user info, a query, a fragment or odd characters", kind="url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise OutboundAddressRefused("URL must be http(s)://host[:port][/path]", kind="url")
    if not _PATH.match(parts.path) or "/../" in parts.path + "/" or "/./" in parts.path + "/":
        raise OutboundAddressRefused("URL path has odd characters", kind="url")
    try:
        port = parts.port
    except ValueError as exc:
        raise OutboundAddressRefused("URL port is not a number in 1-65535", kind="url") from exc
    if port == 0:
        raise OutboundAddressRefused("URL port is not a number in 1-65535", kind="url")
    host = normalise_host(parts.hostname or "")
    if not _valid_host(host):
        raise OutboundAddressRefused("URL host is not a host name or an IP address", kind="url")
    return Target(parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


def normalise_host(host: str) -> str:
    """Lower-case a host, drop IPv6 brackets and a trailing dot."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host[:-1] if host.endswith(".") else host


def _valid_host(host: str) -> bool:
    if _ip_literal(host) is not None:
        return True
    if not host or len(host) > 253 or ":" in host:
        return False
    labels = host.split(".")
    # A numeric last label in anything but a canonical IPv4 address is an
    # obfuscated address (decimal, octal, hex, short forms): refuse it.
    if _NUMERIC_LABEL.match(labels[-1]):
        return False
    return all(_HOST_LABEL.match(label) for label in labels)


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_public_address(ip: IPAddress) -> bool:
    """Say whether ``ip`` is a public unicast address of the internet."""
    if ip.version == 6:
        ip = ipaddress.IPv6Address(ip.packed)  # drop a scope id (fe80::1%eth0)
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return is_public_address(mapped)
        if ip.sixtofour is not None and not is_public_address(ip.sixtofour):
            return False
        if ip in _NAT64:
            return is_public_address(ipaddress.IPv4Address(ip.packed[-4:]))
    if any(ip in net for net in _NOT_PUBLIC if net.version == ip.version):
        return False
    return bool(ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                      or ip.is_reserved or ip.is_unspecified))


class EgressPolicy:
    """Decide which addresses our server may connect to for a portal's WAHA URL."""

    def __init__(self, allowed_hosts: frozenset[str] = frozenset(), allowed_networks: tuple[IPNetwork, ...] = ()):
        self.allowed_hosts = frozenset(allowed_hosts)
        self.allowed_networks = tuple(allowed_networks)

    @classmethod
    def from_setting(cls, setting: str) -> "EgressPolicy":
        """Build the policy from ``OLCHAT_GATEWAY_ALLOWED_HOSTS`` (comma-separated names, IPs, CIDRs)."""
        hosts, networks = set(), []
        for entry in (setting or "").replace(";", ",").split(","):
            entry = entry.strip()
            if not entry:
                continue
            bare = normalise_host(entry)
            try:
                networks.append(ipaddress.ip_network(bare, strict=False))
                continue
            except ValueError:
                pass
            if not _valid_host(bare):
                raise ValueError(f"OLCHAT_GATEWAY_ALLOWED_HOSTS: {entry!r} is not a host name, IP or CIDR network")
            hosts.add(bare)
        return cls(frozenset(hosts), tuple(networks))

    def __repr__(self) -> str:
        return f"EgressPolicy(hosts={sorted(self.allowed_hosts)!r}, networks={[str(n) for n in self.allowed_networks]!r})"

    def address_allowed(self, ip: IPAddress) -> bool:
        """Say whether our server may connect to ``ip``."""
        if ip.version == 6:
            ip = ipaddress.IPv6Address(ip.packed)
            if ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 to the allow-list too
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return True
        return is_public_address(ip)

    def resolve(self, host: str, port: int) -> list[tuple[int, tuple]]:
        """Resolve ``host`` and return (family, sockaddr) of each address, all of them checked.

        Raises OutboundAddressRefused when any address is neither public nor
        allowed: a name that answers with one public and one private address
        is refused as a whole, whichever the connection would have picked.
        socket.gaierror passes through (the name does not resolve).
        """
        host = normalise_host(host)
        literal = _ip_literal(host)
        if literal is not None:
            family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            found = [(family, (host, port) if family == socket.AF_INET else (host, port, 0, 0))]
        else:
            if not _valid_host(host):
                raise OutboundAddressRefused(f"{host!r} is not a host name")
            found = [(family, sockaddr) for family, _type, _proto, _name, sockaddr
                     in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
                     if family in (socket.AF_INET, socket.AF_INET6)]
            if not found:
                raise socket.gaierror(socket.EAI_NONAME, "no IPv4 or IPv6 address")
        if host in self.allowed_hosts:
            return found  # the deployment vouches for this name and whatever it resolves to
        for _family, sockaddr in found:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if not self.address_allowed(ip):
                raise OutboundAddressRefused(f"{host!r} resolves to {ip}, which is not a public address")
        return found

    def check_url(self, url: str) -> Target:
        """Check a WAHA base URL as saved: its shape, then every address of its host.

        Raises OutboundAddressRefused, or socket.gaierror when the host does not resolve.
        """
        target = parse_base_url(url)
        self.resolve(target.host, target.port)
        return target


def policy_from_config(config) -> EgressPolicy:
    """Return the policy of an app's configuration."""
    return EgressPolicy.from_setting(config.get("OLCHAT_GATEWAY_ALLOWED_HOSTS", ""))


# ---------------------------------------------------------------- transport


class _GuardedConnectionMixin:
    """Connect only to a checked address of the host; Host header and TLS name stay the host's."""

    policy: EgressPolicy

    def _new_conn(self) -> socket.socket:
        try:
            addresses = self.policy.resolve(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        last: OSError | None = None
        for family, sockaddr in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if self.timeout is not _DEFAULT_TIMEOUT:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
                return sock
            except socket.timeout as exc:
                sock.close()
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc
            except OSError as exc:
                sock.close()
                last = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {last}")


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    def __init__(self, *args, policy: EgressPolicy, **kwargs):
        self.policy = policy
        super().__init__(*args, **kwargs)


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    def __init__(self, *args, policy: EgressPolicy, **kwargs):
        self.policy = policy
        super().__init__(*args, **kwargs)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every new connection goes through the policy."""

    def __init__(self, policy: EgressPolicy, **kwargs):
        self.policy = policy
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        # The pools hand ``policy`` on to each connection they open (pool keyword → connection keyword).
        self.poolmanager.pool_classes_by_scheme = {
            "http": partial(_GuardedHTTPPool, policy=self.policy),
            "https": partial(_GuardedHTTPSPool, policy=self.policy),
        }

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # Through a proxy the proxy would resolve the host, unchecked.
        raise OutboundAddressRefused("a proxy would bypass the outbound address policy")


def guarded_session(policy: EgressPolicy) -> requests.Session:
    """Return a requests session that connects only where ``policy`` allows, with no retries."""
    session = requests.Session()
    # No proxies, .netrc credentials or CA bundles from the environment for a
    # host a portal admin chose.
    session.trust_env = False
    adapter = GuardedAdapter(policy, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
