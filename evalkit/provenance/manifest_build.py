"""The C2PA manifest evalkit signs with: its vocabulary and its construction.

Kept apart from the signing of files (`c2pa`) because the reading side (`manifest_history`,
`verdict`) needs the same vocabulary without the file handling: the IPTC digital source types
(`SOURCE_TYPES`, `AI_SOURCE_TYPES`, `CAPTURE_SOURCE_TYPES`, `canonical_source_type`), evalkit's
labels (`WATERMARK_ALG`, `GENERATION_LABEL`, `PARENT_ID`), `WatermarkInfo` (what the soft
binding records) and `build_manifest`, the definition given to `c2pa.Builder`. Nothing here
touches a file or imports c2pa-python.

The manifest (claim v2, as c2pa-rs 0.91 writes it):

* `c2pa.actions.v2`: `c2pa.created` with the IPTC digital source type (`trainedAlgorithmicMedia`,
  `digitalCapture` or `compositeWithTrainedAlgorithmicMedia`) and the generator as
  `softwareAgent` ({name, version}); when watermarked also `c2pa.watermarked`.
* `org.evalkit.generation`: the generation parameters. A prompt is stored as `prompt_sha256`
  (SHA-256 of its UTF-8 text), never as text unless `include_prompt=True`.
* `cawg.training-mining`: `notAllowed` for `cawg.ai_generative_training`, `cawg.ai_inference`,
  `cawg.ai_training` and `cawg.data_mining` (the CAWG training-and-data-mining entries).
* when watermarked, `c2pa.soft-binding`: `alg` "org.evalkit.watermark.v1", one block whose
  `scope` is the whole clip (`timespan` in ms) and whose `value` is the payload in base64 (as in
  the C2PA examples), `alg_params` naming the key id (the key's public fingerprint) and preset.
* the hard binding (`c2pa.hash.bmff.v3` for MP4) is added by c2pa itself.
* an edit (`edit=True`, `evalkit sign --edit`): the signed input becomes the `parentOf`
  ingredient (its manifest store carried in the new one), and `c2pa.opened` of it replaces
  `c2pa.created`, stating no source type (the parent's manifest holds it); a watermarking edit
  adds `c2pa.transcoded`. `verify` reads the history back (`manifest_history`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from evalkit.errors import BadInputError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
SOURCE_TYPES = {
    "trained": IPTC + "trainedAlgorithmicMedia",
    "capture": IPTC + "digitalCapture",
    "composite": IPTC + "compositeWithTrainedAlgorithmicMedia",
}
# C2PA's own source types (c2pa-rs writes trainedAlgorithmicData here, not under IPTC's address)
C2PA_SOURCE_TYPE = "http://c2pa.org/digitalsourcetype/"
AI_SOURCE_TYPES = frozenset([IPTC + t for t in (
    "trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia",
    "compositeSynthetic", "trainedAlgorithmicData")] + [C2PA_SOURCE_TYPE + "trainedAlgorithmicData"])
# AI-made parts in other media: the whole is a composite, not a generated video
COMPOSITE_AI_TYPES = frozenset(IPTC + t for t in ("compositeWithTrainedAlgorithmicMedia", "compositeSynthetic"))
# Camera-made: a capture claim that an AI signal contradicts (computationalCapture: a phone's
# multi-frame processing, still a capture; compositeCapture: several captures combined).
CAPTURE_SOURCE_TYPES = frozenset(IPTC + t for t in (
    "digitalCapture", "computationalCapture", "compositeCapture", "negativeFilm", "positiveFilm"))
# The IPTC terms tools write (NewsCodes "digitalsourcetype"), by their lower-case spelling.
_IPTC_TERMS = {t.lower(): t for t in (
    "digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print", "humanEdits",
    "minorHumanEdits", "compositeCapture", "algorithmicallyEnhanced", "dataDrivenMedia", "digitalArt",
    "digitalCreation", "virtualRecording", "compositeSynthetic", "trainedAlgorithmicMedia",
    "algorithmicMedia", "screenCapture", "compositeWithTrainedAlgorithmicMedia", "trainedAlgorithmicData")}
C2PA_TERMS = ("trainedAlgorithmicData", "empty")


def canonical_source_type(value) -> str | None:
    """A digital source type as the C2PA spec spells it (http://cv.iptc.org/newscodes/
    digitalsourcetype/TERM), from the variants tools write: https, a trailing slash, www, another
    case, the bare term, or the `digitalsourcetype:TERM` QCode. Anything else comes back as given
    (a stripped string); None for nothing."""
    if not isinstance(value, str) or not value.strip():
        return None
    v = value.strip()
    low = v.lower().rstrip("/")
    for prefix in ("https://", "http://"):
        low = low[len(prefix):] if low.startswith(prefix) else low
    low = low[4:] if low.startswith("www.") else low
    if low.startswith("c2pa.org/digitalsourcetype/"):  # C2PA's own vocabulary
        term = {t.lower(): t for t in C2PA_TERMS}.get(low[len("c2pa.org/digitalsourcetype/"):])
        return C2PA_SOURCE_TYPE + term if term else v
    for head in ("cv.iptc.org/newscodes/digitalsourcetype/", "digitalsourcetype:"):
        if low.startswith(head):
            low = low[len(head):]
            break
    else:
        if "/" in low or ":" in low:
            return v
    term = _IPTC_TERMS.get(low)
    return IPTC + term if term else v


WATERMARK_ALG = "org.evalkit.watermark.v1"
GENERATION_LABEL = "org.evalkit.generation"
TRAINING_MINING = {"cawg.ai_generative_training": {"use": "notAllowed"},
                   "cawg.ai_inference": {"use": "notAllowed"},
                   "cawg.ai_training": {"use": "notAllowed"},
                   "cawg.data_mining": {"use": "notAllowed"}}
PARENT_ID = "evalkit-parent"  # the label that ties `c2pa.opened` to the parent ingredient
MAX_PARAMS_BYTES = 64 << 10


@dataclass(frozen=True)
class WatermarkInfo:
    """What the soft binding says about the watermark in the signed video."""

    payload: bytes  # 8 to 32 bytes, as given to `watermark.embed`
    key_id: str  # the watermark key's public fingerprint (never the secret)
    preset: str = "default"
    alg: str = WATERMARK_ALG

    def __post_init__(self):
        if not isinstance(self.payload, (bytes, bytearray)) or not 8 <= len(self.payload) <= 32:
            raise BadInputError("a watermark payload is 8 to 32 bytes")
        if not isinstance(self.key_id, str) or not self.key_id:
            raise BadInputError("a watermark key id is a non-empty string (WatermarkKey.fingerprint)")

    @property
    def payload_hex(self) -> str:
        return bytes(self.payload).hex()


def source_type_url(source_type: str) -> str:
    if source_type in SOURCE_TYPES:
        return SOURCE_TYPES[source_type]
    if isinstance(source_type, str) and source_type.startswith(IPTC):
        return source_type
    raise BadInputError(f"source type {source_type!r}: choose trained, capture or composite "
                        f"(or a full IPTC digital source type URL)")


def _software_agent(generator) -> dict | None:
    if generator is None:
        return None
    if isinstance(generator, str):
        generator = {"name": generator}
    if not isinstance(generator, dict) or not str(generator.get("name") or "").strip():
        raise BadInputError(f"generator {generator!r}: give a dict with a 'name' (and a 'version')")
    agent = {"name": str(generator["name"])}
    if generator.get("version") is not None:
        agent["version"] = str(generator["version"])
    return agent


def _generation(params: dict | None, include_prompt: bool) -> dict | None:
    if params is None:
        return None
    if not isinstance(params, dict):
        raise BadInputError(f"generation parameters must be a dict, got {type(params).__name__}")
    out = {}
    for k, v in params.items():
        if k == "prompt":
            if v is None:
                continue
            out["prompt_sha256"] = hashlib.sha256(str(v).encode("utf-8")).hexdigest()
            if include_prompt:
                out["prompt"] = str(v)
        else:
            out[str(k)] = v
    try:
        text = json.dumps(out, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise BadInputError(f"generation parameters are not plain JSON values ({e})") from None
    if len(text) > MAX_PARAMS_BYTES:
        raise BadInputError(f"generation parameters are {len(text)} bytes of JSON, over "
                            f"{MAX_PARAMS_BYTES}; keep hashes, not contents")
    return json.loads(text)


def build_manifest(*, title: str, source_type: str | None = "trained", generator=None,
                   params: dict | None = None, watermark: WatermarkInfo | None = None,
                   include_prompt: bool = False, duration_ms: int | None = None,
                   edit: bool = False, transcoded: bool = False) -> dict:
    """The manifest definition given to `c2pa.Builder` (see the module docstring). With `edit`
    the first action is `c2pa.opened` of the parent ingredient `PARENT_ID` (added by the caller)
    instead of `c2pa.created`, with no source type of its own (the parent's manifest holds it);
    `transcoded` adds `c2pa.transcoded` (the video was re-encoded)."""
    from evalkit import __version__

    if edit:
        if source_type is not None:
            raise BadInputError("an edit states no source type of its own (its parent's manifest "
                                "holds it); leave the source type out")
        first = {"action": "c2pa.opened", "parameters": {"ingredientIds": [PARENT_ID]}}
    else:
        first = {"action": "c2pa.created", "digitalSourceType": source_type_url(source_type or "trained")}
    agent = _software_agent(generator)
    if agent:
        first["softwareAgent"] = agent
    actions = [first]
    if transcoded:
        actions.append({"action": "c2pa.transcoded"})
    assertions = []
    gen = _generation(params, include_prompt)
    if gen is not None:
        assertions.append({"label": GENERATION_LABEL, "data": gen})
    assertions.append({"label": "cawg.training-mining", "data": {"entries": TRAINING_MINING}})
    if watermark is not None:
        actions.append({"action": "c2pa.watermarked",
                        "parameters": {"description": f"invisible watermark {watermark.alg}, "
                                                      f"key {watermark.key_id}"}})
        scope = {"timespan": {"start": 0, "end": int(duration_ms)}} if duration_ms else {}
        assertions.append({"label": "c2pa.soft-binding", "data": {
            "alg": watermark.alg,
            "name": "evalkit invisible watermark payload",
            "alg_params": json.dumps({"key_id": watermark.key_id, "preset": watermark.preset,
                                      "payload_bits": 8 * len(watermark.payload),
                                      "value_encoding": "base64"}, sort_keys=True),
            "blocks": [{"scope": scope, "value": base64.b64encode(bytes(watermark.payload)).decode()}],
        }})
    return {
        "claim_generator_info": [{"name": "evalkit", "version": __version__}],
        "title": title,
        "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}}, *assertions],
    }
