"""`evalkit keys init`, `sign` and `verify`: C2PA credentials, manifests and the watermark."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalkit.commands.options import CERT_HELP, KEY_HELP, WATERMARK_KEY_HELP, check_tsa, require, sentence
from evalkit.errors import BadInputError, MissingResourceError


@click.group()
def keys():
    """Signing credentials for C2PA."""


@keys.command("init")
@click.option("--dir", "directory", type=click.Path(readable=False, path_type=Path),
              help="Where to write them (default: $EVALKIT_HOME/credentials).")
@click.option("--org", default="evalkit development", show_default=True, help="Organisation name.")
@click.option("--force", is_flag=True, help="Replace existing credentials.")
def keys_init(directory, org, force):
    """Make a development root CA, an ES256 signing certificate that C2PA accepts, and a
    watermark key (private keys 0600)."""
    from evalkit.provenance.credentials import init_keys

    paths = init_keys(dir=directory, org=org, force=force)
    click.echo(paths.summary())
    if paths.warning:  # a shared /tmp-like folder (one others could swap files in is refused)
        from evalkit.safe_text import printable

        click.echo(f"evalkit: warning: {printable(paths.warning)}", err=True)


@click.command()
@click.argument("src", type=click.Path(readable=False, path_type=Path))
@click.argument("dst", type=click.Path(readable=False, path_type=Path))
@click.option("--cert", type=click.Path(readable=False, path_type=Path), help=sentence(CERT_HELP))
@click.option("--key", type=click.Path(readable=False, path_type=Path), help=sentence(KEY_HELP))
@click.option("--source-type", type=click.Choice(["trained", "capture", "composite"]), default=None,
              help="The IPTC digital source type of a new video (default: trained).")
@click.option("--watermark", is_flag=True, help="Embed the invisible watermark (re-encodes the video).")
@click.option("--edit", is_flag=True, help="SRC is already signed: keep its manifest as the parent ingredient "
              "and record this signing as an edit of it (c2pa.opened).")
@click.option("--sidecar", is_flag=True, help="Write the manifest beside DST, named by its stem (x.mkv: x.c2pa), and DST as an unchanged "
              "copy: for WebM/Matroska, which c2pa cannot embed in, or to keep media files untouched.")
@click.option("--tsa", metavar="URL", help="An RFC 3161 time-stamp authority: the signature then carries a "
              "trusted time, so it stays valid after the certificate expires (the only network access sign makes).")
@click.option("--no-register", is_flag=True, help="With --watermark: do not record the payload in the "
              "soft-binding registry ($EVALKIT_SOFT_BINDINGS, else $EVALKIT_HOME/soft-bindings).")
@click.option("--watermark-key", type=click.Path(readable=False, path_type=Path), help=sentence(WATERMARK_KEY_HELP))
def sign(src, dst, cert, key, source_type, watermark, edit, sidecar, tsa, no_register, watermark_key):
    """Sign a video with a C2PA manifest (and an invisible watermark) into DST."""
    from evalkit.provenance.c2pa import sign_file
    from evalkit.provenance.credentials import load_watermark_key
    from evalkit.provenance.signers import load_signer

    check_tsa(tsa)
    if watermark_key is not None and not watermark:
        raise BadInputError(f"--watermark-key {watermark_key}: it only applies with --watermark")
    signer = load_signer(cert, key)
    wm_key = load_watermark_key(watermark_key, required=True) if watermark else None
    result = sign_file(src, dst, signer, source_type=source_type, watermark=watermark, wm_key=wm_key,
                       edit=edit, sidecar=sidecar, tsa_url=tsa, register=not no_register)
    click.echo(result.summary())
    for line in result.warnings:  # what a --watermark re-encode left behind (cover art, another track, alpha)
        click.echo(f"evalkit: warning: {line}", err=True)
    if result.registry_error:  # on stderr with the prefix, as every warning (it went to stdout as "warning:")
        click.echo(f"evalkit: warning: {result.registry_error}", err=True)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option("--trust", type=click.Path(readable=False, path_type=Path), help="Trust anchors (e.g. your CA): PEM, a DER certificate or a PKCS#7 bundle.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option("--detector", "detector_name", default=None,
              help="Detector to consult (default: `default`, when one is available).")
@click.option("--no-detector", is_flag=True, help="Do not run a detector.")
@click.option("--manifest", type=click.Path(readable=False, path_type=Path),
              help="A .c2pa manifest store for FILE (a sidecar, or a downloaded remote manifest); one FILE only.")
@click.option("--fetch-remote", is_flag=True,
              help="Fetch a remote manifest a file names (the only network access verify makes).")
@click.option("--fragments", multiple=True, metavar="FILES",
              help="FILE is the init segment of a fragmented (DASH/HLS) stream: its media segments, as "
              "files, a folder or a quoted glob ('seg/*.m4s'). Repeatable; one FILE only.")
@click.option("--registry", type=click.Path(readable=False, path_type=Path), help="The soft-binding registry to look a "
              "payload up in (default: $EVALKIT_SOFT_BINDINGS, else $EVALKIT_HOME/soft-bindings).")
@click.option("--html", "html_out", type=click.Path(readable=False, path_type=Path),
              help="Also write a self-contained HTML report here: each file's verdict, frames and evidence.")
@click.option("--mlflow", "log_mlflow", is_flag=True,
              help="Record the verification as an MLflow run (experiment evalkit-verify): verdict counts, "
              "every result, the HTML page.")
@click.option("--watermark-key", type=click.Path(readable=False, path_type=Path), help=sentence(WATERMARK_KEY_HELP))
def verify(files, trust, as_json, detector_name, no_detector, manifest, fetch_remote, fragments, registry,
           html_out, log_mlflow, watermark_key):
    """Provenance, watermark and detector verdicts of videos. Exit 1 if any file is tampered or
    its signals conflict, 2 if any is unreadable (or a stream's init segment comes without its
    segments), 3 if any is not there."""
    from evalkit.clipset import expand_folders
    from evalkit.provenance.verify import format_result, load_trust, verify_exit_code, verify_file
    from evalkit.provenance.wm_keys import watermark_key_for_reading

    if manifest is not None and len(files) != 1:
        raise BadInputError(f"--manifest {manifest}: give it with one FILE (it is that file's manifest store)")
    if fragments and len(files) != 1:
        raise BadInputError(f"--fragments {fragments[0]}: give it with one FILE, the stream's init segment "
                            "(quote a glob so the shell does not expand it)")
    # a typo read as "not in the registry"
    require(registry, "dir", "folder", "give the soft-binding registry folder (or leave --registry out for the default)",
            label="--registry ")
    if html_out is not None:
        from evalkit.atomic import check_writable, check_not_input, check_output_file

        # a bad path fails now, not after the work; the evidence is never overwritten
        check_writable(check_not_input(check_output_file(html_out, "report.html"), [*files, manifest, trust, registry],
                                       "--html"))  # a read-only folder: said now, not after every file is judged
    if log_mlflow:
        from evalkit import tracking

        tracking.check_reachable()  # an unreachable store fails now, not after the work
    anchors = load_trust([trust] if trust else None)
    wm_key, wm_key_problem = watermark_key_for_reading(watermark_key)
    if wm_key_problem:  # the default key is optional here: said once, and in each file's reasons
        click.echo(f"evalkit: warning: the default watermark key cannot be used, so no watermark is checked: "
                   f"{wm_key_problem}", err=True)
    detector = None
    if not no_detector:
        from detectors.registry import list_detectors, load_detector

        # A named detector must exist and load; the default is used only when one is available,
        # and a damaged default does not stop provenance checks: it is said and left out.
        if detector_name:
            detector = load_detector(detector_name)
        elif "default" in list_detectors():
            try:
                detector = load_detector()
            except MissingResourceError as e:
                click.echo(f"evalkit: warning: {e}; verifying without the detector (--no-detector "
                           "silences this)", err=True)
    results = []
    for f in files if fragments else expand_folders(files):  # a folder: each of its videos
        r = verify_file(f, trust=anchors, wm_key=wm_key, detector=detector, manifest=manifest,
                        fetch_remote=fetch_remote, fragments=list(fragments) or None, registry=registry,
                        wm_key_problem=wm_key_problem)
        results.append(r)
        click.echo(json.dumps(r) if as_json else format_result(r))
    if html_out is not None:
        from reports.verification import write_verification_report

        write_verification_report(html_out, results)
        click.echo(f"evalkit: report written to {html_out}", err=True)
    if log_mlflow:
        import hashlib

        from reports.verification import VERIFY_EXPERIMENT, log_verification

        run_id = log_verification(results, html_out, detector=getattr(detector, "name", None),
                                  trust_sha256=hashlib.sha256(anchors.encode()).hexdigest() if anchors else None)
        click.echo(f"evalkit: MLflow run {run_id} in experiment '{VERIFY_EXPERIMENT}'", err=True)
    raise click.exceptions.Exit(verify_exit_code(results))


COMMANDS = [keys, sign, verify]  # what `evalkit.cli` adds to the `evalkit` group
