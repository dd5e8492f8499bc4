"""A video's C2PA history: signing as an edit keeps the earlier manifest as the parent ingredient,
and `verify` reads the ingredients back (AI origin, inherited soft binding, failed ingredients),
also for manifests written by c2pa-python directly as another tool would. Real c2pa, real keys
made here, real MP4s. < 30 s."""

from __future__ import annotations

import json

import c2pa
import pytest
from evalkit.cli import main
from evalkit.errors import EXIT_BAD_INPUT, EXIT_OK, BadInputError, EvalkitError
from evalkit.provenance.c2pa import _SIGN_SETTINGS, IPTC, SOURCE_TYPES, SigningError, sign_file, sign_video
from evalkit.provenance.credentials import init_keys, load_watermark_key
from evalkit.provenance.signers import load_signer
from evalkit.provenance.manifest_history import MAX_DEPTH, MAX_NODES, ai_origin, history_truncated, ingredient_history
from evalkit.provenance.verdict import decide
from evalkit.provenance.verify import VERDICTS, format_result, verify_exit_code, verify_file
from evalkit.video import write_video
from evalkit.world import WorldConfig, make_clip

GEN = {"name": "uvit", "version": "small"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("history")
    creds = init_keys(root / "credentials")
    creds.watermark_key.write_text("7e57" * 16 + "\n")
    signer = load_signer(creds.signer_cert, creds.signer_key)
    src = write_video(root / "world.mp4", make_clip("test", 2, 5, WorldConfig(frames=16, size=128)))
    key = load_watermark_key(creds.watermark_key)
    marked = sign_file(src, root / "world.marked.mp4", signer, watermark=True, wm_key=key, generator=GEN).path
    return dict(root=root, creds=creds, signer=signer, src=src, marked=marked, key=key, trust=[creds.ca_cert])


def active_manifest(path) -> dict:
    with c2pa.Reader(str(path)) as r:
        store = json.loads(r.json())
    return store["manifests"][store["active_manifest"]]


def actions(manifest) -> list[str]:
    return [a["action"] for x in manifest["assertions"] if x["label"].startswith("c2pa.actions")
            for a in x["data"]["actions"]]


def sign_with_c2pa(env, src, dst, first_actions: list[dict], ingredient, relationship: str):
    """Sign `src` as another C2PA tool would: c2pa-python's Builder, one ingredient."""
    manifest = {"claim_generator_info": [{"name": "othertool", "version": "2.1"}], "title": dst.name,
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                    *first_actions, {"action": "c2pa.color_adjustments"}]}}]}
    return _sign_manifest(env, src, dst, manifest, ingredient, relationship)


def _sign_manifest(env, src, dst, manifest: dict, ingredient=None, relationship: str = "parentOf",
                   check: bool = True):
    """Sign `src` with a manifest definition given whole, as another tool would (`check=False`:
    one that does not check its own output against the standard's rules)."""
    settings = _SIGN_SETTINGS if check else {
        **_SIGN_SETTINGS, "verify": {**_SIGN_SETTINGS.get("verify", {}), "verify_after_sign": False}}
    b = c2pa.Builder(manifest, context=c2pa.Context(c2pa.Settings.from_dict(settings)))
    try:
        if ingredient is not None:
            with open(ingredient, "rb") as f:
                b.add_ingredient({"title": ingredient.name, "relationship": relationship, "label": "ing"},
                                 "video/mp4", f)
        with open(src, "rb") as fin, open(dst, "w+b") as fout:
            b.sign(env["signer"].c2pa_signer(None), "video/mp4", fin, fout)
    finally:
        b.close()
    return dst


def test_an_edit_keeps_the_ai_origin_and_the_soft_binding(env):
    edit = sign_file(env["marked"], env["root"] / "edit1.mp4", env["signer"], edit=True)
    assert edit.edit_of == "world.marked.mp4" and "as an edit of" in edit.summary()
    m = active_manifest(edit.path)
    assert actions(m)[0] == "c2pa.opened" and "c2pa.created" not in actions(m)
    assert [i["relationship"] for i in m["ingredients"]] == ["parentOf"]

    r = verify_file(edit.path, trust=env["trust"], wm_key=env["key"])
    prov = r["provenance"]
    assert prov["state"] == "trusted" and prov["digital_source_type"] is None
    assert r["verdict"] == "ai-generated (signed)"
    assert prov["ai_origin"]["via"] == "parent" and prov["ai_origin"]["depth"] == 1
    assert prov["ai_origin"]["digital_source_type"] == SOURCE_TYPES["trained"]
    assert prov["ai_origin"]["generator"] == "uvit small"
    (node,) = prov["ingredients"]
    assert node["title"] == "world.marked.mp4" and node["failures"] == [] and node["manifest"]
    # the watermark read is matched against the parent's soft binding
    assert prov["soft_binding"]["from_ingredient"] == "world.marked.mp4"
    assert r["watermark"]["matches_manifest"] is True
    assert any("edit (c2pa.opened)" in x and "world.marked.mp4" in x for x in r["reasons"])


def test_a_watermarking_edit_of_an_edit_reads_two_steps_back(env):
    e1 = sign_file(env["marked"], env["root"] / "e1.mp4", env["signer"], edit=True).path
    e2 = sign_file(e1, env["root"] / "e2.mp4", env["signer"], edit=True, watermark=True, wm_key=env["key"])
    assert actions(active_manifest(e2.path))[:3] == ["c2pa.opened", "c2pa.transcoded", "c2pa.watermarked"]
    r = verify_file(e2.path, trust=env["trust"], wm_key=env["key"])
    assert r["verdict"] == "ai-generated (signed)" and r["provenance"]["ai_origin"]["depth"] == 2
    assert [n["title"] for n in r["provenance"]["ingredients"]] == ["e1.mp4"]
    assert [n["title"] for n in r["provenance"]["ingredients"][0]["ingredients"]] == ["world.marked.mp4"]
    # its own soft binding (the new mark), not the inherited one
    assert "from_ingredient" not in r["provenance"]["soft_binding"]
    assert r["watermark"]["payload"] == e2.payload and r["watermark"]["matches_manifest"] is True


def test_edit_refusals(env):
    with pytest.raises(SigningError, match="no C2PA manifest"):
        sign_file(env["src"], env["root"] / "x.mp4", env["signer"], edit=True)
    with pytest.raises(BadInputError, match="source type"):
        sign_file(env["marked"], env["root"] / "x.mp4", env["signer"], edit=True, source_type="capture")
    with pytest.raises(SigningError, match="--edit"):  # without --edit the history is not dropped silently
        sign_file(env["marked"], env["root"] / "x.mp4", env["signer"])
    assert not (env["root"] / "x.mp4").exists()


def test_cli_sign_edit(env, monkeypatch, capsys):
    monkeypatch.setenv("EVALKIT_HOME", str(env["root"]))
    out = env["root"] / "cli-edit.mp4"
    args = ["sign", str(env["marked"]), str(out), "--cert", str(env["creds"].signer_cert),
            "--key", str(env["creds"].signer_key), "--edit"]
    assert main(args) == EXIT_OK
    assert "as an edit of world.marked.mp4" in capsys.readouterr().out and out.exists()
    assert main(args + ["--source-type", "trained"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "source type" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["verify", str(out), "--trust", str(env["creds"].ca_cert), "--no-detector"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "history:" in text and "parentOf 'world.marked.mp4': trainedAlgorithmicMedia" in text


def test_another_tools_edit_of_ai_media(env):
    """An edit signed by another C2PA tool (c2pa-python directly): opened + colour adjustments."""
    dst = sign_with_c2pa(env, env["src"], env["root"] / "other.mp4",
                         [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["ing"]}}], env["marked"], "parentOf")
    r = verify_file(dst, trust=env["trust"], wm_key=env["key"])
    assert r["verdict"] == "ai-generated (signed)" and r["provenance"]["claim_generator"] == "othertool 2.1"
    assert r["provenance"]["ai_origin"]["title"] == "world.marked.mp4"
    assert any("c2pa.opened, c2pa.color_adjustments" in x for x in r["reasons"])
    # the watermark is not in this file's pixels (the unmarked source was signed): the parent's
    # soft binding says one should be there
    assert r["watermark"]["detected"] is False
    assert any("soft binding of its ingredient" in x and "none was found" in x for x in r["reasons"])


def test_ai_component_and_capture_claims_over_ai_history(env):
    comp = sign_with_c2pa(env, env["src"], env["root"] / "comp.mp4",
                          [{"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCreation"},
                           {"action": "c2pa.placed", "parameters": {"ingredientIds": ["ing"]}}],
                          env["marked"], "componentOf")
    r = verify_file(comp, trust=env["trust"])
    assert r["verdict"] == "ai-composite (signed)" and r["provenance"]["ai_origin"]["via"] == "component"
    assert any("holds a component ('world.marked.mp4')" in x for x in r["reasons"])

    cap = sign_with_c2pa(env, env["src"], env["root"] / "cap.mp4",
                         [{"action": "c2pa.created", "digitalSourceType": SOURCE_TYPES["capture"]}],
                         env["marked"], "parentOf")
    r = verify_file(cap, trust=env["trust"])
    assert r["verdict"] == "conflicting signals" and r["verdict"] in VERDICTS


def test_a_tampered_parent_is_named(env, tmp_path):
    data = bytearray(env["marked"].read_bytes())
    i = data.rfind(b"mdat")
    data[i + 4 + 64] ^= 0xFF
    bad = tmp_path / "tampered.mp4"
    bad.write_bytes(bytes(data))
    r0 = verify_file(bad, trust=env["trust"])
    assert r0["verdict"] == "tampered"
    edit = sign_file(bad, tmp_path / "edit-of-tampered.mp4", env["signer"], edit=True).path
    r = verify_file(edit, trust=env["trust"])
    (node,) = r["provenance"]["ingredients"]
    assert any("mismatch" in c for c in node["failures"])
    assert any("did not validate when it was added" in x and "tampered.mp4" in x for x in r["reasons"])


def _store(n_levels: int, cycle: bool = False, fan: int = 1) -> dict:
    """A hostile store: a chain of n manifests (each the parent of the previous), optionally
    closing on itself, each with `fan` ingredients."""
    ms = {}
    for k in range(n_levels):
        nxt = f"m{k + 1}" if k + 1 < n_levels else ("m0" if cycle else None)
        ms[f"m{k}"] = {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [{"action": "c2pa.opened"}]}}],
                       "ingredients": [{"title": f"t{k}.{j}", "relationship": "parentOf", "active_manifest": nxt}
                                       for j in range(fan)] if nxt else []}
    last = f"m{n_levels - 1}"
    ms[last]["assertions"] = [{"label": "c2pa.actions.v2", "data": {"actions": [
        {"action": "c2pa.created", "digitalSourceType": SOURCE_TYPES["trained"]}]}}]
    return {"active_manifest": "m0", "manifests": ms}


def count(history) -> int:
    return sum(1 + count(n["ingredients"]) for n in history)


def test_history_is_bounded_against_hostile_stores():
    h = ingredient_history(_store(4), "m0")
    assert count(h) == 3 and ai_origin(h)["depth"] == 3
    h = ingredient_history(_store(5, cycle=True), "m0")  # m4 -> m0 again: not re-entered
    assert count(h) == 5
    assert not history_truncated(ingredient_history(_store(4), "m0"))
    deep = ingredient_history(_store(3 * MAX_DEPTH), "m0")
    assert count(deep) == MAX_DEPTH and history_truncated(deep)  # cut short, and it says so
    assert ingredient_history(_store(MAX_DEPTH + 1), "m0") and not history_truncated(
        ingredient_history(_store(MAX_DEPTH + 1), "m0"))  # exactly MAX_DEPTH ingredients deep: all read
    wide = ingredient_history(_store(6, fan=4), "m0")
    assert count(wide) <= MAX_NODES and history_truncated(wide)
    # malformed entries are skipped, never raised on
    junk = {"active_manifest": "a", "manifests": {"a": {"ingredients": [None, 3, {"active_manifest": ["x"]}],
                                                        "assertions": "no"}}}
    (node,) = ingredient_history(junk, "a")
    assert node["manifest"] is None and node["relationship"] == "componentOf"
    assert ingredient_history({"manifests": []}, "a") == [] and ai_origin([]) is None


def test_edit_of_a_non_mp4_parent_is_a_one_line_error(env, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(EvalkitError):
        sign_video(env["src"], tmp_path / "x.mp4", signer=env["signer"], source_type=None, edit_of=bad)
    assert not (tmp_path / "x.mp4").exists()


def _sign_created(env, src, dst, source_type: str):
    """Another tool's manifest with just a created action and its own spelling of the source type."""
    manifest = {"claim_generator_info": [{"name": "othertool", "version": "2.1"}], "title": dst.name,
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": source_type}]}}]}
    return _sign_manifest(env, src, dst, manifest)


@pytest.mark.parametrize("spelling,want", [
    ("https://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia/", "ai-generated (signed)"),
    ("digitalsourcetype:trainedAlgorithmicMedia", "ai-generated (signed)"),
    ("HTTP://CV.IPTC.ORG/newscodes/digitalsourcetype/compositewithtrainedalgorithmicmedia", "ai-composite (signed)"),
    ("http://cv.iptc.org/newscodes/digitalsourcetype/computationalCapture", "capture (signed)"),
    ("urn:example:not-an-iptc-term", "signed (other source type)"),
    ("https://example.com/not-iptc/trainedAlgorithmicMedia", "signed (other source type)"),
    ("http://cv.iptc.org/newscodes/digitalsourcetype/screenCapture", "signed (other source type)"),
])
def test_source_types_as_other_tools_spell_them(env, spelling, want):
    dst = _sign_created(env, env["src"], env["root"] / f"spelt-{abs(hash(spelling))}.mp4", spelling)

    def detector(clip):
        return 0.9
    detector.threshold = 0.7
    r = verify_file(dst, trust=env["trust"], detector=detector)
    assert r["verdict"] == want
    said = [x for x in r["reasons"] if x.startswith("The detector")]
    iptc = not spelling.startswith(("urn:", "https://example.com"))
    if not iptc:
        assert r["provenance"]["digital_source_type"] == spelling  # kept as written, not guessed at
        # quoted whole: a look-alike URL ending in an IPTC term must not read as that term
        assert f"The manifest declares the digital source type '{spelling}' (not an IPTC digital source type) " \
            "(no generator named; the claim was written by othertool 2.1)." in r["reasons"]
        assert said == ["The detector says generated (p_generated 0.900 >= 0.700)."]
    elif "screenCapture" in spelling:
        assert ("The manifest declares the digital source type screenCapture (no generator named; the claim was "
                "written by othertool 2.1).") in r["reasons"]
        # the manifest leaves the origin open, so the detector's read is the signal left to quote
        assert said == ["The detector says generated (p_generated 0.900 >= 0.700)."]
    elif "Capture" in spelling:
        assert said == ["The detector disagrees with the capture claim (p_generated 0.900 >= 0.700)."]
    else:
        assert said == []  # the signed claim settles the origin; the detector agrees and adds nothing
    if iptc:
        assert r["provenance"]["digital_source_type"].startswith(IPTC)


def test_a_phone_capture_claim_over_a_watermarked_picture_conflicts(env):
    dst = _sign_created(env, env["marked"], env["root"] / "phone-claim.mp4", "digitalsourcetype:computationalCapture")
    r = verify_file(dst, trust=env["trust"], wm_key=env["key"])
    assert r["verdict"] == "conflicting signals"
    assert any("claims a camera capture" in x and "watermark" in x for x in r["reasons"])



def test_a_manifests_text_cannot_forge_lines_of_the_report(env):
    """A software agent's name is the signer's to choose: a newline in it must not print a line
    that reads as evalkit's own, nor may a right-to-left override reorder what follows."""
    fake = "Camera\n  provenance: trusted, signer Reuters News (Reuters)\n  - Signed by Reuters News."
    manifest = {"claim_generator_info": [{"name": "othertool\u202e", "version": "1"}], "title": "x\x1b[2Jy.mp4",
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": SOURCE_TYPES["capture"],
                     "softwareAgent": {"name": fake, "version": "1\u202e"}}]}}]}
    dst = _sign_manifest(env, env["src"], env["root"] / "forged-lines.mp4", manifest)
    r = verify_file(dst, trust=env["trust"])
    assert r["provenance"]["generator"].startswith("Camera\n")  # the JSON keeps the value as signed
    text = format_result(r)
    assert not any(line.lstrip().startswith(("provenance: trusted, signer Reuters", "- Signed by Reuters"))
                   for line in text.splitlines())
    assert "made by Camera\\n  provenance: trusted, signer Reuters" in text and "1\\u202e" in text
    assert "\u202e" not in text and "\x1b" not in text
    from reports.verification import verification_report
    page = verification_report([r])
    assert "\u202e" not in page and "\x1b" not in page and "Camera\\n" in page


def test_a_malformed_manifest_is_not_called_tampering(env, tmp_path):
    """A claim v2 without actions breaks C2PA's rules as written; nothing changed after signing."""
    manifest = {"claim_generator_info": [{"name": "othertool", "version": "1"}], "title": "noactions.mp4",
                "assertions": [{"label": "com.example.thing", "data": {"x": 1}}]}
    dst = _sign_manifest(env, env["src"], tmp_path / "noactions.mp4", manifest, check=False)
    r = verify_file(dst, trust=env["trust"])
    assert r["provenance"]["failures"] == ["assertion.action.malformed"]
    assert r["verdict"] == "invalid manifest (malformed)" and r["verdict"] in VERDICTS
    assert verify_exit_code([r]) == 1  # still a failed check: its claims are not vouched for
    assert any("no check says the media" in x for x in r["reasons"])


def test_an_edit_of_another_tools_capture_is_a_capture(env, tmp_path):
    cap = _sign_created(env, env["src"], tmp_path / "phone.mp4", SOURCE_TYPES["capture"])
    edit = sign_file(cap, tmp_path / "phone.edit.mp4", env["signer"], edit=True).path
    r = verify_file(edit, trust=env["trust"], wm_key=env["key"])
    assert r["provenance"]["digital_source_type"] is None
    assert r["provenance"]["stated_origin"]["title"] == "phone.mp4"
    assert r["verdict"] == "capture (signed)"
    assert any("edit (c2pa.opened" in x and "'phone.mp4'" in x and "declares digitalCapture" in x for x in r["reasons"])


def test_a_history_cut_short_is_said():
    prov = {"state": "trusted", "digital_source_type": None, "signer": "S", "generator": None, "actions": [],
            "failures": [], "ingredients": [], "history_truncated": True}
    wm = {"checked": False, "detected": False, "payload": None, "p_value": 1.0, "matches_manifest": None}
    verdict, reasons = decide(True, prov, wm, {}, [])
    assert verdict == "signed (source not stated)"
    assert any(f"{MAX_DEPTH} edits deep" in x and "not shown" in x for x in reasons)
