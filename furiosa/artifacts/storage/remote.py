"""DVC's configuration (``.dvc/config`` + ``.dvc/config.local``), read without importing DVC.

The files are INI-like (configobj): ``[core] remote = NAME``, ``['remote "NAME"'] url = ...``
plus per-remote options (``endpointurl``, ``access_key_id``, ...), and ``[cache] dir``.
``config.local`` (git-ignored; where ``dvc remote modify --local`` writes secrets) overrides
``config`` key by key. Relative local paths are relative to the ``.dvc`` directory.
"""

from __future__ import annotations

import configparser
import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from furiosa.artifacts.errors import ConfigFileError, DownloadError

__all__ = ["ENV_REMOTE", "Remote", "dvc_cache_dir", "read_config", "read_remote", "remote_from_url",
           "SUPPORTED_SCHEMES"]

CONFIG_FILES = ("config", "config.local")
_MAX_CONFIG_BYTES = 1 << 20
#: a URL (local directory, http(s)://, s3://) holding DVC's remote layout; overrides the configured default remote
ENV_REMOTE = "FURIOSA_ARTIFACTS_REMOTE"
SUPPORTED_SCHEMES = ("local", "http", "https", "s3")


@dataclass(frozen=True)
class Remote:
    """One DVC remote: ``kind`` is ``local``, ``http`` (http and https) or ``s3``."""

    name: str
    url: str  # as configured; a local remote's absolute directory in ``path``
    kind: str
    path: Path | None = None  # local remotes only
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)

    def describe(self) -> str:
        """``remote 'NAME' (URL[, endpoint ...])`` for messages; never shows secrets (userinfo redacted)."""
        endpoint = self.option("endpointurl")
        return redact(f"remote {self.name!r} ({self.url}" + (f", endpoint {endpoint}" if endpoint else "") + ")")

    def location(self, key: str) -> str:
        """Where the object with this key lives, as a URL or path a user can look at (password redacted)."""
        if self.kind == "local":
            return str(self.path / key)  # type: ignore[operator]
        return redact(self.object_url(key))

    def object_url(self, key: str) -> str:
        """The object's URL as configured, credentials included: for the transfer only, never for messages."""
        return self.url.rstrip("/") + "/" + key


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced by ``***@``."""
    return _USERINFO.sub(r"\1***@", text)


_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _section(name: str) -> tuple[str, str | None]:
    """``core`` -> (core, None); ``'remote "team"'`` / ``remote "team"`` -> (remote, team)."""
    match = re.fullmatch(r"\s*([A-Za-z_]+)\s+\"([^\"]*)\"\s*", _unquote(name))
    if match:
        return match.group(1).lower(), match.group(2)
    return _unquote(name).strip().lower(), None


def read_config(root: Path) -> dict[tuple[str, str | None], dict[str, str]]:
    """``{(section, name): {key: value}}`` from ``.dvc/config`` then ``.dvc/config.local``.

    Raises:
        DownloadError: a config file is not parseable (the message names it).
    """
    merged: dict[tuple[str, str | None], dict[str, str]] = {}
    for filename in CONFIG_FILES:
        path = Path(root) / ".dvc" / filename
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=("#", ";"), strict=False)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            with open(path, "rb") as handle:
                raw = handle.read(_MAX_CONFIG_BYTES + 1)
            if len(raw) > _MAX_CONFIG_BYTES:
                raise ConfigFileError(f"DVC config {path} is larger than {_MAX_CONFIG_BYTES} bytes: this is not a config")
            parser.read_string(raw.decode("utf-8"), source=str(path))
        except UnicodeDecodeError as exc:
            raise ConfigFileError(f"DVC config {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
        except OSError as exc:
            raise ConfigFileError(f"cannot read DVC config {path}: {exc.strerror or exc}") from None
        except configparser.Error as exc:
            raise ConfigFileError(f"cannot parse DVC config {path}: {exc}".replace("\n", " ")) from None
        for section in parser.sections():
            values = merged.setdefault(_section(section), {})
            values.update({key.lower(): _unquote(value) for key, value in parser.items(section)})
    return merged


def dvc_cache_dir(root: Path, config: dict | None = None) -> Path:
    """The repository's DVC cache directory (``[cache] dir``, default ``.dvc/cache``)."""
    config = read_config(root) if config is None else config
    configured = config.get(("cache", None), {}).get("dir")
    dvc_dir = Path(root) / ".dvc"
    return (dvc_dir / Path(configured).expanduser()) if configured else dvc_dir / "cache"


def read_remote(root: Path, name: str | None = None) -> Remote | None:
    """The remote called ``name``, or the default one: ``$FURIOSA_ARTIFACTS_REMOTE`` when set, else
    ``core.remote``; None if neither is set.

    Raises:
        DownloadError: ``name`` is not configured (known names are listed), the remote has no
            ``url``, or its scheme is not one this resolver speaks (local, http(s), s3).
    """
    if name is None and os.environ.get(ENV_REMOTE, "").strip():
        return remote_from_url(os.environ[ENV_REMOTE].strip(), name=f"${ENV_REMOTE}")
    config = read_config(root)
    known = sorted(n for (section, n) in config if section == "remote" and n is not None)
    if name is None:
        name = config.get(("core", None), {}).get("remote")
        if not name:
            return None
    values = config.get(("remote", name))
    if values is None:
        raise DownloadError(
            f"no DVC remote named {name!r} in {Path(root) / '.dvc' / 'config'} (known: {', '.join(known) or 'none'}); "
            f"add it with `dvc remote add {name} URL` or pick one of the known names"
        )
    url = values.get("url")
    if not url:
        raise DownloadError(f"DVC remote {name!r} has no url; set it with `dvc remote modify {name} url URL`")
    options = tuple(sorted((k, v) for k, v in values.items() if k != "url"))
    return remote_from_url(url, name=name, options=options, base=Path(root) / ".dvc")


def remote_from_url(url: str, *, name: str = "remote", options: tuple = (), base: Path | None = None) -> Remote:
    """A :class:`Remote` for ``url``: a local directory (relative to ``base``, ``~`` expanded), http(s):// or s3://.

    Raises:
        DownloadError: the scheme is not one this resolver speaks.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("", "file"):
        local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)) if scheme else Path(url)
        path = ((base or Path.cwd()) / local.expanduser()).absolute()
        return Remote(name=name, url=url, kind="local", path=path, options=options)
    if scheme in ("http", "https"):
        return Remote(name=name, url=url, kind="http", options=options)
    if scheme == "s3":
        return Remote(name=name, url=url, kind="s3", options=options)
    raise DownloadError(
        f"DVC remote {name!r} ({url}) uses the {scheme}:// scheme, which the DVC-free resolver does not speak "
        f"(it reads {', '.join(SUPPORTED_SCHEMES)} remotes); install DVC with that plugin and run `dvc pull`"
    )
