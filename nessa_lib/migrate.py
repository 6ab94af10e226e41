"""Migrate stored voice profiles (or any embedding file) through a fitted aligner, file to file.

The offline half of a model upgrade: profiles enrolled with the old model X are mapped once into the scoring space
of an aligner, and the runtime then compares them with new-model embeddings mapped by the same aligner's runtime
side (the identity for NESSA M2, so plain new-model embeddings)::

    python -m nessa_lib.migrate models/fit_aligners/xvector-ecapa/nessa-m2.safetensors profiles_xvector.npz \\
        profiles_migrated.npz

Input and output are pickle-free embedding files (:mod:`nessa_lib.embeddings`); the output keeps the ids and
carries the id of the space it now lives in (:func:`space_id`). The input is never modified, and nothing is
written unless every row maps.

Before trusting an aligner with real profiles, check it on a small paired sample of the target traffic (the same
utterances embedded by X and by Y, :mod:`nessa_lib.deployment`)::

    python -m nessa_lib.migrate ALIGNER profiles_xvector.npz migrated.npz --check sample_x.npz sample_y.npz --strict

``--check`` warns when the sample's pair agreement falls below the aligner's fit data, when the mapped sample has
collapsed or is scrambled (non-pair cosines, pair identification rate against the fit data's), and, when the
embedding files carry speaker labels, when the aligned system is not better than keeping X (X/X EER on the same
trials); ``--strict`` then refuses to migrate (exit status 2), naming each problem and the files.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from nessa_lib import align, embeddings

logger = logging.getLogger(__name__)

SIDES = ("enrollment", "runtime")


def space_id(aligner: align.Aligner) -> str:
    """Model id of the space an aligner maps into: what a migrated file records as its ``model_id``.

    Where one side of the aligner is the identity, the shared space *is* that side's model space: NESSA M2 maps
    profiles into the runtime model's space (so migrated profiles carry the runtime model's id and are scored
    against its plain embeddings), M1 and ``linear`` keep the enrollment model's space. Otherwise (M3,
    procrustes, speaker-logit) the space is new, and its id is ``<method>@<hash of the aligner>``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(12, 3))
    >>> space_id(align.fit("linear", x, x, np.arange(12) // 3, enroll_model_id="X@1", runtime_model_id="Y@1"))
    'X@1'
    >>> space_id(align.fit("procrustes", x, x, np.arange(12) // 3)).startswith("procrustes@")
    True
    """
    if aligner.runtime_spec["kind"] == "identity" and aligner.runtime_model_id:
        return aligner.runtime_model_id
    if aligner.enroll_spec["kind"] == "identity" and aligner.enroll_model_id:
        return aligner.enroll_model_id
    # Not the training record nor the fit reference statistics (added in a later version): a file that gained
    # them must keep the space id its migrated profiles carry.
    meta = {k: v for k, v in aligner.metadata().items() if k not in ("history", "fit_reference")}
    tensors = {f"enroll.{k}": v for k, v in aligner.enroll_map.state_dict().items()}
    tensors.update({f"runtime.{k}": v for k, v in aligner.runtime_map.state_dict().items()})
    return embeddings.fingerprint(tensors, meta, aligner.method)


def migrate_embeddings(aligner: align.Aligner, emb: embeddings.EmbeddingSet, *, side: str = "enrollment",
                       source: str | None = None, chunk: int = 65536, progress: bool = False
                       ) -> embeddings.EmbeddingSet:
    """Map an embedding set through one side of an aligner, in chunks; ids are kept.

    Parameters
    ----------
    aligner : Aligner
        A fitted aligner (:func:`nessa_lib.align.load`).
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
    return embeddings.EmbeddingSet(out, emb.utt_ids, emb.speaker_ids, space_id(aligner))


def migrate_file(aligner_path, in_path, out_path, *, side: str = "enrollment", overwrite: bool = False,
                 progress: bool = False) -> embeddings.EmbeddingSet:
    """Migrate one embedding file through an aligner file; see the module docstring.

    Refuses (``ValueError`` / ``FileExistsError`` / ``IsADirectoryError``, naming the file) to write over its input,
    into a directory or, unless ``overwrite``, over an existing file; the output is written atomically, only once
    every row has mapped, and no temporary file is left behind when anything fails. Memory: the input and the
    output embeddings once each (the rows are mapped in chunks into the output).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> x = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    >>> align.fit("nessa-m2", x, x[:, ::-1], np.arange(12) // 3, max_epochs=2, hidden_dim=8,
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
    aligner = align.load(aligner_path)
    emb = embeddings.load_embeddings(in_path)
    out = migrate_embeddings(aligner, emb, side=side, source=str(in_path), progress=progress)
    del emb  # the input's rows are no longer needed: the writer's own temporaries may use their memory
    embeddings.save_embeddings(out_path, out)
    return out


def check_files(aligner_path, x_path, y_path, *, n_rounds: int = 500, seed: int = 0):
    """:func:`nessa_lib.deployment.deployment_check` of an aligner file on two paired embedding files.

    The files must hold the same utterances, embedded by the aligner's enrollment model (``x_path``) and runtime
    model (``y_path``); embeddings of other models are refused, naming the file. When the files carry speaker
    labels, the EERs and the comparison with keeping X are added; labels that give fewer than two speakers with
    two or more utterances each (or label only some rows) are refused with a ``ValueError`` naming the files,
    rather than silently checking without them. Files without labels are checked on the label-free statistics.
    """
    from nessa_lib.deployment import deployment_check

    aligner = align.load(aligner_path)
    a = embeddings.load_embeddings(x_path, dim=aligner.enroll_dim, model_id=aligner.enroll_model_id)
    b = embeddings.load_embeddings(y_path, dim=aligner.runtime_dim, model_id=aligner.runtime_model_id)
    x, y, _, spk = embeddings.paired(a, b, names=(str(x_path), str(y_path)))
    labelled = (spk.astype(str) != "").any()
    return deployment_check(aligner, x, y, spk if labelled else None, n_rounds=n_rounds, seed=seed,
                            source=f"{x_path}, {y_path}")


def _cli_message(exc: BaseException) -> str:
    """One line for a CLI error: the message of the errors this module raises on purpose (they name the file);
    the exception's type as well for anything else (an unreadable aligner file, a full disk)."""
    if isinstance(exc, (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def main(argv=None) -> int:
    """Command line: ``python -m nessa_lib.migrate ALIGNER IN OUT [--side runtime] [--force]``."""
    ap = argparse.ArgumentParser(prog="python -m nessa_lib.migrate", description=__doc__.split("\n")[0])
    ap.add_argument("aligner", help="aligner file (.safetensors) written by nessa_lib.align")
    ap.add_argument("input", help="embedding file (.npz) made by the model the aligner expects on --side")
    ap.add_argument("output", help="where to write the migrated embeddings (.npz)")
    ap.add_argument("--side", choices=SIDES, default="enrollment",
                    help="aligner side to map through (default: enrollment, i.e. stored profiles)")
    ap.add_argument("--force", action="store_true", help="replace OUTPUT if it exists")
    ap.add_argument("--check", nargs=2, metavar=("SAMPLE_X", "SAMPLE_Y"),
                    help="first check the aligner on a paired sample of the target traffic: the same utterances "
                         "embedded by the enrollment model (SAMPLE_X) and the runtime model (SAMPLE_Y)")
    ap.add_argument("--strict", action="store_true",
                    help="with --check: refuse to migrate (exit status 2) when the check flags the sample (low "
                         "agreement, a collapsed or scrambled space, or not better than keeping X)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.strict and not args.check:
        ap.error("--strict needs --check SAMPLE_X SAMPLE_Y")
    if args.check:
        try:
            report = check_files(args.aligner, *args.check)
        except Exception as exc:  # noqa: BLE001 - see below
            print(f"error: deployment check: {_cli_message(exc)}", file=sys.stderr)
            return 1
        checked = f"{args.aligner} on {args.check[0]}, {args.check[1]}"
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
                           progress=True)
    except Exception as exc:  # noqa: BLE001 - a CLI error is one line naming the file, never a traceback
        print(f"error: {_cli_message(exc)}", file=sys.stderr)
        return 1
    print(f"migrated {len(out.utt_ids):,} rows of {args.input} ({args.side} side) into space {out.model_id} "
          f"({out.dim}-d): {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
