"""Migrate stored voice profiles (or any embedding file) through a fitted aligner, file to file.

The offline half of a model upgrade: profiles enrolled with the old model X are mapped once into the scoring space
of an aligner, and the runtime then compares them with new-model embeddings mapped by the same aligner's runtime
side (the identity for NESSA M2, so plain new-model embeddings)::

    python -m nessa_lib.migrate models/fit_aligners/nessa-m2/xvector-ecapa.safetensors profiles_xvector.npz \\
        profiles_migrated.npz

Input and output are pickle-free embedding files (:mod:`nessa_lib.embeddings`); the output keeps the ids and
carries the id of the space it now lives in (:func:`space_id`). The input is never modified, and nothing is
written unless every row maps.

At the next upgrade, profiles go through a chain of aligners, in upgrade order (:mod:`nessa_lib.chain`)::

    python -m nessa_lib.migrate nessa-m2/v1-v2.safetensors nessa-m2/v2-v3.safetensors profiles_v1.npz \\
        profiles_v3.npz

Each aligner must take the profiles the one before it left: its enrollment model id is the space they live in
(after M2, the runtime model's; after M1 or linear, still the old model's; after M3, a new space that only an
aligner fitted from it accepts). A chain that does not connect is refused before anything is read, naming both
files and both ids; the output's provenance lists every aligner of the chain (file, sha256, method, ids), and
``--check`` checks the whole chain (the first model's sample against the last model's).

Before trusting an aligner with real profiles, check it on a small paired sample of the target traffic (the same
utterances embedded by X and by Y, :mod:`nessa_lib.deployment`)::

    python -m nessa_lib.migrate ALIGNER profiles_xvector.npz migrated.npz --check sample_x.npz sample_y.npz --strict

``--check`` warns when the sample's pair agreement falls below the aligner's fit data, when the mapped sample has
collapsed or is scrambled (non-pair cosines, pair identification rate against the fit data's), and, when the
embedding files carry speaker labels, when the aligned system is not better than keeping X (X/X EER on the same
trials); ``--strict`` then refuses to migrate (exit status 2), naming each problem and the files.

Shipping a threshold. A calibration file (:mod:`nessa_lib.evaluation.calibration`: the score-to-LLR map and the
thresholds chosen per FAR target on calibration trials, made for this aligner) is read with ``--calibration FILE``,
or found beside the aligner (:func:`~nessa_lib.evaluation.calibration.calibration_path`, ``--no-calibration`` to
skip it). A file made for another aligner is refused (exit status 1) before anything is written. The migrated file's
provenance (:func:`read_provenance`, a JSON string in the ``.npz``, still pickle-free) then records the calibration,
the thresholds and the calibration file's name and sha256, and :func:`shipped_threshold` reads a threshold back::

    python -m nessa_lib.migrate ALIGNER profiles_xvector.npz migrated.npz --calibration nessa-m2.calibration.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import zipfile
from pathlib import Path

import numpy as np

from nessa_lib import align, embeddings
from nessa_lib.chain import AlignerChain, space_id  # noqa: F401 (part of this module's API since before chains)
from nessa_lib.encoders.hub import file_sha256

logger = logging.getLogger(__name__)

SIDES = ("enrollment", "runtime")
_CHAIN_CALIBRATION = ("a calibration file is made for one aligner's scores; a chain's scores differ from its last "
                      "aligner's (each hop adds its errors), so no threshold ships with a chained migration: "
                      "migrate without a calibration (--no-calibration) and calibrate the chain on trials of its own")
_CHAIN_RUNTIME = ("a chain of aligners migrates stored profiles (the enrollment side); the runtime side of a chain is "
                  "its last aligner's runtime side: map runtime embeddings with that aligner alone")
PROVENANCE_KEY = "provenance"  # the .npz entry holding the migration record (a 0-d unicode array of JSON)
PROVENANCE_FORMAT = "nessa-migration"


def migrate_embeddings(aligner: align.Aligner, emb: embeddings.EmbeddingSet, *, side: str = "enrollment",
                       source: str | None = None, chunk: int = 65536, progress: bool = False
                       ) -> embeddings.EmbeddingSet:
    """Map an embedding set through one side of an aligner, in chunks; ids are kept.

    Parameters
    ----------
    aligner : Aligner or nessa_lib.chain.AlignerChain
        A fitted aligner (:func:`nessa_lib.align.load`), or a chain of them (:func:`nessa_lib.chain.load_chain`,
        enrollment side only).
    emb : EmbeddingSet
        Profiles or embeddings made by the model the aligner expects on ``side``.
    side : {"enrollment", "runtime"}
        Which side of the aligner maps them.
    source : str, optional
        Where ``emb`` came from, named in error messages.
    chunk : int
        Rows mapped at a time (bounds memory for millions of profiles).
    progress : bool
        Show a tqdm bar over chunks.

    Returns
    -------
    EmbeddingSet
        Unit-norm rows in the aligner's space, ``model_id`` = :func:`space_id`.

    Raises
    ------
    ValueError
        Unknown side; embeddings of another model than the aligner was fitted for; wrong dimension; NaN/inf.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(12, 3))
    >>> a = align.fit("linear", x, 2 * x, np.arange(12) // 3, enroll_model_id="X@1", runtime_model_id="Y@1")
    >>> e = embeddings.EmbeddingSet(x[:2], np.array(["p1", "p2"]), np.array(["s1", "s2"]), "Y@1")
    >>> migrate_embeddings(a, e, side="runtime").model_id
    'X@1'
    """
    from tqdm.auto import tqdm


    if side not in SIDES:
        raise ValueError(f"side must be one of {list(SIDES)}, got {side!r}")
    is_chain = isinstance(aligner, AlignerChain)
    if is_chain and side != "enrollment" and len(aligner.aligners) > 1:
        raise ValueError(_CHAIN_RUNTIME)
    expected = aligner.enroll_model_id if side == "enrollment" else aligner.runtime_model_id
    if expected is None:
        logger.warning("%s: the aligner records no %s model id, so the model that made these embeddings (%s) "
                       "cannot be checked", source or "embeddings", side, emb.model_id)
    mapper = aligner.map_enrollment if side == "enrollment" else aligner.map_runtime
    n = len(emb.embeddings)
    if n == 0:
        raise ValueError(f"{source or 'embeddings'}: no rows to migrate")
    chunk = max(1, int(chunk))
    starts = range(0, n, chunk)
    bar = tqdm(starts, desc=f"migrate ({aligner.method}, {side})", disable=not progress or len(starts) < 2,
               unit="chunk")
    # Each chunk lands in its rows of one preallocated array: peak memory is the input plus the output, where a
    # list of chunks stacked at the end held the output twice (10^6 x 128 profiles peaked at 4.5 x their size).
    out = None
    for s in bar:
        part = mapper(emb.embeddings[s:s + chunk], model_id=emb.model_id, source=source)
        if out is None:
            out = np.empty((n, part.shape[1]), dtype=part.dtype)
        out[s:s + len(part)] = part
    space = (aligner.space_id if is_chain and side == "enrollment" else
             space_id(aligner.aligners[-1] if is_chain else aligner))
    return embeddings.EmbeddingSet(out, emb.utt_ids, emb.speaker_ids, space)


def calibration_record(path, aligner) -> dict:
    """What a migrated file records of a calibration file: its content, name and sha256.

    The file is read with :func:`nessa_lib.evaluation.calibration.load_calibration`, so one made for another
    aligner than ``aligner`` (or for none) is refused with a ``ValueError`` naming it; a missing file raises
    ``FileNotFoundError`` naming it.

    Returns
    -------
    dict
        ``file`` (name), ``sha256``, ``system``, ``scale`` / ``offset`` / ``prior`` (``None`` when the file holds
        no score-to-LLR map), ``thresholds`` (a list of ``{"far_target", "threshold"}``) and ``accept_rule``.
    """
    from nessa_lib.evaluation.calibration import load_calibration

    path = Path(path)
    saved = load_calibration(path, aligner)
    cal = saved.calibration
    return dict(file=path.name, sha256=file_sha256(path), system=saved.system,
                scale=None if cal is None else cal.scale, offset=None if cal is None else cal.offset,
                prior=None if cal is None else cal.prior,
                thresholds=[{"far_target": f, "threshold": t} for f, t in sorted(saved.thresholds.items())],
                accept_rule="score >= threshold")


def _write_with_provenance(out_path: Path, emb: embeddings.EmbeddingSet, provenance: dict) -> None:
    """:func:`nessa_lib.embeddings.save_embeddings` plus a ``provenance`` entry, atomically.

    The embedding writer (and its checks) writes a partial file, the record is appended to its zip, and only then
    does the partial file replace ``out_path``; it is removed when anything fails.
    """
    text = json.dumps(provenance, indent=1, sort_keys=True, allow_nan=False)
    part = out_path.with_name(out_path.name + ".partial.npz")
    try:
        embeddings.save_embeddings(part, emb)
        with zipfile.ZipFile(part, "a") as zf, zf.open(f"{PROVENANCE_KEY}.npy", "w") as f:
            np.lib.format.write_array(f, np.array(text), allow_pickle=False)
        part.replace(out_path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def migrate_file(aligner_path, in_path, out_path, *, side: str = "enrollment", overwrite: bool = False,
                 progress: bool = False, calibration=None) -> embeddings.EmbeddingSet:
    """Migrate one embedding file through an aligner file, or a chain of them; see the module docstring.

    ``aligner_path`` is one path, or a sequence of paths in upgrade order (v1 -> v2, v2 -> v3, ...): the profiles
    then go through every aligner's enrollment side (:mod:`nessa_lib.chain`); a chain whose model ids do not
    connect is refused (:class:`nessa_lib.chain.ChainError`, naming both files and both ids) before anything is
    read or written. A chain migrates the enrollment side only and ships no calibration. Its provenance
    (``format_version`` 2) has ``aligner`` None and ``chain``: one record per aligner, in order (file, sha256,
    method, model ids, fingerprint, ``profile_space``: where it left the profiles).

    Refuses (``ValueError`` / ``FileExistsError`` / ``IsADirectoryError``, naming the file) to write over its input,
    into a directory or, unless ``overwrite``, over an existing file; the output is written atomically, only once
    every row has mapped, and no temporary file is left behind when anything fails. Memory: the input and the
    output embeddings once each (the rows are mapped in chunks into the output).

    The output carries a provenance record (:func:`read_provenance`): the aligner file (name, sha256, method,
    fingerprint), the side and the input's name, and, with ``calibration`` (a calibration file made for this
    aligner, :func:`calibration_record`; read before any row is mapped, so a file made for another aligner is
    refused with nothing written), the calibration and its thresholds (:func:`shipped_threshold`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> x = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    >>> align.fit("nessa-m2", x, x[:, ::-1].copy(), np.arange(12) // 3, max_epochs=2, hidden_dim=8,
    ...           enroll_model_id="X@1", runtime_model_id="Y@1").save(os.path.join(d, "m2.safetensors"))
    >>> embeddings.save_embeddings(os.path.join(d, "profiles.npz"), embeddings.EmbeddingSet(
    ...     x[:2], np.array(["p1", "p2"]), np.array(["s1", "s2"]), "X@1"))
    >>> out = migrate_file(os.path.join(d, "m2.safetensors"), os.path.join(d, "profiles.npz"),
    ...                    os.path.join(d, "migrated.npz"))
    >>> out.model_id, out.embeddings.shape
    ('Y@1', (2, 3))
    """
    in_path, out_path = Path(in_path), Path(out_path)
    if out_path.resolve() == in_path.resolve():
        raise ValueError(f"{out_path}: refusing to write the migrated embeddings over their input; "
                         "write them to another file")
    if out_path.is_dir():
        raise IsADirectoryError(f"{out_path} is a directory; name the file to write the migrated embeddings to")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass overwrite=True to replace it")
    from nessa_lib.chain import load_chain
    from nessa_lib.evaluation.calibration import aligner_identity

    paths = _aligner_paths(aligner_path)
    if len(paths) > 1:
        if side != "enrollment":
            raise ValueError(_CHAIN_RUNTIME)
        if calibration is not None:
            raise ValueError(_CHAIN_CALIBRATION)
        aligner = load_chain(paths)  # ChainError naming the break, before the input is read
    else:
        aligner = align.load(paths[0])
    cal = None if calibration is None else calibration_record(calibration, aligner)
    emb = embeddings.load_embeddings(in_path)
    out = migrate_embeddings(aligner, emb, side=side, source=str(in_path), progress=progress)
    del emb  # the input's rows are no longer needed: the writer's own temporaries may use their memory
    if len(paths) == 1:
        provenance = dict(format=PROVENANCE_FORMAT, format_version=1, side=side, input=in_path.name,
                          space_id=out.model_id,
                          aligner=dict(file=paths[0].name, sha256=file_sha256(paths[0]), **aligner_identity(aligner)),
                          calibration=cal)
    else:
        from nessa_lib.chain import profile_space

        links = [dict(file=p.name, sha256=file_sha256(p), **aligner_identity(a), profile_space=profile_space(a))
                 for p, a in zip(paths, aligner.aligners)]
        provenance = dict(format=PROVENANCE_FORMAT, format_version=2, side=side, input=in_path.name,
                          space_id=out.model_id, aligner=None, chain=links, calibration=None)
    _write_with_provenance(out_path, out, provenance)
    return out


def _aligner_paths(aligner_path) -> list[Path]:
    """One aligner path or a sequence of them (a chain), as a non-empty list of paths."""
    if isinstance(aligner_path, (str, Path)):
        return [Path(aligner_path)]
    paths = [Path(p) for p in aligner_path]
    if not paths:
        raise ValueError("no aligner file given")
    return paths


def read_provenance(path) -> dict | None:
    """The provenance record of a migrated embedding file (:func:`migrate_file`), or ``None`` if it has none.

    Read without pickle. Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or its
    record is not readable JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embedding file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            if PROVENANCE_KEY not in z.files:
                return None
            text = str(z[PROVENANCE_KEY])
    except Exception as exc:
        raise ValueError(f"{path} is not a readable .npz embedding file: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: damaged provenance record: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != PROVENANCE_FORMAT:
        raise ValueError(f"{path}: its provenance record is not a NESSA migration record")
    return doc


def shipped_threshold(path, far: float) -> float:
    """The score threshold for FAR target ``far`` shipped with a migrated file (accept when ``score >= it``).

    Parameters
    ----------
    path : path
        An embedding file written by :func:`migrate_file` / the CLI with a calibration file.
    far : float
        A FAR target recorded in it, as a fraction (0.01 means 1 %).

    Raises
    ------
    ValueError
        Naming the file: it records no calibration (migrated without one, or not a migrated file), or not this
        FAR target (the recorded ones are listed).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from nessa_lib.evaluation.calibration import calibration_path, save_calibration
    >>> d = tempfile.mkdtemp()
    >>> x = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    >>> a = align.fit("linear", x, x, np.arange(12) // 3, enroll_model_id="X@1", runtime_model_id="Y@1")
    >>> a.save(os.path.join(d, "lin.safetensors"))
    >>> save_calibration(calibration_path(os.path.join(d, "lin.safetensors")), thresholds={0.01: 0.625}, aligner=a)
    >>> embeddings.save_embeddings(os.path.join(d, "profiles.npz"), embeddings.EmbeddingSet(
    ...     x[:2], np.array(["p1", "p2"]), np.array(["s1", "s2"]), "X@1"))
    >>> _ = migrate_file(os.path.join(d, "lin.safetensors"), os.path.join(d, "profiles.npz"),
    ...                  os.path.join(d, "migrated.npz"),
    ...                  calibration=calibration_path(os.path.join(d, "lin.safetensors")))
    >>> shipped_threshold(os.path.join(d, "migrated.npz"), 0.01)
    0.625
    """
    far = float(far)
    doc = read_provenance(path)
    cal = None if doc is None else doc.get("calibration")
    if not cal:
        raise ValueError(f"{path} records no calibration, so no threshold ships with it: migrate it again with "
                         "--calibration FILE (a calibration file made for the aligner)")
    rows = cal.get("thresholds") or []
    for r in rows:
        if math.isclose(float(r["far_target"]), far, rel_tol=1e-9, abs_tol=0.0):
            return float(r["threshold"])
    recorded = [float(r["far_target"]) for r in rows]
    raise ValueError(f"{path} records no threshold for FAR target {far} (its calibration file {cal.get('file')} "
                     f"has {recorded or 'none'})")


def check_files(aligner_path, x_path, y_path, *, n_rounds: int = 500, seed: int = 0):
    """:func:`nessa_lib.deployment.deployment_check` of an aligner file (or a chain) on two paired embedding files.

    The files must hold the same utterances, embedded by the aligner's enrollment model (``x_path``) and runtime
    model (``y_path``); embeddings of other models are refused, naming the file. ``aligner_path`` may be a
    sequence of aligner files (a chain, :mod:`nessa_lib.chain`): ``x_path`` is then embedded by the first
    aligner's enrollment model and ``y_path`` by the last one's runtime model, and the report notes that the
    chain is measured against its last aligner's fit statistics. When the files carry speaker
    labels, the EERs and the comparison with keeping X are added; labels that give fewer than two speakers with
    two or more utterances each (or label only some rows) are refused with a ``ValueError`` naming the files,
    rather than silently checking without them. Files without labels are checked on the label-free statistics.
    """
    from nessa_lib.chain import load_chain
    from nessa_lib.deployment import deployment_check

    paths = _aligner_paths(aligner_path)
    aligner = align.load(paths[0]) if len(paths) == 1 else load_chain(paths)
    a = embeddings.load_embeddings(x_path, dim=aligner.enroll_dim, model_id=aligner.enroll_model_id)
    b = embeddings.load_embeddings(y_path, dim=aligner.runtime_dim, model_id=aligner.runtime_model_id)
    x, y, _, spk = embeddings.paired(a, b, names=(str(x_path), str(y_path)))
    labelled = (spk.astype(str) != "").any()
    report = deployment_check(aligner, x, y, spk if labelled else None, n_rounds=n_rounds, seed=seed,
                              source=f"{x_path}, {y_path}")
    if len(paths) > 1:
        note = (f"the chain's yardsticks (pair agreement, non-pair cosines, pair identification) are its last "
                f"aligner's fit data ({paths[-1].name}: one hop), as no fit data of the whole chain exists; each "
                "hop adds its errors, so a chain may fall below them without a domain problem, and the comparison "
                "with keeping X (speaker labels) is the check that decides")
        report.notes.append(note)
        report.message += f" Note: {note}."
    return report


def _spaces(chain) -> list[str]:
    """Where each aligner of a chain leaves the profiles (``?`` where it records no id), for the CLI."""
    from nessa_lib.chain import profile_space

    return [profile_space(a) or "?" for a in chain.aligners]


def _cli_message(exc: BaseException) -> str:
    """One line for a CLI error: the message of the errors this module raises on purpose (they name the file);
    the exception's type as well for anything else (an unreadable aligner file, a full disk)."""
    if isinstance(exc, (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def main(argv=None) -> int:
    """Command line: ``python -m nessa_lib.migrate ALIGNER [ALIGNER ...] IN OUT [--side runtime] [--force]
    [--calibration FILE]`` (several aligners: a chain, :mod:`nessa_lib.chain`)."""
    ap = argparse.ArgumentParser(prog="python -m nessa_lib.migrate", description=__doc__.split("\n")[0],
                                 usage="%(prog)s [options] ALIGNER [ALIGNER ...] INPUT OUTPUT")
    # One list, split here: argparse cannot place a variable number of aligners before two fixed positionals
    # when options sit between them.
    ap.add_argument("files", nargs="+", metavar="ALIGNER [ALIGNER ...] INPUT OUTPUT",
                    help="aligner file(s) (.safetensors, written by nessa_lib.align; several in upgrade order make a "
                         "chain v1 -> v2 -> v3 whose model ids must connect), then the embedding file (.npz) made "
                         "by the model the (first) aligner expects on --side, then where to write the migrated "
                         "embeddings (.npz)")
    ap.add_argument("--side", choices=SIDES, default="enrollment",
                    help="aligner side to map through (default: enrollment, i.e. stored profiles)")
    ap.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    ap.add_argument("--check", nargs=2, metavar=("SAMPLE_X", "SAMPLE_Y"),
                    help="first check the aligner on a paired sample of the target traffic: the same utterances "
                         "embedded by the enrollment model (SAMPLE_X) and the runtime model (SAMPLE_Y)")
    ap.add_argument("--strict", action="store_true",
                    help="with --check: refuse to migrate (exit status 2) when the check flags the sample (low "
                         "agreement, a collapsed or scrambled space, or not better than keeping X)")
    cal_group = ap.add_mutually_exclusive_group()
    cal_group.add_argument("--calibration", metavar="FILE",
                           help="calibration file made for this aligner (nessa_lib.evaluation.calibration): its "
                                "thresholds are recorded in OUTPUT (default: <aligner stem>.calibration.json beside "
                                "the aligner, if it exists)")
    cal_group.add_argument("--no-calibration", action="store_true",
                           help="record no calibration, even if a file lies beside the aligner")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if len(args.files) < 3:
        ap.error(f"expected ALIGNER [ALIGNER ...] INPUT OUTPUT, got {len(args.files)} path(s): {args.files}")
    aligners, args.input, args.output = args.files[:-2], args.files[-2], args.files[-1]
    args.aligner = aligners[0] if len(aligners) == 1 else aligners
    if args.strict and not args.check:
        ap.error("--strict needs --check SAMPLE_X SAMPLE_Y")
    if len(aligners) > 1:
        # The chain is checked first: a break stops everything, before any sample or profile is read.
        from nessa_lib.chain import load_chain

        if args.side != "enrollment":
            print(f"error: {_CHAIN_RUNTIME}", file=sys.stderr)
            return 1
        if args.calibration:
            print(f"error: --calibration {args.calibration}: {_CHAIN_CALIBRATION}; nothing migrated", file=sys.stderr)
            return 1
        try:
            chain = load_chain(aligners)
        except Exception as exc:  # noqa: BLE001 - one line naming the files and ids
            print(f"error: chain of {len(aligners)} aligners: {_cli_message(exc)}; nothing migrated",
                  file=sys.stderr)
            return 1
        print(f"chain of {len(aligners)} aligners connects: {chain.enroll_model_id} -> "
              + " -> ".join(f"{a.method} -> {s}" for a, s in zip(chain.aligners, _spaces(chain))))
    cal_path = None
    if args.calibration:
        cal_path = Path(args.calibration)
    elif not args.no_calibration and len(aligners) == 1:
        from nessa_lib.evaluation.calibration import calibration_path

        beside = calibration_path(args.aligner)
        if beside.is_file():
            cal_path = beside
            print(f"calibration: using {beside}, found beside the aligner (--no-calibration to skip it)")
    cal = None
    if cal_path is not None:
        # Read before the check and the migration: a file made for another aligner stops everything.
        try:
            cal = calibration_record(cal_path, align.load(args.aligner))
        except Exception as exc:  # noqa: BLE001 - one line naming both files
            print(f"error: calibration {cal_path} for aligner {args.aligner}: {_cli_message(exc)}; nothing migrated",
                  file=sys.stderr)
            return 1
    if args.check:
        try:
            report = check_files(args.aligner, *args.check)
        except Exception as exc:  # noqa: BLE001 - see below
            print(f"error: deployment check: {_cli_message(exc)}", file=sys.stderr)
            return 1
        checked = f"{' + '.join(aligners)} on {args.check[0]}, {args.check[1]}"
        if report.ok:
            print(f"deployment check passed ({checked}): {report.message}")
        elif args.strict:
            # report.message names each problem found ("collapse: ...", "control: ...") after the statistics.
            print(f"error: deployment check failed ({checked}), nothing migrated (--strict): {report.message}",
                  file=sys.stderr)
            return 2
        else:
            print(f"warning: deployment check failed ({checked}): {report.message}", file=sys.stderr)
    out_path = Path(args.output)
    # The output is checked here too, so the message names the CLI's flag (the API's says overwrite=True).
    if out_path.is_dir():
        print(f"error: {out_path} is a directory; name the file to write the migrated embeddings to",
              file=sys.stderr)
        return 1
    if out_path.exists() and not args.force:
        print(f"error: {out_path} exists; pass --force to replace it", file=sys.stderr)
        return 1
    try:
        out = migrate_file(args.aligner, args.input, args.output, side=args.side, overwrite=args.force,
                           progress=True, calibration=cal_path)
    except Exception as exc:  # noqa: BLE001 - a CLI error is one line naming the file, never a traceback
        print(f"error: {_cli_message(exc)}", file=sys.stderr)
        return 1
    print(f"migrated {len(out.utt_ids):,} rows of {args.input} ({args.side} side) into space {out.model_id} "
          f"({out.dim}-d): {args.output}")
    if len(aligners) > 1:
        print("no calibration recorded: a chain ships no threshold (calibrate the chain on trials of its own)")
    elif cal is None:
        print("no calibration recorded: no threshold ships with the output (--calibration FILE to ship one)")
    else:
        thr = ", ".join(f"FAR {r['far_target']:g}: {r['threshold']:.6g}" for r in cal["thresholds"]) or "none"
        print(f"shipped with calibration {cal_path} (sha256 {cal['sha256'][:12]}...): thresholds (accept when "
              f"score >= threshold) {thr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
