"""Source addresses: what kind of source a URI is, how to print it without its credentials, how to
hand those credentials to FFmpeg, and how a stream's name becomes a safe file name.

The userinfo of `scheme://userinfo@host/...` is everything between `://` and
the LAST `@` of the address: a password may hold `@ : / # ?`, so the first `@`
or the first `/` would cut it in two and print its tail. The price of that
rule is that an `@` after the host (in a path or query) must be written `%40`.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

from pipeline.errors import TridentError

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
# FFmpeg percent-decodes the userinfo of these (its HTTP/RTSP authentication does); the others get it verbatim
_DECODING_SCHEMES = ("rtsp", "rtsps", "http", "https")
MASK = "***"

_SCHEME = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# in free text an address ends at whitespace; greedy \S* backs off to the token's last '@'
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>\S*)@")
# credentials passed as parameters: `?password=...` in a URL, `user-pw=...` of GStreamer's rtspsrc
_SECRET_PARAM = re.compile(r"(?i)\b(?P<key>password|passwd|pwd|user-pw|user_pw)=(?P<value>\"[^\"]*\"|'[^']*'|[^&\s]+)")

# a stream id is used as a file name stem: <id>.mp4, <id>.jsonl, <id>_frames/ inside --out
MAX_ID_BYTES = 100  # UTF-8 bytes; leaves room under the usual 255 for "-N" and ".mot.txt"
_UNSAFE_IN_NAME = re.compile(r"[^\w.-]+")  # \w is Unicode-aware: letters and digits of any script stay


def _mask(userinfo: str) -> str:
    """`user:secret` -> `user:***`; a userinfo without ':' may be a token, so all of it goes."""
    user, sep, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if sep else MASK


def split_userinfo(uri: str) -> tuple[str, str | None, str]:
    """(`scheme://`, userinfo or None, the rest) of a URI; ("", None, uri) when it has no scheme."""
    m = _SCHEME.match(uri)
    if not m:
        return "", None, uri
    head, tail = uri[: m.end()], uri[m.end() :]
    at = tail.rfind("@")
    return (head, None, tail) if at < 0 else (head, tail[:at], tail[at + 1 :])


def redact(text: str, *uris: str) -> str:
    """`text` with the credentials of every address in it replaced by ***.

    The single redaction of Trident: used on URIs and on any error text that may
    quote one (FFmpeg puts the URL in its messages). Pass the source's own URIs
    as `uris` and their userinfo is also found where an address was cut up
    (a password with a space or a quote in it), raw or percent-encoded.
    """
    for uri in uris:
        for form in _userinfo_forms(uri):
            text = text.replace(form + "@", _mask(form) + "@")
    text = _USERINFO_IN_TEXT.sub(lambda m: f"{m.group('scheme')}{_mask(m.group('userinfo'))}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}={MASK}", text)


def _userinfo_forms(uri: str) -> set[str]:
    _, userinfo, _ = split_userinfo(uri)
    if not userinfo:
        return set()
    _, encoded, _ = split_userinfo(ffmpeg_url(uri))
    return {userinfo, encoded or userinfo}


def ffmpeg_url(uri: str) -> str:
    """The URI as FFmpeg must receive it: user and password percent-encoded, so `/ # ? @ :` or spaces
    in a password cannot end the address early. Already-encoded credentials stay as they are
    (`%XX` is read as an escape: write a literal `%` as `%25`)."""
    head, userinfo, rest = split_userinfo(uri)
    if userinfo is None or head[:-3].lower() not in _DECODING_SCHEMES:
        return uri
    user, sep, password = userinfo.partition(":")
    encode = lambda part: quote(unquote(part), safe="")  # noqa: E731
    return f"{head}{encode(user)}{sep}{encode(password)}@{rest}"


def classify(uri: str) -> str:
    """'rtsp' (any network stream), 'webcam' (a number or /dev/video*), 'gstreamer' (a pipeline string) or 'file'.

    An address with a scheme Trident cannot read (`rstp://`) is refused here,
    before it could be taken for a file name and printed unredacted."""
    if uri.isdigit() or uri.startswith("/dev/video"):
        return "webcam"
    if " ! " in uri:  # gst-launch syntax
        return "gstreamer"
    m = _SCHEME.match(uri)
    if m is None or m.group("scheme").lower() == "file":
        return "file"
    if m.group("scheme").lower() in LIVE_SCHEMES:
        return "rtsp"
    schemes = ", ".join(f"{s}://" for s in LIVE_SCHEMES)
    raise TridentError(f"source {redact(uri)!r} has an unknown scheme '{m.group('scheme')}://'; use one of {schemes}, or a file path")


def safe_file_stem(name: str) -> str:
    """`name` as a file name stem that stays inside its folder: letters and digits of any script,
    '.', '-' and '_' are kept, every other run of characters (`/`, spaces, `:`...) becomes '_',
    leading and trailing '.', '-', '_' go (no `..`, no hidden files), at most MAX_ID_BYTES.
    May return "" (nothing usable was left)."""
    stem = _UNSAFE_IN_NAME.sub("_", unicodedata.normalize("NFC", name)).strip("._-")
    if len(stem.encode()) > MAX_ID_BYTES:
        stem = stem.encode()[:MAX_ID_BYTES].decode(errors="ignore").rstrip("._-")
    return stem


def stream_name(uri: str) -> str:
    """A short, password-free id for logs and output file names (already a safe file stem)."""
    if uri.isdigit() or uri.startswith("/dev/video"):
        return "webcam" + re.sub(r"\D", "", uri)
    if " ! " in uri:
        return "gstreamer"
    head, _, rest = split_userinfo(uri)  # never the userinfo, whatever it holds
    if not head or head.lower() == "file://":
        name = uri.rstrip("/").rsplit("/", 1)[-1]
        return safe_file_stem(name.rsplit(".", 1)[0] if "." in name[1:] else name) or "file"
    authority, path = re.match(r"([^/?#]*)([^?#]*)", rest).groups()
    if authority.startswith("["):  # [IPv6]:port
        host, _, port = authority[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = authority.partition(":")
    host = re.sub(r"[^a-z0-9-]+", "-", host.lower()).strip("-") or "stream"
    port = f"-{port}" if port.isdigit() else ""
    path = re.sub(r"[^A-Za-z0-9_-]+", "_", path).strip("_")
    return safe_file_stem(f"{host}{port}" + (f"_{path}" if path else "")) or "stream"
