"""Provenance for freshly generated clips: watermark and/or sign a file in place.

`evalkit generate --sign --watermark` hands every clip to `protect_file` while the output folder
is still being built, so that the folder appears only with every clip protected.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from evalkit import __version__
from evalkit.atomic import short_name
from evalkit.errors import EvalkitError
from evalkit.provenance import registry
from evalkit.provenance.c2pa import default_payload, sign_file
from evalkit.provenance.wm_grid import mean_frame
from evalkit.provenance.registry_segments import segment_thumbnails
from evalkit.video import read_video, write_video
from evalkit.video_facts import picture_tags


def generation_params(record: dict) -> dict:
    """What the manifest records of a generated clip (the prompt only as its SHA-256)."""
    return {"prompt_sha256": hashlib.sha256(record["prompt"].encode()).hexdigest(), "seed": record.get("seed"),
            "sampler": record.get("sampler"), "steps": record.get("steps"), "guidance": record.get("guidance"),
            "guidance_convention": record.get("guidance_convention"),
            # what else shapes a uvit clip (absent from the manifest before session 30)
            **{k: record[k] for k in ("guidance_rescale", "guidance_interval") if record.get(k) is not None},
            "model_weights_sha256": record.get("weights_sha256")}


def protect_file(path, record: dict, *, sign: bool, watermark: bool, signer=None, wm_key=None,
                 tsa_url: str | None = None, pending: list | None = None) -> dict:
    """Watermark and/or sign `path` in place (via a temporary file and a rename); returns the
    fields to add to the clip's index record. `tsa_url`: an RFC 3161 time-stamp authority for
    the signature. `pending`: where given, the soft-binding registrations are appended to it as
    calls (each returning (record, None) or (None, why not)) for the caller to make once the
    clips are kept: an interrupted `generate` registered clips it then threw away."""
    from evalkit.provenance import watermark as wm

    path = Path(path)
    if sign and signer is None:  # c2pa's own words ("First argument must be a Signer") named nothing
        from evalkit.errors import BadInputError

        raise BadInputError("protect_file(sign=True): give signer= (evalkit.provenance.signers.load_signer())")
    if watermark and wm_key is None:  # as signing with a watermark does: the key of `keys init`
        from evalkit.provenance.credentials import load_watermark_key

        wm_key = load_watermark_key()
    tmp = path.with_name(f".{short_name(path.stem)}.protect-{os.getpid()}{path.suffix}")
    extra: dict = {}
    try:
        if sign:
            res = sign_file(path, tmp, signer, source_type="trained", watermark=watermark, wm_key=wm_key,
                            generator={"name": str(record.get("model")), "version": f"evalkit {__version__}"},
                            params=generation_params(record), tsa_url=tsa_url, final_name=path,
                            register="defer" if pending is not None else True)
            if res.pending_registration is not None:
                pending.append(res.pending_registration)
            extra["signed"] = True
            if res.watermarked:
                extra["watermark_payload"] = res.payload
            if res.registry_error:
                extra["registry_error"] = res.registry_error
        elif watermark:
            times: list = []
            clip = read_video(path, times=times)
            key = wm.make_key(wm_key) if not isinstance(wm_key, wm.WatermarkKey) else wm_key
            payload = default_payload(key, clip.frames)
            marked = wm.embed(clip.frames, payload, key)
            # its timing, pixel aspect and colour tags kept, as `sign --watermark` keeps them
            write_video(tmp, marked, fps=clip.fps, times=times, **picture_tags(path))
            extra["watermark_payload"] = payload.hex()

            def record(payload=payload.hex(), key_id=key.fingerprint, mean=mean_frame(marked),
                       windows=segment_thumbnails(marked)):
                try:  # unsigned: the registry holds the payload and the picture, no manifest
                    return registry.register(payload, key_id, mean, signed_file=path, segments=windows), None
                except EvalkitError as e:
                    return None, str(e)

            if pending is not None:
                pending.append(record)
            else:
                error = record()[1]
                if error:
                    extra["registry_error"] = error
        else:
            return extra
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return extra
