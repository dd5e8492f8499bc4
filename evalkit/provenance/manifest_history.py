"""What one C2PA manifest says, and what its ingredients' manifests say: a video's history.

A video edited after it was signed (trimmed, colour-graded, re-encoded, watermarked) by a tool
that writes C2PA keeps its history as *ingredients*: the new manifest's `c2pa.opened` action
names a `parentOf` ingredient whose own manifest (carried in the same store) says how that
earlier video was made, e.g. `c2pa.created` with `trainedAlgorithmicMedia`. The active manifest
of such an edit declares no source type of its own, so a verifier that reads only it calls an
edited AI clip "source not stated". `manifest_summary` reads one manifest; `ingredient_history`
walks the ingredients (the store is untrusted input: depth and count are bounded, cycles cut);
`ai_origin` finds the nearest ingredient that declares an AI source type.

An ingredient's `failures` are the codes c2pa recorded when it was added (its validation
results), less `signingCredential.untrusted` and OCSP notes: whether a signer is trusted is
the reader's question, answered for the active manifest with the reader's own anchors.
"""

from __future__ import annotations

import base64
import binascii
import json

from evalkit.provenance.manifest_build import (
    AI_SOURCE_TYPES, COMPOSITE_AI_TYPES, GENERATION_LABEL, SOURCE_TYPES, WATERMARK_ALG, canonical_source_type,
)

MAX_DEPTH = 32  # ingredients of ingredients; real edit chains are a few steps deep
MAX_NODES = 64  # ingredients in all, over every level
NOT_A_FAILURE = ("signingCredential.untrusted", "signingCredential.ocsp.skipped")


def _agent(a) -> str | None:
    if isinstance(a, dict):
        if not a.get("name"):
            return None
        return " ".join(str(x) for x in (a["name"], a.get("version")) if x)
    return str(a) if a else None


def _codes(items) -> list[str]:
    return [str(i["code"]) for i in items or [] if isinstance(i, dict) and i.get("code")]


def soft_binding(data) -> dict | None:
    """A `c2pa.soft-binding` assertion as {alg, payload (hex), key_id}; None if malformed."""
    if not isinstance(data, dict):
        return None
    out = {"alg": data.get("alg"), "payload": None, "key_id": None}
    try:
        params = json.loads(data.get("alg_params") or "{}")
        out["key_id"] = params.get("key_id") if isinstance(params, dict) else None
    except (TypeError, ValueError):
        pass
    blocks = data.get("blocks")
    if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict):
        value = blocks[0].get("value")
        if isinstance(value, str):
            try:
                out["payload"] = base64.b64decode(value, validate=True).hex()
            except (binascii.Error, ValueError):
                out["payload"] = None
    return out


def manifest_summary(manifest) -> dict:
    """The fields of one manifest (a value of the reader's `manifests` map): actions, digital
    source type (the created action's, else the first stated) and `source_action`, the action
    that stated it; generator (the software agent of that action, the created one's first);
    `ai_edits`, every later action (edited, placed, ...) that declares an AI source type, with its
    agent (a capture retouched by a generative eraser states digitalCapture when created and
    trainedAlgorithmicMedia when edited: both are the truth); signer and issuer (from
    `signature_info`), claim generator, and when present the generation parameters, the soft
    binding and the training-and-mining entries."""
    m = manifest if isinstance(manifest, dict) else {}
    sig = m.get("signature_info") if isinstance(m.get("signature_info"), dict) else {}
    out = {"signer": sig.get("common_name") or None, "issuer": sig.get("issuer") or None,
           "digital_source_type": None, "generator": None, "actions": []}
    if isinstance(sig.get("time"), str):  # set only by an RFC 3161 time-stamp authority's token
        out["time_stamp"] = sig["time"]
    gens = m.get("claim_generator_info")
    if isinstance(gens, list) and gens:
        out["claim_generator"] = _agent(gens[0])
    for a in m.get("assertions") or []:
        if not isinstance(a, dict):
            continue
        label, data = str(a.get("label") or ""), a.get("data")
        if label.startswith("c2pa.actions") and isinstance(data, dict):
            for act in data.get("actions") or []:
                if not isinstance(act, dict):
                    continue
                name = str(act.get("action"))
                out["actions"].append(name)
                dst = canonical_source_type(act.get("digitalSourceType"))
                created = name == "c2pa.created"
                if dst and (out["digital_source_type"] is None
                            or (created and out.get("source_action") != "c2pa.created")):
                    out["digital_source_type"], out["source_action"] = dst, name
                    out["generator"] = _agent(act.get("softwareAgent")) or (out["generator"] if not created else None)
                elif created and act.get("softwareAgent") and not out["generator"]:
                    out["generator"] = _agent(act["softwareAgent"])
                if dst in AI_SOURCE_TYPES and not created:
                    out.setdefault("ai_edits", []).append(
                        {"action": name, "digital_source_type": dst, "agent": _agent(act.get("softwareAgent"))})
        elif label == GENERATION_LABEL and isinstance(data, dict):
            out["generation"] = data
        elif label.startswith("c2pa.soft-binding"):
            sb = soft_binding(data)
            if sb and (sb["alg"] == WATERMARK_ALG or "soft_binding" not in out):
                out["soft_binding"] = sb
        elif label.startswith("cawg.training-mining") and isinstance(data, dict):
            entries = data.get("entries") or {}
            if isinstance(entries, dict):
                out["training_mining"] = {str(k): (v or {}).get("use") if isinstance(v, dict) else None
                                          for k, v in entries.items()}
    return out


def _ingredient_failures(ing: dict) -> list[str]:
    res = ing.get("validation_results")
    codes = []
    if isinstance(res, dict):
        active = res.get("activeManifest")
        codes = _codes(active.get("failure")) if isinstance(active, dict) else []
    codes += _codes(ing.get("validation_status"))  # claim v1 ingredients
    return [c for c in dict.fromkeys(codes) if c not in NOT_A_FAILURE]


def ingredient_history(store: dict, label) -> list[dict]:
    """The ingredients of manifest `label` in a reader's store (`json.loads(reader.json())`),
    each {title, relationship, format, manifest (its label, or None when it had none),
    failures, **manifest_summary, ingredients: [...]}, nested as deep as MAX_DEPTH and at most
    MAX_NODES in all. A manifest already on the path is not entered again. Where the bounds cut
    the walk short, the node it stopped at (or the last one read) has `truncated: True`
    (`history_truncated`): an origin further back is unread, and a verifier must say so."""
    manifests = store.get("manifests") if isinstance(store, dict) else None
    manifests = manifests if isinstance(manifests, dict) else {}
    budget = [MAX_NODES]

    def walk(lbl, depth: int, path: frozenset) -> tuple[list[dict], bool]:
        m = manifests.get(lbl) if isinstance(lbl, str) else None
        if not isinstance(m, dict):
            return [], False
        if depth >= MAX_DEPTH:
            return [], bool(m.get("ingredients"))
        out, cut = [], False
        for ing in m.get("ingredients") or []:
            if not isinstance(ing, dict):
                continue
            if budget[0] <= 0:
                cut = True
                break
            budget[0] -= 1
            child = ing.get("active_manifest")
            child = child if isinstance(child, str) and child in manifests else None
            node = {"title": str(ing.get("title") or ""), "relationship": str(ing.get("relationship") or "componentOf"),
                    "format": ing.get("format") if isinstance(ing.get("format"), str) else None,
                    "manifest": child, "failures": _ingredient_failures(ing)}
            node.update(manifest_summary(manifests[child]) if child else manifest_summary({}))
            declared = canonical_source_type(ing.get("digital_source_type"))
            if declared and not node["digital_source_type"]:
                # the ingredient assertion's own field (c2pa.ingredient.v3): the signer of the
                # manifest that holds it says what the ingredient is, e.g. an unsigned AI clip placed in
                node["digital_source_type"], node["declared_by"] = declared, "ingredient"
            below, below_cut = (walk(child, depth + 1, path | {lbl}) if child and child not in path | {lbl}
                                else ([], False))
            node["ingredients"] = below
            if below_cut:
                node["truncated"] = True
            out.append(node)
        if cut and out:
            out[-1]["truncated"] = True
        return out, cut and not out

    return walk(label, 0, frozenset())[0]


def history_truncated(history: list[dict]) -> bool:
    """Whether `ingredient_history` stopped at its bounds before the history's end."""
    return any(n.get("truncated") for _d, n, _r in _nodes(history))


def _nodes(history: list[dict], depth: int = 1):
    """Breadth-first: (depth, node, relationships from the active manifest down to the node)."""
    level = [(n, (n["relationship"],)) for n in history]
    while level:
        nxt = []
        for n, rels in level:
            yield depth, n, rels
            nxt += [(c, rels + (c["relationship"],)) for c in n.get("ingredients") or []]
        level, depth = nxt, depth + 1


def ai_origin(history: list[dict]) -> dict | None:
    """The nearest ingredient whose manifest declares an AI digital source type, or records an AI
    edit of what it made (a capture retouched by a generative eraser: a composite), preferring one
    reached through parents only (the video *is* an edit of it) over a component (it holds a part
    of it): {title, depth, via ("parent" or "component"), digital_source_type, signer, generator,
    ai_edits when that is how}."""
    best = None
    for depth, n, rels in _nodes(history):
        dst = n.get("digital_source_type")
        if dst not in AI_SOURCE_TYPES and not n.get("ai_edits"):
            continue
        if dst not in AI_SOURCE_TYPES:  # made otherwise, then edited with AI (session 33: an edit of it read "capture")
            dst = SOURCE_TYPES["composite"]
        via = "parent" if all(r == "parentOf" for r in rels) else "component"
        cand = {"title": n["title"], "depth": depth, "via": via, "digital_source_type": dst,
                "signer": n.get("signer"), "generator": n.get("generator"), "failures": list(n["failures"])}
        if n.get("ai_edits"):
            cand["ai_edits"] = n["ai_edits"]
        if n.get("declared_by"):
            cand["declared_by"] = n["declared_by"]
        if best is None or (via == "parent" and best["via"] != "parent"):
            best = cand
        if via == "parent":
            break
    return best


def stated_origin(history: list[dict]) -> dict | None:
    """The nearest ingredient reached through parents only whose manifest states a digital
    source type (an edit's own manifest usually states none; its parent's says what the video
    was made as, e.g. a camera capture), in `ai_origin`'s shape; None if no parent states one."""
    for depth, n, rels in _nodes(history):
        if n.get("digital_source_type") and all(r == "parentOf" for r in rels):
            out = {"title": n["title"], "depth": depth, "via": "parent", "digital_source_type": n["digital_source_type"],
                   "signer": n.get("signer"), "generator": n.get("generator"), "failures": list(n["failures"])}
            if n.get("declared_by"):
                out["declared_by"] = n["declared_by"]
            return out
    return None


def inherited_soft_binding(history: list[dict]) -> dict | None:
    """The nearest evalkit soft binding among the parents (what a watermark read should match when
    the active manifest records an edit without marking again), with `from_ingredient` set."""
    for _depth, n, rels in _nodes(history):
        sb = n.get("soft_binding")
        if sb and sb.get("alg") == WATERMARK_ALG and all(r == "parentOf" for r in rels):
            return {**sb, "from_ingredient": n["title"]}
    return None


def effective_source_type(prov: dict) -> str | None:
    """What a manifest says the video is, all told: its own source type, a composite where an AI
    edit follows a non-AI creation, else its history's (an edit's own manifest states none: the
    nearest parent's, AI or not; an AI component makes a composite). For the soft-binding registry,
    whose record of an edit of a capture said nothing, so a marked edit of a capture re-signed or
    stripped read as generated (session 33)."""
    dst = prov.get("digital_source_type")
    if prov.get("ai_edits") and dst not in AI_SOURCE_TYPES:
        return SOURCE_TYPES["composite"]
    if dst:
        return dst
    origin = prov.get("ai_origin")
    if origin:
        t = origin["digital_source_type"]
        return t if origin["via"] == "parent" or t in COMPOSITE_AI_TYPES else SOURCE_TYPES["composite"]
    stated = prov.get("stated_origin")
    return stated["digital_source_type"] if stated else None


def failed_ingredients(history: list[dict]) -> list[dict]:
    return [{"title": n["title"], "depth": d, "failures": n["failures"]} for d, n, _ in _nodes(history) if n["failures"]]


__all__ = ["manifest_summary", "ingredient_history", "history_truncated", "ai_origin", "stated_origin",
           "effective_source_type",
           "inherited_soft_binding", "failed_ingredients", "soft_binding", "MAX_DEPTH", "MAX_NODES"]
