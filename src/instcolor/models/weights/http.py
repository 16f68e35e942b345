"""HTTP downloads for weights: resumable, checksummed, with Google Drive's confirm pages."""

from __future__ import annotations

import hashlib
import http.client
import http.cookiejar
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from instcolor.models.weights.registry import RemoteFile


def _version() -> str:
    # not ``from instcolor import __version__``: the package facade reaches every layer (an import cycle)
    import importlib.metadata

    try:
        return importlib.metadata.version("instcolor")
    except importlib.metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"instcolor/{_version()} (Python urllib)"


CHUNK_BYTES = 1 << 20


#: At most this many confirm pages are followed before giving up on a Google Drive link.
MAX_CONFIRM_PAGES = 3


#: The largest HTML page read when looking for a confirm form.
MAX_PAGE_BYTES = 1 << 20


_STDERR = Console(stderr=True, soft_wrap=True)


def format_size(size: int | None) -> str:
    """``136.8 MB``, or ``size unknown`` for None."""
    if size is None:
        return "size unknown until the server answers"
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


class DownloadError(RuntimeError):
    """A download failed: unreachable, refused, truncated, or not matching its checksum."""


@dataclass(frozen=True)
class DownloadedFile:
    """A verified download: its path, the URL it finally came from, its sha256 and size in bytes."""

    path: Path
    url: str
    sha256: str
    size: int


class Unreachable(DownloadError):
    """The server's name cannot be resolved: this machine is most likely offline (not worth a retry)."""


class _BadData(DownloadError):
    """The server's bytes cannot be right (more than announced, resumed at the wrong offset)."""


class _Retry(Exception):
    """A transient failure: the same URL may work when asked again (resuming the partial file)."""

    def __init__(self, reason: str, *, progressed: bool = False, cut_short: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.progressed = progressed
        self.cut_short = cut_short  # the server answered but the body ended early


def download_file(
    remote: RemoteFile,
    folder: str | os.PathLike,
    *,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    retry_wait: float = 1.0,
) -> DownloadedFile:
    """Download ``remote`` into ``folder / remote.file_name``, resuming and verifying it.

    Args:
        remote: URL, file name, expected sha256 (full or prefix) and whether it is a Google Drive link.
        folder: where the file (and its ``.part`` while incomplete) goes.
        progress: show a rich progress bar on stderr.
        timeout: seconds to wait for a connection or for the next bytes.
        retries: attempts in a row without any new byte before giving up on this URL.
        retry_wait: seconds before the first retry, doubling after each failure in a row.

    Returns:
        The verified download.

    Raises:
        DownloadError: on an HTTP error, a truncated or corrupted transfer, or a checksum mismatch.
            Bytes that failed a check (checksum, length, a server that keeps ending the transfer
            early) are deleted. A partial file is kept when nothing speaks against it: the run was
            interrupted (Ctrl-C), the server could not be reached, or it refused for now (HTTP
            error, quota page); the next run resumes it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / remote.file_name
    part = dest.with_name(dest.name + ".part")
    cookies = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(cookies))
    url = remote.url
    discard = False
    if progress:
        _STDERR.print(f"downloading {remote.file_name} ({format_size(remote.size)}) from {show_url(url)}", highlight=False)
    try:
        with _progress_bar(progress) as bar:
            task = bar.add_task(remote.file_name, total=None, visible=False)  # shown once the server answers
            failures = confirm_pages = 0
            while True:
                have = part.stat().st_size if part.exists() else 0
                if remote.google_drive and url == remote.url:
                    have = 0  # the first hop answers with a confirm page: resume on the file's own URL
                try:
                    next_url = _fetch_once(opener, url, part, have, timeout, bar, task, remote.google_drive, cookies)
                except _Retry as err:
                    failures = 0 if err.progressed else failures + 1
                    if failures > retries:
                        discard = err.cut_short  # answered, yet never delivered the rest: drop its bytes
                        raise DownloadError(f"{show_url(url)}: {err.reason} (gave up after {retries} retries)") from None
                    time.sleep(retry_wait * 2 ** max(failures - 1, 0))
                    continue
                if next_url is None:
                    break
                confirm_pages += 1
                if confirm_pages > MAX_CONFIRM_PAGES:
                    raise DownloadError(f"{show_url(remote.url)}: Google Drive kept answering with confirm pages")
                url = next_url
        actual = sha256_file(part)
        if remote.sha256 is not None and not actual.startswith(remote.sha256):
            discard = True
            kind = "sha256" if remote.full_sha256 else "sha256 prefix"
            raise DownloadError(
                f"{show_url(url)}: checksum mismatch: got sha256 {actual}, expected {kind} {remote.sha256}; "
                "the download was corrupted or the file changed, and has been deleted"
            )
        size = part.stat().st_size
        os.replace(part, dest)
        return DownloadedFile(path=dest, url=url, sha256=actual, size=size)
    except _BadData:
        discard = True
        raise
    except DownloadError as err:
        if not discard and part.exists():
            raise DownloadError(f"{err}; partial download kept for resuming: {part}") from None
        raise
    finally:
        if discard:
            part.unlink(missing_ok=True)


def _fetch_once(
    opener: urllib.request.OpenerDirector,
    url: str,
    part: Path,
    have: int,
    timeout: float,
    bar: Progress,
    task,
    google_drive: bool,
    cookies: http.cookiejar.CookieJar,
) -> str | None:
    """One request: append to ``part`` from byte ``have``. Returns None when complete, or the next URL."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        with err:
            if err.code == 416 and have:
                if _content_range_total(err.headers.get("Content-Range")) == have:
                    return None  # the partial file already holds everything
                part.unlink(missing_ok=True)
                raise _Retry(f"server refused to resume at byte {have}; starting over") from None
            if err.code in (408, 425, 429) or err.code >= 500:
                raise _Retry(f"HTTP {err.code} {err.reason}") from None
            raise DownloadError(f"{show_url(url)}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, socket.gaierror) or isinstance(err, socket.gaierror):
            host = urllib.parse.urlsplit(url).hostname
            raise Unreachable(f"{show_url(url)}: cannot resolve {host} (offline?): {reason}") from None
        raise _Retry(f"cannot connect ({reason})") from None
    with response:
        if response.headers.get_content_type() == "text/html":
            page = response.read(MAX_PAGE_BYTES)
            if google_drive:
                return google_drive_confirm_url(response.geturl(), page, cookies)
            raise DownloadError(f"{show_url(url)}: the server sent an HTML page instead of the file")
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"), url)
            if start != have:
                part.unlink(missing_ok=True)
                raise _Retry(f"server resumed at byte {start} instead of {have}; starting over")
            mode = "ab"
        else:  # 200: the whole file (a server that ignores Range starts over)
            have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        bar.update(task, total=total, completed=have, visible=True)
        received = 0
        with open(part, mode) as out:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as err:
                    raise _Retry(
                        f"connection lost after {have + received} bytes ({err})", progressed=received > 0, cut_short=True
                    ) from None
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.advance(task, len(chunk))
    size = have + received
    if total is not None and size < total:
        raise _Retry(f"transfer ended at byte {size} of {total}", progressed=received > 0, cut_short=True)
    if total is not None and size > total:
        raise _BadData(f"{show_url(url)}: received {size} bytes, more than the {total} announced")
    return None


def _parse_content_range(value: str | None, url: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        raise _BadData(f"{show_url(url)}: partial response with an unreadable Content-Range {value!r}")
    total = match.group(3)
    return int(match.group(1)), (int(total) if total != "*" else None)


def _content_range_total(value: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", value or "")
    return int(match.group(1)) if match else None


class _ConfirmPageParser(HTMLParser):
    """Collects the GET forms (action + inputs), links and title of a Google Drive confirm page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[tuple[dict[str, str], dict[str, str]]] = []
        self.links: list[dict[str, str]] = []
        self.title = ""
        self._in_form = self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append((attributes, {}))
            self._in_form = True
        elif tag == "input" and self._in_form and attributes.get("name"):
            if attributes.get("type", "text").lower() in ("hidden", "text"):
                self.forms[-1][1][attributes["name"]] = attributes.get("value", "")
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes)
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def google_drive_confirm_url(page_url: str, page: bytes, cookies: http.cookiejar.CookieJar | None = None) -> str:
    """The URL that gets past Google Drive's "can't scan this file for viruses" page.

    Google Drive answers a large-file download with an HTML page; depending on its vintage the way
    on is a GET form ``download-form`` with hidden inputs (``id``, ``export``, ``confirm``,
    ``uuid``), a link ``uc-download-link`` whose URL carries ``confirm=TOKEN``, or a
    ``download_warning*`` cookie whose value is the token to add as ``confirm=``.

    Raises:
        DownloadError: when the page offers no way on (quota exceeded, file not shared, ...).
    """
    parser = _ConfirmPageParser()
    parser.feed(page.decode("utf-8", errors="replace"))
    forms = [
        (attrs, fields)
        for attrs, fields in parser.forms
        if attrs.get("method", "get").lower() == "get" and attrs.get("action")
    ]
    forms.sort(key=lambda form: form[0].get("id") != "download-form")
    if forms and (forms[0][0].get("id") == "download-form" or "confirm" in forms[0][1]):
        attrs, fields = forms[0]
        action = urllib.parse.urlsplit(urllib.parse.urljoin(page_url, attrs["action"]))
        return urllib.parse.urlunsplit(action._replace(query=urllib.parse.urlencode(fields), fragment=""))
    for link in parser.links:
        if link.get("id") == "uc-download-link" or "confirm=" in link["href"]:
            return urllib.parse.urljoin(page_url, link["href"])
    for cookie in cookies or ():
        if cookie.name.startswith("download_warning"):
            return _with_query(page_url, confirm=cookie.value)
    title = " ".join(parser.title.split()) or "no title"
    raise DownloadError(
        f"{show_url(page_url)}: Google Drive answered with a page instead of the file ({title!r}); "
        "it may be over its download quota. Try again later, or fetch the file in a browser and "
        "run: instcolor weights import PATH/TO/FILE"
    )


def _with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def show_url(url: str) -> str:
    """A URL shortened for messages (no query string)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(query="", fragment="")) + ("?..." if parts.query else "")


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def is_google_drive(url: str) -> bool:
    """True for ``drive.google.com`` / ``drive.usercontent.google.com`` links."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return host in ("drive.google.com", "drive.usercontent.google.com", "docs.google.com")
