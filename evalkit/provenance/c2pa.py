"""Sign videos with a C2PA manifest (c2pa-python `Builder`), optionally watermarking them first.

    signer = load_signer()                                   # evalkit.provenance.signers
    sign_video("clip.mp4", "clip.signed.mp4", signer=signer, source_type="trained",
               generator={"name": "uvit", "version": "small"},
               params={"prompt": "a red ball falls", "seed": 3, "sampler": "ddim", "steps": 50})
    sign_file("in.mp4", "out.mp4", signer, watermark=True)   # embed the mark, re-encode, sign

The manifest itself (its assertions, the IPTC source types, the edit form) is built by
`manifest_build.build_manifest`; this module checks the paths and containers, hands that
manifest to c2pa with the input (and, for an edit, the parent ingredient), and writes the result.

Signing is offline unless `tsa_url` is given. The input is never overwritten (same path or same
file is refused); the output is written to a hidden temporary name beside it and renamed, and a
failure leaves nothing behind. An input that already carries a C2PA manifest is refused unless it
is signed as an edit (its manifest kept as the parent ingredient) or `replace_manifest=True`:
c2pa would silently drop the earlier provenance.

Note on the name: this module is `evalkit.provenance.c2pa`; inside it `import c2pa` is an
absolute import and gets the c2pa-python package (never run this file as a script).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from evalkit.atomic import foreign_on_path, keep_owner_mode, short_name
from evalkit.errors import (BadInputError, EvalkitError, MissingResourceError, os_path, special_file,
                            special_file_message)
from evalkit.hashing import sha256_file
from evalkit.bmff import C2PA_UUID, _check_mp4, has_c2pa_box, too_many_boxes  # noqa: F401  (re-exported)
from evalkit.provenance.sign_inputs import (  # noqa: F401  (re-exported)
    KEPT_TAGS, _check_named_as_is, kept_tags, reencode_losses, sniff_container,
)
from evalkit.provenance.manifest_build import (
    PARENT_ID, WatermarkInfo, _generation, _software_agent, build_manifest, source_type_url,
)
from evalkit.provenance.manifest_build import (  # noqa: F401  (re-exported)
    AI_SOURCE_TYPES, CAPTURE_SOURCE_TYPES, GENERATION_LABEL, IPTC, MAX_PARAMS_BYTES, SOURCE_TYPES, TRAINING_MINING,
    WATERMARK_ALG, canonical_source_type,
)

MIME_BY_SUFFIX = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}  # ISO BMFF
# Containers c2pa embeds a manifest in, in place: ISO BMFF, and since session 22 AVI (RIFF) and
# GIF (an application extension block; short AI clips are passed around as GIFs). A watermarked
# copy is always written as BMFF (H.264), so only `sign` without --watermark uses the others.
EMBED_MIME = {**MIME_BY_SUFFIX, ".avi": "video/x-msvideo", ".gif": "image/gif"}

# c2pa settings for signing: no thumbnails (videos have none anyway), nothing fetched.
_SIGN_SETTINGS = {"builder": {"thumbnail": {"enabled": False}},
                  "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}


class SigningError(BadInputError):
    """Signing failed: a one-line reason (exit code 2)."""


@dataclass(frozen=True)
class SignResult:
    path: Path
    watermarked: bool
    payload: str | None = None  # hex
    key_id: str | None = None
    edit_of: str | None = None  # the parent ingredient's file name, for an edit
    sidecar: Path | None = None  # the manifest store beside the copy (`--sidecar`)
    registered: Path | None = None  # the payload's soft-binding registry record (`registry`)
    registry_error: str | None = None  # why it could not be recorded (the signed file stands)
    pending_registration: object = None  # with register="defer": a call that records it
    capture: bool = False  # a marked capture: its stripped copies are told from AI only via the registry
    warnings: tuple = ()  # what a --watermark re-encode left behind (`reencode_losses`), a line each

    def summary(self) -> str:
        wm = f", watermark payload {self.payload} (key {self.key_id})" if self.watermarked else ""
        edit = f", as an edit of {self.edit_of} (its manifest kept as the parent ingredient)" if self.edit_of else ""
        side = f", manifest in the sidecar {self.sidecar}" if self.sidecar else ""
        reg = f"; payload recorded in the soft-binding registry {self.registered.parent.parent}" if self.registered else ""
        warn = ""  # the registry's failure is a warning the CLI prints on stderr (`warnings`)
        if self.capture and self.watermarked:
            warn += ("\nnote: a copy stripped of its manifest reads as a capture only where verify reads this "
                     "registry (EVALKIT_SOFT_BINDINGS); elsewhere the mark reads as evalkit's mark of generated media")
        from evalkit.safe_text import printable

        return printable(f"signed {self.path}{wm}{edit}{side}{reg}") + warn  # names as escapes: one line each


# ---------------------------------------------------------------------------------------------
# Files


@functools.lru_cache(maxsize=1)
def _sign_context():
    import c2pa

    return c2pa.Context(c2pa.Settings.from_dict(_SIGN_SETTINGS))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _check_paths(src, dst, *, need_c2pa_format: bool = True) -> tuple[Path, Path]:
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise MissingResourceError(f"{src}: no such file; check the path")
    if src.is_dir():
        raise BadInputError(f"{src}: is a directory; give a video file")
    what = special_file(src)
    if what:  # a FIFO blocked sign for good (session 33)
        raise BadInputError(special_file_message(src, what))
    foreign = foreign_on_path(dst)
    if foreign:  # said before the signing (it failed after it, or wrote through the link)
        raise BadInputError(f"{foreign}; evalkit does not write through it or over it: choose another path")
    if _same_file(src, dst):
        raise BadInputError(f"{dst}: is the input file; signing never overwrites its input, give "
                            "another output path")
    if dst.is_dir():
        raise BadInputError(f"{dst}: is a directory; give an output file name ending in .mp4")
    try:  # the manifest records the output's name as its title: c2pa's JSON cannot hold bytes that are not UTF-8
        dst.name.encode("utf-8")
    except UnicodeEncodeError:
        from evalkit.safe_text import printable

        raise BadInputError(f"{printable(dst)}: the output name is not valid UTF-8 (the manifest records it as "
                            "its title); give a name in UTF-8") from None
    if not dst.parent.is_dir():
        raise MissingResourceError(f"{dst}: folder {dst.parent} does not exist; create it first")
    allowed = EMBED_MIME if need_c2pa_format else MIME_BY_SUFFIX
    # the input first: renaming the output cannot help an input of another container
    if need_c2pa_format and src.suffix.lower() not in EMBED_MIME:
        container = ""
        if src.is_file():  # not a video at all (an .m4a): say that, not fixes that then fail on it
            from evalkit.video import probe_video

            if not too_many_boxes(src):
                container = str(probe_video(src, check=False).container)
        named = f"a {src.suffix} file" if src.suffix else "a name without a suffix"
        # an MP4 saved under another name: renaming it is the simplest fix
        rename = f"rename it {src.with_suffix('.mp4').name} and sign that, or " if "mp4" in container.split(",") else ""
        raise BadInputError(f"{src}: only MP4/MOV, AVI and GIF videos can be signed in place (by the name's "
                            f"suffix: {named}); {rename}sign with --sidecar (any container), or with --watermark "
                            f"and an output named {dst.with_suffix('.mp4').name} (re-encoded to H.264)")
    if dst.suffix.lower() not in allowed:
        if not need_c2pa_format and src.is_file() and not too_many_boxes(src):
            from evalkit.video import probe_video  # the input first: an .m4a has no video to mark

            probe_video(src, check=False)
        if need_c2pa_format:  # in place: the copy keeps the input's container
            raise BadInputError(f"{dst}: cannot write a signed {dst.suffix or 'file without suffix'}; the signed "
                                f"copy keeps the input's container: name the output {src.suffix}")
        # --watermark writes H.264; --sidecar takes it in .mkv too (WebM cannot hold H.264)
        raise BadInputError(f"{dst}: cannot write a watermarked {dst.suffix or 'file without suffix'}; a "
                            f"watermarked copy is H.264: name the output {', '.join(allowed)}, or .mkv with --sidecar")
    if need_c2pa_format:
        if EMBED_MIME[src.suffix.lower()] != EMBED_MIME[dst.suffix.lower()]:
            raise BadInputError(f"{dst}: the signed copy keeps the input's container "
                                f"({src.suffix}); name the output {src.suffix}")
    return src, dst


def carries_manifest(path, *, container_must_parse: bool = True) -> bool:
    """Whether a file already embeds a C2PA manifest: for ISO BMFF its uuid box (headers only);
    for the other containers c2pa embeds in (AVI, GIF), whatever c2pa finds, a damaged manifest
    counting as one. A container c2pa cannot parse at all (an AVI whose RIFF size is 0xFFFFFFFF)
    is a one-line error where the file is to be signed in place (`container_must_parse`): it read
    "already carries a C2PA manifest; use --edit", which then failed; elsewhere (a sidecar, or a
    re-encode) it holds no manifest c2pa could find."""
    import c2pa

    if Path(path).suffix.lower() in MIME_BY_SUFFIX:
        return has_c2pa_box(path)
    try:
        with c2pa.Reader(str(path)):
            return True
    except (c2pa.C2paError.ManifestNotFound, c2pa.C2paError.NotSupported):
        return False
    except (c2pa.C2paError, OSError, ValueError) as e:
        if "asset could not be parsed" not in str(e):
            return True
        if container_must_parse:
            raise BadInputError(f"{path}: its container cannot be parsed for signing ({_one_line(e)}); re-mux it "
                                "(ffmpeg -c copy), or sign with --watermark (which re-encodes it)") from None
        return False


def _tmp_beside(dst: Path) -> Path:
    return dst.with_name(f".{short_name(dst.stem)}.{secrets.token_hex(4)}.tmp{dst.suffix}")


def _one_line(e: BaseException, limit: int = 240) -> str:
    from evalkit.provenance.credentials import _scrub

    text = _scrub(str(e))
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:limit] + ("..." if len(text) > limit else "")


def sign_video(src, dst, *, signer, source_type: str | None = "trained", generator: dict | str | None = None,
               params: dict | None = None, watermark: WatermarkInfo | None = None,
               tsa_url: str | None = None, include_prompt: bool = False,
               replace_manifest: bool = False, edit_of=None, transcoded: bool = False) -> Path:
    """Sign the MP4/MOV (or AVI, GIF: `EMBED_MIME`) `src` into `dst` with a C2PA manifest; returns `dst`.

    `signer` is an `evalkit.provenance.signers.Signer` (`load_signer()` or
    `callback_signer(...)`). `source_type` is trained | capture | composite (or an IPTC URL).
    `generator` {"name", "version"} becomes the created action's softwareAgent; `params`
    (prompt -> prompt_sha256, seed, sampler, steps, guidance, weights_sha256, ...) the
    `org.evalkit.generation` assertion; `watermark` the `c2pa.watermarked` action and the
    `c2pa.soft-binding` assertion. `edit_of` (a signed MP4/MOV, often `src` itself) makes the
    manifest an edit: that file becomes the `parentOf` ingredient, its manifest store carried
    inside the new one, and the first action `c2pa.opened` (source_type must be None);
    `transcoded` records a re-encode. Raises one-line `EvalkitError`s."""
    import c2pa

    src, dst = _check_paths(src, dst)
    _check_named_as_is(src, sidecar=False)
    if src.suffix.lower() in MIME_BY_SUFFIX:
        duration_ms = _check_mp4(src)  # one-line VideoError for what is not a complete MP4/MOV
        crowded = too_many_boxes(src)
        if crowded:  # c2pa would parse it for minutes, deaf to Ctrl-C and kill
            raise BadInputError(crowded)
        from evalkit.video import probe_video

        # a video at all: an audio-only MP4 was signed "AI-generated video" (session 33)
        probe_video(src, check=False)
    else:  # AVI, GIF: ffmpeg's header check, one-line VideoError for what is not a video
        from evalkit.video import probe_video

        duration_ms = int(probe_video(src).duration * 1000) or None
    parent = Path(edit_of) if edit_of is not None else None
    if parent is not None and not carries_manifest(parent):
        raise SigningError(f"{parent}: carries no C2PA manifest, so there is no history to keep; "
                           "sign it without --edit")
    if parent is None and not replace_manifest and carries_manifest(src):
        raise SigningError(f"{src}: already carries a C2PA manifest; signing would discard that "
                           "provenance (use --edit to keep it as the parent ingredient, or sign the original)")
    manifest = build_manifest(title=dst.name, source_type=source_type, generator=generator,
                              params=params, watermark=watermark, include_prompt=include_prompt,
                              duration_ms=duration_ms, edit=parent is not None, transcoded=transcoded)
    # an evalkit Signer, or a c2pa.Signer made by the caller (then tsa_url is the caller's business)
    c2pa_signer = signer.c2pa_signer(tsa_url) if hasattr(signer, "c2pa_signer") else signer
    mime = EMBED_MIME[src.suffix.lower()]
    tmp = _tmp_beside(dst)
    try:
        with open(src, "rb") as fin, open(tmp, "x+b") as fout:
            builder = c2pa.Builder(manifest, context=_sign_context())
            try:
                if parent is not None:
                    with open(parent, "rb") as fp:
                        builder.add_ingredient({"title": parent.name, "relationship": "parentOf",
                                                "label": PARENT_ID}, EMBED_MIME.get(parent.suffix.lower(), "video/mp4"), fp)
                builder.sign(c2pa_signer, mime, fin, fout)
            finally:
                builder.close()
        keep_owner_mode(tmp, dst)  # a signed file rewritten keeps its mode and group
        os.replace(tmp, dst)
    except c2pa.C2paError as e:
        tmp.unlink(missing_ok=True)
        why = getattr(signer, "take_error", lambda: None)() or _one_line(e)
        raise SigningError(f"{src}: C2PA signing failed: {why}") from None
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise SigningError(f"{dst}: cannot write the signed file ({e.strerror}); check the folder") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst


SIDECAR_MIME = {".webm": "video/webm", ".mkv": "video/x-matroska", ".avi": "video/avi", **MIME_BY_SUFFIX}


def sidecar_path(dst) -> Path:
    """Where `sign --sidecar` writes the manifest store of `dst`: beside it, same stem, `.c2pa`
    (where `verify` looks for it)."""
    return Path(dst).with_suffix(".c2pa")


def sign_sidecar(src, dst, *, signer, source_type: str | None = "trained", generator: dict | str | None = None,
                 params: dict | None = None, watermark: WatermarkInfo | None = None,
                 tsa_url: str | None = None, include_prompt: bool = False) -> Path:
    """Sign any video `src` into a byte-identical copy `dst` and a C2PA manifest store beside it
    (`sidecar_path(dst)`, hard-bound to the copy's bytes by a data hash); returns the sidecar.

    For containers c2pa cannot embed a manifest in (WebM, Matroska) and for workflows that keep
    media files untouched. Both files are written under temporary names and renamed; a failure
    leaves neither. Raises one-line `EvalkitError`s."""
    import c2pa

    from evalkit.video import probe_video

    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise MissingResourceError(f"{src}: no such file; check the path")
    side = sidecar_path(dst)
    if _same_file(src, dst) or _same_file(src, side):
        raise BadInputError(f"{dst}: would overwrite the input; give another output path")
    if dst.suffix.lower() != src.suffix.lower():
        raise BadInputError(f"{dst}: the signed copy keeps the input's container ({src.suffix}); "
                            f"name the output {src.suffix}")
    if not dst.parent.is_dir():
        raise MissingResourceError(f"{dst}: folder {dst.parent} does not exist; create it first")
    _check_named_as_is(src, sidecar=True)
    # x.mkv and x.mp4 share the sidecar x.c2pa: signing the second overwrote the first's, which
    # then read as tampered
    other = [f.name for f in dst.parent.glob(f"{glob.escape(dst.stem)}.*")
             if f.suffix.lower() not in (".c2pa", dst.suffix.lower()) and f.suffix.lower() in SIDECAR_MIME]
    if side.exists() and other:
        raise BadInputError(f"{side}: is the sidecar of {other[0]} already (a sidecar is named by the video's stem); "
                            f"give {dst.name} another name")
    info = probe_video(src)  # a one-line VideoError for what is not a readable video
    if carries_manifest(src, container_must_parse=False):
        raise SigningError(f"{src}: already carries a C2PA manifest, which a sidecar would contradict; "
                           "sign the original")
    manifest = build_manifest(title=dst.name, source_type=source_type, generator=generator, params=params,
                              watermark=watermark, include_prompt=include_prompt,
                              duration_ms=int(info.duration * 1000) or None)
    c2pa_signer = signer.c2pa_signer(tsa_url) if hasattr(signer, "c2pa_signer") else signer
    tmp, tmp_side = _tmp_beside(dst), _tmp_beside(side)
    copied = False
    try:
        with open(src, "rb") as fin, open(tmp, "x+b") as fout:
            builder = c2pa.Builder(manifest, context=_sign_context())
            try:
                builder.set_no_embed()
                store = builder.sign(c2pa_signer, SIDECAR_MIME.get(src.suffix.lower(), "application/octet-stream"),
                                     fin, fout)
            finally:
                builder.close()
        with open(tmp_side, "xb") as f:
            f.write(store)
        keep_owner_mode(tmp, dst)  # a signed file rewritten keeps its mode and group
        os.replace(tmp, dst)
        copied = True
        os.replace(tmp_side, side)
    except c2pa.C2paError as e:
        why = getattr(signer, "take_error", lambda: None)() or _one_line(e)
        raise SigningError(f"{src}: C2PA signing failed: {why}") from None
    except OSError as e:
        if copied:  # the copy without its manifest would look unsigned: take it back
            dst.unlink(missing_ok=True)
        raise SigningError(f"{dst}: cannot write the signed file ({e.strerror}); check the folder") from None
    finally:
        tmp.unlink(missing_ok=True)
        tmp_side.unlink(missing_ok=True)
    return side


def default_payload(key, frames=None, *, digest: bytes | None = None) -> bytes:
    """64 bits bound to both the key and the content: the first 8 bytes of
    SHA-256("evalkit-wm-payload" | key fingerprint | SHA-256 of the frames). The same clip and
    key always get the same payload; the signed soft binding records it, so a stripped copy can
    be matched to its manifest. `digest`: that SHA-256, when the frames were hashed as a stream."""
    content = digest if digest is not None else hashlib.sha256(frames.tobytes()).digest()
    return hashlib.sha256(b"evalkit-wm-payload\0" + key.fingerprint.encode() + b"\0" + content).digest()[:8]


def _check_signer(signer) -> None:
    """A signer evalkit can sign with, else one line (None reached c2pa, which said "First
    argument must be a Signer or a format string (MIME type)")."""
    import c2pa

    if not (callable(getattr(signer, "c2pa_signer", None)) or isinstance(signer, c2pa.Signer)):
        raise BadInputError(f"signer: got {type(signer).__name__}; give a Signer: "
                            "evalkit.provenance.signers.load_signer() (the credentials of `evalkit keys init`, or "
                            "load_signer(cert, key)) or callback_signer(...)")


def sign_file(src, dst, signer, source_type: str | None = None, watermark: bool = False, wm_key=None,
              payload: bytes | None = None, *, generator: dict | str | None = None,
              params: dict | None = None, tsa_url: str | None = None, include_prompt: bool = False,
              wm_preset: str = "default", crf: int = 18, edit: bool = False, sidecar: bool = False,
              register: bool | str = True, registry=None, final_name=None) -> SignResult:
    """`evalkit sign`: sign `src` into `dst`, watermarking first when `watermark`.

    With `watermark`, the frames are decoded, marked with `wm_key` (a WatermarkKey or secret;
    default: `load_watermark_key()`, i.e. `watermark.key` of `evalkit keys init`) and `payload`
    (default `default_payload`), encoded as H.264 (CRF `crf`; sound, timing and tags copied as `write_video` does) to a
    temporary file beside `dst`, and that file is signed with the soft binding carrying the
    payload. Without it, this is `sign_video`. `source_type` None means "trained".

    `edit`: `src` already carries a C2PA manifest, and the new one records this signing as an
    edit of it (`src` becomes the parent ingredient, `c2pa.opened`; with `watermark` also
    `c2pa.transcoded`), so the history survives instead of being refused; `source_type` must
    then be None.

    `register` (with `watermark`): record the payload, what the manifest says and a thumbnail of
    the marked picture in the soft-binding registry (`registry`: its folder, default
    `registry.registry_dir()`), so that `verify` can find the manifest of a stripped copy and
    tell a copied mark from the original. A registry that cannot be written leaves the signed
    file in place and says why in `registry_error`. `register="defer"` leaves the recording to the
    caller (`pending_registration`, called once its output is kept). `final_name`: the name the
    record gives the signed file, when `dst` is a temporary file renamed after (`protect.protect_file`)."""
    src, dst = os_path(src, "sign_file source"), os_path(dst, "sign_file output")
    _check_signer(signer)
    if edit and source_type is not None:
        raise BadInputError("--edit takes the source type from the parent's manifest; leave out --source-type")
    if edit and sidecar:
        raise BadInputError("--edit and --sidecar together are not supported; sign the edit embedded (MP4/MOV)")
    if not edit:
        source_type = source_type or "trained"
    from evalkit.provenance.manifest_read import provenance_outside

    outside = provenance_outside(src) if Path(src).is_file() else None
    if outside:  # a history evalkit cannot carry as a parent ingredient: never dropped silently
        raise SigningError(f"{src}: its provenance is in {outside}, which "
                           + ("evalkit cannot keep as the parent of an edit yet (it keeps embedded manifests only, "
                              "and WebM/Matroska cannot embed one)" if edit else "signing would leave behind")
                           + ("; to sign the video as new instead, move the sidecar aside" if "sidecar" in outside
                              else "; to sign the video as new instead, remux it without the reference (ffmpeg -i IN "
                              "-c copy OUT)"))
    if sidecar and not watermark:
        side = sign_sidecar(src, dst, signer=signer, source_type=source_type, generator=generator, params=params,
                            tsa_url=tsa_url, include_prompt=include_prompt)
        return SignResult(path=Path(dst), watermarked=False, sidecar=side)
    if not watermark:
        path = sign_video(src, dst, signer=signer, source_type=source_type, generator=generator,
                          params=params, tsa_url=tsa_url, include_prompt=include_prompt,
                          edit_of=src if edit else None)
        return SignResult(path=path, watermarked=False, edit_of=Path(src).name if edit else None)

    from evalkit.provenance import watermark as wm
    from evalkit.provenance.credentials import load_watermark_key
    from evalkit.provenance.wm_scheme import WatermarkInputError
    from evalkit.provenance.wm_stream import embed_stream, scan_frames
    from evalkit.provenance.registry_segments import SegmentRecorder
    from evalkit.video import VideoLimits, iter_frames, probe_video, write_video
    from evalkit.video_facts import picture_tags

    if sidecar:  # any container write_video makes (the sidecar holds the manifest)
        from evalkit.video import _MUXERS

        if Path(dst).suffix.lower() not in _MUXERS:
            raise BadInputError(f"{dst}: a watermarked copy is written as H.264 in "
                                f"{', '.join(sorted(_MUXERS))}; name the output so")
        src, dst = _check_paths(src, Path(dst).with_suffix(".mp4"), need_c2pa_format=False)[0], Path(dst)
    else:
        src, dst = _check_paths(src, dst, need_c2pa_format=False)
    if source_type is not None:
        source_type_url(source_type)  # bad arguments fail before the decode, not after
    _software_agent(generator)
    _generation(params, include_prompt)
    if edit and not carries_manifest(src, container_must_parse=False):
        raise SigningError(f"{src}: carries no C2PA manifest, so there is no history to keep; "
                           "sign it without --edit")
    if not edit and carries_manifest(src, container_must_parse=False):
        raise SigningError(f"{src}: already carries a C2PA manifest; watermarking re-encodes the video "
                           "and would discard that provenance (use --edit to keep it as the parent "
                           "ingredient, or sign the original)")
    key = wm.make_key(wm_key) if wm_key is not None else load_watermark_key()
    # Streamed, two passes (`wm_stream`): memory holds one segment, not the video twice, so the
    # decoded-size limit does not apply; the frame and pixel limits still do.
    limits = VideoLimits.from_env().without_decode_budget()
    head = probe_video(src, limits=limits)
    fps = head.fps

    def progress(frames, what: str):  # two passes over a long video take minutes: shown on a terminal
        from tqdm.auto import tqdm

        from evalkit.safe_text import printable

        return tqdm(frames, total=head.frames or None, desc=f"{what} {printable(src.name)}", unit="frame",
                    disable=None, leave=False)
    try:
        times: list = []  # the source's clock: a variable frame rate and the sound's sync kept
        # each stretch's picture too, for the registry: an excerpt is compared with its own stretch
        windows = SegmentRecorder()
        stats = scan_frames(windows.watch(progress(iter_frames(src, limits=limits, times=times), "read")))
        if payload is None:
            payload = default_payload(key, digest=stats.sha256)
        marked = embed_stream(progress(iter_frames(src, limits=limits), "mark"), stats, bytes(payload), key,
                              config=wm_preset)
    except WatermarkInputError as e:  # a picture the mark cannot hold (under 32 px a side)
        # a fix that works for this input: only MP4/MOV, AVI and GIF are signed in place
        fix = ("sign it without --watermark" if src.suffix.lower() in EMBED_MIME else
               f"sign it without --watermark, with --sidecar (a {src.suffix or 'file without suffix'} is not signed in place)")
        raise BadInputError(f"{src}: cannot watermark it: {e}; {fix}") from None
    except EvalkitError:
        raise
    except ValueError as e:
        raise BadInputError(f"{src}: cannot watermark ({_one_line(e)})") from None
    tmp = _tmp_beside(dst)
    try:
        # the same picture in a player: sound, colour primaries and transfer (HDR), pixel aspect
        write_video(tmp, marked, fps=fps, crf=crf, pad=True, audio_from=src, times=times, metadata=kept_tags(src),
                    **picture_tags(src))
        info = WatermarkInfo(payload=bytes(payload), key_id=key.fingerprint, preset=str(wm_preset))
        if sidecar:
            side = sign_sidecar(tmp, dst, signer=signer, source_type=source_type,
                                generator=generator, params=params, watermark=info, tsa_url=tsa_url,
                                include_prompt=include_prompt)
        else:
            side = None
            sign_video(tmp, dst, signer=signer, source_type=source_type, generator=generator,
                       params=params, watermark=info, tsa_url=tsa_url, include_prompt=include_prompt,
                       edit_of=src if edit else None, transcoded=edit)
    finally:
        tmp.unlink(missing_ok=True)
    result = SignResult(path=dst, watermarked=True, payload=bytes(payload).hex(), key_id=key.fingerprint,
                        edit_of=src.name if edit else None, sidecar=side, warnings=tuple(reencode_losses(src)),
                        capture=source_type is not None and source_type_url(source_type) in CAPTURE_SOURCE_TYPES)
    if register == "defer":  # recorded by the caller once its output is kept (`generate`)
        return replace(result, pending_registration=_registration(result, stats.mean, registry, final_name,
                                                                  windows.result()))
    if register:
        registered, error = _registration(result, stats.mean, registry, final_name, windows.result())()
        result = replace(result, registered=registered, registry_error=error)
    return result


def _registration(result: SignResult, mean, registry, final_name=None, segments=None):
    """A call that records a signed, watermarked file in the soft-binding registry and returns
    (record, None) or (None, why not). What it records is read now, from the signed file."""
    from evalkit.provenance import registry as reg
    from evalkit.provenance.manifest_read import read_provenance

    from evalkit.provenance.manifest_history import effective_source_type

    try:
        prov, _ = read_provenance(result.path, manifest=result.sidecar)
        digest = sha256_file(result.path)
        # the video's origin all told: a watermarked edit of a capture states none itself
        prov = {**prov, "digital_source_type": effective_source_type(prov)}
    except EvalkitError as e:
        why = f"the payload was not recorded in the soft-binding registry: {e}"
        return lambda: (None, why)

    def record():
        try:
            path = reg.register(result.payload, result.key_id, mean, provenance=prov,
                                signed_file=final_name if final_name is not None else result.path,
                                sha256=digest, root=registry, segments=segments)
            return path, None
        except EvalkitError as e:
            return None, f"the payload was not recorded in the soft-binding registry: {e}"

    return record


__all__ = ["sign_video", "sign_file", "sign_sidecar", "sidecar_path", "build_manifest", "WatermarkInfo", "SignResult", "SigningError",
           "SOURCE_TYPES", "AI_SOURCE_TYPES", "WATERMARK_ALG", "GENERATION_LABEL", "has_c2pa_box", "carries_manifest", "EMBED_MIME",
           "default_payload", "source_type_url", "reencode_losses", "sniff_container"]
