"""Detectors by name: trained ones under `$EVALKIT_HOME/detectors/NAME/`, shipped ones in the
package (`detectors/weights/NAME/`, with their SHA-256 and recipe in `weights/registry.json`).
A name is looked up in that order, so a user who retrains `default` gets their own.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from evalkit.errors import BadInputError, MissingResourceError

SHIPPED = Path(__file__).parent / "weights"
DEFAULT = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BadInputError(f"detector name {name!r}: use 1-64 letters, digits, '_', '.', '-'")
    return name


def home_dir(create: bool = True) -> Path:
    """`$EVALKIT_HOME/detectors`; look-ups pass create=False (an absent home holds no detectors)."""
    from evalkit.home import evalkit_home

    return evalkit_home(create=create) / "detectors"


def _is_detector(p: Path) -> bool:
    return (p / "detector.json").is_file() and (p / "weights.safetensors").is_file()


DETECTOR_FILES = ("detector.json", "weights.safetensors")


def check_replaceable(folder: Path) -> Path:
    """`folder` as where a detector is saved: new, or a detector's folder holding only its two
    files (the save replaces it whole). A folder with other files lost them (NOTES.txt deleted
    without a word), and a file there left debris; both are refused, before the training."""
    from evalkit.atomic import check_writable

    folder = Path(folder)
    if folder.exists() or folder.is_symlink():
        if not folder.is_dir() or folder.is_symlink():
            raise BadInputError(f"{folder}: exists and is not a detector's folder; give another --out name")
        other = sorted(p.name for p in folder.iterdir() if p.name not in DETECTOR_FILES)
        if other or not _is_detector(folder):
            shown = ", ".join(other[:3]) + (" ..." if len(other) > 3 else "") if other else "no detector files"
            raise BadInputError(f"{folder}: holds {shown}, not only a detector (saving would delete it); give "
                                "another --out name, or move those files")
    return check_writable(folder)  # a read-only home: said now, not after the training


def list_detectors() -> dict[str, str]:
    """name -> where it lives ("home" or "shipped"); home wins on a clash. Hidden folders (a save
    staged or set aside by a process that was killed) are not detectors by name."""
    found = {}
    for where, root in (("shipped", SHIPPED), ("home", home_dir(create=False))):
        if root.is_dir():
            found.update({p.name: where for p in sorted(root.iterdir())
                          if not p.name.startswith(".") and _is_detector(p)})
    return found


def detector_path(name: str | None = None) -> Path:
    if name is not None and not name.strip():  # `--detector ""`: a mistake, not the default
        raise BadInputError("--detector is empty; give a detector's name (evalkit detectors list), or leave it out "
                            f"for {DEFAULT!r}")
    name = check_name(name or DEFAULT)
    for root in (home_dir(create=False), SHIPPED):
        if _is_detector(root / name):
            return root / name
    known = ", ".join(sorted(list_detectors())) or "none"
    raise MissingResourceError(f"detector {name!r} not found (available: {known}); train one with "
                               f"`evalkit detectors train --real DIR --fake DIR --out {name}`")


def weights_sha256(folder: Path) -> str:
    return hashlib.sha256((Path(folder) / "weights.safetensors").read_bytes()).hexdigest()


def load_detector(name: str | None = None):
    """The named detector (default: `default`), ready to `predict(clips)`."""
    from detectors.ensemble import Detector

    path = detector_path(name)
    try:
        det = Detector.load(path)
    except Exception as e:  # noqa: BLE001  any failure to load the detector's files means damaged files
        reason = " ".join(str(e).split())[:200]
        raise MissingResourceError(f"{path}: detector files are damaged ({type(e).__name__}: {reason}); "
                                   "retrain it with `evalkit detectors train`") from None
    det.weights_sha256 = weights_sha256(path)
    det.path = path
    return det
