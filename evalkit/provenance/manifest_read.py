"""Read a video's C2PA manifest with c2pa-python into the `provenance` object of `verify`.

    prov, error = read_provenance("clip.mp4", trust=load_trust(["ca.pem"]))
    prov["state"], prov["failures"], prov["signer"], prov["manifest_source"]

Never raises for the file's content: a hostile or damaged manifest gives state `invalid` with
`evalkit.manifest.unreadable` and a one-line error. Reading is offline (`_VERIFY_SETTINGS`: no
remote manifests, no OCSP) unless a remote manifest is asked for. Where the manifest may live:
embedded, a `.c2pa` sidecar (beside the file, or given), or a remote URL the file names (see
`read_provenance`). What one manifest says and its ingredients' history: `manifest_history`.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

from evalkit.provenance.c2pa import _one_line, has_c2pa_box
from evalkit.provenance.manifest_history import (_codes, ai_origin, history_truncated, ingredient_history,
                                                 inherited_soft_binding, manifest_summary, stated_origin)

# Settings for reading: never touch the network.
_VERIFY_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False,
                               "verify_trust": True, "verify_after_reading": True}}
HASH_MISMATCH_CODES = ("assertion.dataHash.mismatch", "assertion.bmffHash.mismatch",
                       "assertion.boxesHash.mismatch", "assertion.collectionHash.mismatch")
UNREADABLE_MANIFEST = "evalkit.manifest.unreadable"
MAX_SIDECAR_BYTES = 64 << 20  # manifest stores hold claims, signatures and thumbnails: a few MB


# ---------------------------------------------------------------------------------------------
# Trust anchors


def load_trust(paths) -> str | None:
    """The PEM text of the trust anchors in `paths` (one path or a list), checked; None if none.

    Raises a one-line `EvalkitError` for a missing file or one without certificates."""
    from cryptography.hazmat.primitives import serialization

    from evalkit.provenance.credentials import load_certificates

    if paths is None:
        return None
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    pems = []
    for p in paths:
        pems += [c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in load_certificates(p)]
    return "".join(pems) or None


@functools.lru_cache(maxsize=8)
def _context(anchors: str | None, fetch_remote: bool = False):
    import c2pa

    settings = json.loads(json.dumps(_VERIFY_SETTINGS))
    if anchors:
        settings["trust"] = {"trust_anchors": anchors}
    if fetch_remote:  # asked for: the only setting under which verify touches the network
        settings["verify"]["remote_manifest_fetch"] = True
    return c2pa.Context(c2pa.Settings.from_dict(settings))


# ---------------------------------------------------------------------------------------------
# The manifest


def _empty_provenance(state: str = "absent", failures=None) -> dict:
    return {"state": state, "failures": list(failures or []), "signer": None, "issuer": None,
            "digital_source_type": None, "generator": None, "actions": []}


def _dn(d) -> str | None:
    if not isinstance(d, dict):
        return None
    cn, org = d.get("CN"), d.get("O")
    if cn and org and str(org) not in str(cn):
        return f"{cn} ({org})"
    return str(cn or org) if (cn or org) else None


def _parse_manifest(reader) -> dict:
    """Provenance fields from an open c2pa Reader (defensive: the manifest is untrusted input)."""
    state = str(reader.get_validation_state() or "").lower()
    store = json.loads(reader.json())
    prov = _empty_provenance(state if state in ("invalid", "valid", "trusted") else "invalid")
    results = reader.get_validation_results() or {}
    active = results.get("activeManifest") if isinstance(results, dict) else None
    codes = _codes(active.get("failure")) if isinstance(active, dict) else []
    for delta in (results.get("ingredientDeltas") or []) if isinstance(results, dict) else []:
        if isinstance(delta, dict):
            codes += _codes((delta.get("validationDeltas") or {}).get("failure"))
    if not codes:
        codes = _codes(store.get("validation_status"))
    prov["failures"] = list(dict.fromkeys(codes))
    if state not in ("invalid", "valid", "trusted"):
        prov["failures"].append("evalkit.validation.unknown")
    if isinstance(active, dict):  # c2pa's words for a failed credential ("certificate missing required EKU")
        why = {str(i["code"]): str(i.get("explanation") or "")[:200] for i in active.get("failure") or []
               if isinstance(i, dict) and str(i.get("code", "")).startswith("signingCredential.")}
        if any(why.values()):
            prov["failure_explanations"] = why
    # A CAWG identity assertion is a second signature, over who made the content; its credential's
    # trust is not the claim signer's. c2pa folds its failures into the manifest's, so a manifest
    # whose signer chains to the user's anchors read "valid (cawg.x509.credential.untrusted)" and
    # was said to have an untrusted signer (session 33).
    identity = [c for c in prov["failures"] if c.startswith("cawg.")]
    succeeded = set(_codes(active.get("success"))) if isinstance(active, dict) else set()
    if identity or any(c.startswith("cawg.identity") for c in succeeded):
        prov["failures"] = [c for c in prov["failures"] if not c.startswith("cawg.")]
        prov["identity"] = {"kind": "cawg", "failures": identity,
                            "state": ("untrusted" if identity and all(c.endswith(".untrusted") for c in identity)
                                      else "invalid" if identity else "valid")}
        if state == "valid" and "signingCredential.trusted" in succeeded and not prov["failures"]:
            prov["state"] = "trusted"

    label = store.get("active_manifest")
    manifest = (store.get("manifests") or {}).get(label) or {}
    summary = manifest_summary(manifest)
    prov.update(summary)
    try:  # crJSON carries both distinguished names of the signing certificate
        for m in json.loads(reader.crjson()).get("manifests") or []:
            if isinstance(m, dict) and m.get("label") == label:
                info = (m.get("signature") or {}).get("certificateInfo") or {}
                prov["signer"] = _dn(info.get("subject")) or prov["signer"]
                prov["issuer"] = _dn(info.get("issuer")) or prov["issuer"]
    except Exception:  # noqa: BLE001  an optional view; the summary above stands
        pass
    history = ingredient_history(store, label)
    if history:
        prov["ingredients"] = history
        origin = ai_origin(history)
        if origin:
            prov["ai_origin"] = origin
        elif not prov["digital_source_type"]:
            stated = stated_origin(history)
            if stated:  # an edit of a capture (or of anything else that says what it is)
                prov["stated_origin"] = stated
        if history_truncated(history):
            prov["history_truncated"] = True
        if "soft_binding" not in prov:
            inherited = inherited_soft_binding(history)
            if inherited:
                prov["soft_binding"] = inherited
    return prov


def _remote_url(e: BaseException) -> str | None:
    """The URL of c2pa's "must fetch remote manifests from url ..." error, if that is what it is."""
    m = re.search(r"remote manifests? from url (\S+)", str(e), re.IGNORECASE)
    return m.group(1) if m else None


def sidecar_of(path) -> Path | None:
    """The C2PA sidecar beside a file (same stem, `.c2pa`), if there is one."""
    side = Path(path).with_suffix(".c2pa")
    return side if side.is_file() and side != Path(path) else None


def provenance_outside(path) -> str | None:
    """Where a file's C2PA provenance lives when the file does not embed it: "the C2PA sidecar X"
    or "a remote C2PA manifest at URL" (never fetched here); None when it embeds a manifest or
    has none anywhere. Signing such a file as new would leave that history behind silently."""
    import c2pa

    from evalkit.provenance.c2pa import MIME_BY_SUFFIX

    if Path(path).suffix.lower() in MIME_BY_SUFFIX and has_c2pa_box(path):
        return None  # embedded: the callers' own check (carries_manifest) speaks for it
    side = sidecar_of(path)
    if side:
        # sidecars go by stem: clip.mkv's clip.c2pa sits beside clip.mp4 too. Only one that binds
        # this file is its history (session 33: another file's was, and the advice to move it aside
        # stripped that file).
        prov, _err = _read_with_sidecar(path, side, None)
        bad = [c for c in prov["failures"] if not c.startswith("signingCredential.")]
        return f"the C2PA sidecar {side}" if prov["state"] in ("valid", "trusted", "invalid") and not bad else None
    try:
        with c2pa.Reader(str(path), context=_context(None)):  # offline: a remote one is only named
            return None
    except (c2pa.C2paError, OSError, ValueError) as e:
        url = _remote_url(e)
        return f"a remote C2PA manifest at {url}" if url else None


def _read(path, reader_fn, source: str, where: str) -> tuple[dict, str | None]:
    import c2pa

    try:
        reader = reader_fn()
    except (c2pa.C2paError, OSError, ValueError) as e:
        return (_empty_provenance("invalid", [UNREADABLE_MANIFEST]) | {"manifest_source": source},
                f"{where}: C2PA manifest present but unreadable: {_one_line(e)}")
    try:
        with reader:
            return _parse_manifest(reader) | {"manifest_source": source}, None
    except Exception as e:  # noqa: BLE001  a hostile manifest must not become a traceback
        return (_empty_provenance("invalid", [UNREADABLE_MANIFEST]) | {"manifest_source": source},
                f"{where}: C2PA manifest could not be interpreted: {_one_line(e)}")


def _read_with_sidecar(path, side: Path, trust) -> tuple[dict, str | None]:
    import c2pa
    from evalkit.provenance.c2pa import MIME_BY_SUFFIX

    size = side.stat().st_size
    if size > MAX_SIDECAR_BYTES:  # read whole into memory: a hostile one must not exhaust it
        return (_empty_provenance("invalid", [UNREADABLE_MANIFEST]) | {"manifest_source": "sidecar", "sidecar": str(side)},
                f"{side}: {size / 2**20:.0f} MiB is too large for a C2PA manifest store (limit "
                f"{MAX_SIDECAR_BYTES // 2**20} MiB); check that it is one")

    def reader():
        with open(path, "rb") as f:  # c2pa copies what it needs while constructing the reader
            return c2pa.Reader(MIME_BY_SUFFIX.get(Path(path).suffix.lower(), "application/octet-stream"), f,
                               manifest_data=side.read_bytes(), context=_context(trust))

    prov, err = _read(path, reader, "sidecar", str(side))
    prov["sidecar"] = str(side)
    return prov, err


def read_provenance(path, trust: str | None = None, *, manifest=None,
                    fetch_remote: bool = False) -> tuple[dict, str | None]:
    """(provenance, error) for one file; `trust` is the PEM text of `load_trust`. Never raises
    for the file's content.

    Where the manifest lives (`provenance.manifest_source`): `embedded` in the file; `sidecar`,
    a `.c2pa` manifest store given as `manifest` or found beside the file (same stem), used when
    the file embeds none; `remote`, fetched from the URL the file names, only with
    `fetch_remote`. A file that names a remote manifest which was not fetched keeps state
    `absent` and reports `remote_url`."""
    import c2pa

    from evalkit.bmff import too_many_boxes

    crowded = too_many_boxes(path)
    if crowded:  # a million empty boxes kept c2pa busy for minutes, deaf to Ctrl-C and kill
        return _empty_provenance(), crowded  # not read, so not known to hold a manifest
    if manifest is not None:
        return _read_with_sidecar(path, Path(manifest), trust)
    try:
        reader = c2pa.Reader(str(path), context=_context(trust))  # offline first: a remote one is named
    except c2pa.C2paError.ManifestNotFound:
        side = sidecar_of(path)
        return _read_with_sidecar(path, side, trust) if side else (_empty_provenance(), None)
    except c2pa.C2paError.NotSupported:  # c2pa embeds nothing in this format (WebM, MKV): a sidecar may hold it
        side = sidecar_of(path)
        return _read_with_sidecar(path, side, trust) if side else (_empty_provenance(), None)
    except (c2pa.C2paError, OSError, ValueError) as e:
        url = _remote_url(e)
        if url:
            return _read_remote(path, url, trust, fetch_remote)
        if has_c2pa_box(path):
            return (_empty_provenance("invalid", [UNREADABLE_MANIFEST]),
                    f"{path}: C2PA manifest present but unreadable: {_one_line(e)}")
        side = sidecar_of(path)
        return _read_with_sidecar(path, side, trust) if side else (_empty_provenance(), None)
    return _read(path, lambda: reader, "embedded", str(path))


def _read_remote(path, url: str, trust, fetch_remote: bool) -> tuple[dict, str | None]:
    """A file whose manifest lives at `url`: its sidecar if there is one, else fetched when asked."""
    import c2pa

    side = sidecar_of(path)
    if side:
        prov, err = _read_with_sidecar(path, side, trust)
    elif not fetch_remote:
        prov, err = _empty_provenance(), None
    else:
        try:
            data = fetch_manifest(url)
        except (OSError, ValueError) as e:
            prov, err = _empty_provenance(), f"{path}: its remote C2PA manifest could not be fetched from {url}: {_one_line(e)}"
            prov["remote_fetch_error"] = _one_line(e)
        else:
            from evalkit.provenance.c2pa import MIME_BY_SUFFIX

            def reader():
                with open(path, "rb") as f:
                    return c2pa.Reader(MIME_BY_SUFFIX.get(Path(path).suffix.lower(), "application/octet-stream"), f,
                                       manifest_data=data, context=_context(trust))
            prov, err = _read(path, reader, "remote", url)
    prov["remote_url"] = url
    return prov, err


REMOTE_TIMEOUT_S = 30.0  # a server that stops answering; and the whole download's limit, twice that


def fetch_manifest(url: str) -> bytes:
    """A remote manifest store, fetched here rather than by c2pa so that its size and time are
    bounded: a server answering with an endless body grew verify's memory until the machine (or
    its limit) killed it, with every other file's result lost (session 31)."""
    import time
    import urllib.request
    from urllib.parse import urlparse

    if urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"{url!r} is not an http(s) URL")
    start, chunks, size = time.monotonic(), [], 0
    req = urllib.request.Request(url, headers={"Accept": "application/c2pa"})
    with urllib.request.urlopen(req, timeout=REMOTE_TIMEOUT_S) as r:
        while chunk := r.read(1 << 16):
            size += len(chunk)
            if size > MAX_SIDECAR_BYTES:
                raise ValueError(f"over {MAX_SIDECAR_BYTES // 2**20} MiB, too large for a C2PA manifest store")
            if time.monotonic() - start > 2 * REMOTE_TIMEOUT_S:
                raise ValueError(f"still downloading after {2 * REMOTE_TIMEOUT_S:.0f} s")
            chunks.append(chunk)
    return b"".join(chunks)


__all__ = ["read_provenance", "load_trust", "sidecar_of", "HASH_MISMATCH_CODES",
           "UNREADABLE_MANIFEST", "MAX_SIDECAR_BYTES"]
