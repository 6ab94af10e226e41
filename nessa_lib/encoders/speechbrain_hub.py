"""SpeechBrain pretrained speaker encoders (``EncoderClassifier`` folders in the Hugging Face hub layout) behind the
extraction protocol of :mod:`nessa_lib.encoders.extract`, loaded offline.

A hub model folder (e.g. ``speechbrain/spkrec-ecapa-voxceleb``) holds ``hyperparams.yaml`` and the files its
``pretrainer`` lists (for the speaker models: ``embedding_model.ckpt``, ``mean_var_norm_emb.ckpt``,
``classifier.ckpt``, ``label_encoder.txt``). The trap: that ``hyperparams.yaml`` says
``pretrained_path: speechbrain/<repo>`` and the pretrainer's paths are ``<pretrained_path>/<file>``, so SpeechBrain's
``EncoderClassifier.from_hparams(source=folder)`` reads ``hyperparams.yaml`` from the folder but then fetches the
weights from the hub (and symlinks them into ``savedir``). :func:`from_speechbrain` instead points every pretrainer
path at the file of the same name in the folder, collects nothing (SpeechBrain's ``savedir=None`` mode: files are
used where they are) and so neither touches the network nor writes anything, which also makes a read-only folder
work.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from nessa_lib.encoders.hub import (
    HubUnreachableError,
    ModelFileNotFoundError,
    NotASpeakerModelError,
    as_dir,
    check_batch,
    file_fingerprint,
    shortest_input,
)

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
SAMPLE_RATE = 16000
# Modules EncoderClassifier.encode_batch runs; a folder without them is not a speaker-embedding model.
NEEDED_MODULES = ("compute_features", "mean_var_norm", "embedding_model")
# HyperPyYAML runs whatever callable a tag names. A speaker model only needs SpeechBrain's layers, features,
# normalisers, label encoder and Pretrainer, so any other callable in a downloaded file is refused unless the
# caller trusts the file (trust_hparams=True). This is a guard against surprises, not a sandbox.
_SAFE_CALLABLES = re.compile(r"^(speechbrain\.(lobes|nnet|processing)\.[\w.]+"
                             r"|speechbrain\.dataio\.encoder\.\w+"
                             r"|speechbrain\.utils\.parameter_transfer\.Pretrainer"
                             r"|torch\.nn\.[\w.]+)$")
_TAG = re.compile(r"(?:^|[\s\[{,:])!!?(\w+)(?::([\w.]+))?")  # a tag starts a YAML node
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_tags(path: Path, text: str) -> None:
    for line_no, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]
        for tag, target in _TAG.findall(code):
            if tag in ("ref", "copy", "tuple", "PLACEHOLDER"):
                continue
            if tag in ("new", "name") and target and _SAFE_CALLABLES.match(target):
                continue
            raise NotASpeakerModelError(
                f"{path}:{line_no}: tag !{tag}{':' + target if target else ''} would run code outside SpeechBrain's "
                "model classes; if you trust this file, pass trust_hparams=True")


def _state_dict_problem(module, path: Path) -> str | None:
    """Why the checkpoint at ``path`` does not fit ``module`` exactly (None if it does).

    SpeechBrain's transfer hook loads with ``strict=False`` and only logs missing keys, which would leave random
    weights in place silently; this is the strict check it skips.
    """
    import torch
    from speechbrain.utils.checkpoints import hook_on_loading_state_dict_checkpoint

    state = hook_on_loading_state_dict_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
    if not isinstance(state, dict):
        return f"holds a {type(state).__name__}, not a state_dict"
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        return (f"does not match the {type(module).__name__} built from {HPARAMS_FILE}: missing {missing[:4]}, "
                f"unexpected {unexpected[:4]}, wrong shape {shapes[:4]}")
    return None


def _collect_local(folder: Path, pretrainer) -> dict:
    """Point every pretrainer path at ``folder`` and check the files: ``{loadable name: file path}``."""
    import torch

    files = {}
    for name in pretrainer.loadables:
        if not pretrainer.is_loadable(name):
            continue
        candidates = []
        if name in pretrainer.paths:
            # Only the file name counts: a hub folder's paths name the hub repo (<pretrained_path>/<file>).
            _source, filename = pretrainer.split_path(pretrainer.paths[name])
            candidates.append(folder / filename)
        candidates.append(folder / f"{name}.ckpt")  # SpeechBrain's own savedir layout (collected files)
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ModelFileNotFoundError(
                f"SpeechBrain model folder {folder}: {candidates[0].name} is missing ({HPARAMS_FILE}'s pretrainer "
                f"loads {name!r} from it); copy the whole hub folder")
        obj = pretrainer.loadables[name]
        with open(found, "rb") as f:
            head = f.read(2)
        # torch files are zip archives ("PK") or raw pickles (0x80); label encoders are text.
        if isinstance(obj, torch.nn.Module) or head == b"PK" or head[:1] == b"\x80":
            # Never unpickle code: a weights-only load refuses anything but tensors and plain containers, whatever
            # SpeechBrain's own loader does (torch >= 2.6 defaults to weights_only=True there too).
            try:
                torch.load(found, map_location="cpu", weights_only=True)
            except Exception as e:
                raise NotASpeakerModelError(f"{found}: not a weights-only checkpoint ({type(e).__name__}: "
                                            f"{str(e).splitlines()[0] if str(e) else ''})") from e
            if name == "embedding_model" and isinstance(obj, torch.nn.Module):
                problem = _state_dict_problem(obj, found)
                if problem:
                    raise NotASpeakerModelError(f"{found}: {problem}")
        pretrainer.paths[name] = str(found)
        files[name] = found
    if "embedding_model" not in files:
        raise NotASpeakerModelError(f"SpeechBrain model folder {folder}: {HPARAMS_FILE}'s pretrainer loads no "
                                    "'embedding_model'; not a speaker-embedding model")
    return files


class SpeechBrainEncoder:
    """A SpeechBrain ``EncoderClassifier`` behind the extraction protocol (build it with :func:`from_speechbrain`).

    ``embed`` runs SpeechBrain's own ``encode_batch`` (its ``Fbank``, input normalisation, embedding network and,
    with ``normalize=True``, its ``mean_var_norm_emb``), with two differences that keep embeddings reproducible
    and independent of batching:

    * the torch RNG is forked and seeded with 0 for each call (SpeechBrain's x-vector pooling adds tiny random
      noise, in eval mode too), as :meth:`nessa_lib.encoders.export.Encoder.embed` does;
    * networks that ignore relative lengths (every class but ``Xvector`` and ``ECAPA_TDNN``, e.g. ``ResNet``)
      embed each padded row alone at its true length, so padding never enters an embedding.

    Attributes
    ----------
    model_id : str
        ``speechbrain@<hash>`` of the bytes of ``hyperparams.yaml`` and every file the pretrainer loads (and of
        ``normalize``): stable across loads and folders, different for different weights.
    sample_rate, min_samples, emb_dim : int
        16000, shortest accepted input in samples (bisection at load time, at least one analysis window),
        embedding size.
    classifier : speechbrain.inference.speaker.EncoderClassifier
        The SpeechBrain object itself.
    files : dict of str to pathlib.Path
        The files it was loaded from.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, classifier, files: dict, *, normalize: bool = False, source: str = ""):
        import torch

        from nessa_lib.encoders.modules import _takes_lengths

        self.classifier = classifier.eval()
        self.files = dict(files)
        self.normalize = bool(normalize)
        self.source = source
        self.model_id = self.fingerprint()
        self._takes_lengths = _takes_lengths(classifier.mods["embedding_model"])
        fbank = classifier.mods["compute_features"]
        win = getattr(getattr(fbank, "compute_STFT", None), "win_length", 400)
        where = f"SpeechBrain model {source}"
        with torch.no_grad():
            probe = self._run(0.1 * torch.randn(1, SAMPLE_RATE, generator=torch.Generator().manual_seed(0)),
                              torch.ones(1))
        self.emb_dim = int(probe.shape[-1])

        def ok(n):
            try:
                x = 0.1 * torch.randn(1, n, generator=torch.Generator().manual_seed(0))
                return bool(torch.isfinite(self._run(x, torch.ones(1))).all())
            except (RuntimeError, ValueError, IndexError):
                return False

        self.min_samples = shortest_input(ok, floor=int(win), limit=SAMPLE_RATE, where=where)

    def fingerprint(self) -> str:
        """The model id of the files as they are now (equal to :attr:`model_id` unless a file changed since loading)."""
        # Keyed by role (loadable name), not file name: the hub layout (label_encoder.txt) and SpeechBrain's savedir
        # layout (label_encoder.ckpt) of the same files get the same id.
        return file_fingerprint("speechbrain", self.files, {"normalize": self.normalize})

    def __repr__(self):
        return f"SpeechBrainEncoder({self.model_id!r}, emb_dim={self.emb_dim}, min_samples={self.min_samples})"

    def _run(self, wavs, lengths):
        import torch

        dev = torch.device(self.classifier.device)
        devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            emb = self.classifier.encode_batch(wavs, lengths, normalize=self.normalize)
        return emb.reshape(emb.shape[0], -1).float().cpu()

    def embed(self, wavs, lengths=None):
        """Embed a zero-padded batch of 16 kHz waveforms.

        Parameters
        ----------
        wavs : torch.Tensor, shape (B, T), float
            Waveforms, zero-padded to a common length.
        lengths : torch.Tensor, shape (B,), optional
            Relative lengths in (0, 1] (SpeechBrain's ``wav_lens``); default all ones.

        Returns
        -------
        torch.Tensor, shape (B, emb_dim), float32
            SpeechBrain's embeddings (``encode_batch``), un-normalised unless ``normalize=True`` was asked for.

        Raises
        ------
        ValueError
            Wrong shape, NaN/inf samples, lengths outside (0, 1], or a row shorter than :attr:`min_samples`.
        """
        import torch

        wavs, lengths, n = check_batch(f"SpeechBrain model {self.model_id}", wavs, lengths, self.min_samples,
                                       self.sample_rate)
        if self._takes_lengths or bool((n >= wavs.shape[1]).all()):
            return self._run(wavs, lengths)
        return torch.cat([self._run(wavs[i:i + 1, : int(n[i])], torch.ones(1)) for i in range(len(wavs))])


def _load_folder(folder: Path, *, device: str, normalize: bool, trust_hparams: bool) -> SpeechBrainEncoder:
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.inference.speaker import EncoderClassifier
    from speechbrain.utils.fetching import LocalStrategy
    from speechbrain.utils.parameter_transfer import Pretrainer

    hp_path = folder / HPARAMS_FILE
    if not hp_path.is_file():
        raise ModelFileNotFoundError(f"SpeechBrain model folder {folder}: {HPARAMS_FILE} is missing; a hub model "
                                     f"folder holds {HPARAMS_FILE} and the checkpoint files it lists")
    text = hp_path.read_text(encoding="utf-8")
    if not trust_hparams:
        _check_tags(hp_path, text)
    # pretrained_path names the hub repo in hub folders; pointing it here is the documented override (our own
    # _collect_local then checks every path anyway, also in files that spell the hub id out in full).
    try:
        hparams = load_hyperpyyaml(text, {"pretrained_path": str(folder)}, overrides_must_match=False)
    except Exception as e:
        raise NotASpeakerModelError(f"{hp_path}: not a loadable HyperPyYAML file ({type(e).__name__}: {e})") from e
    modules = hparams.get("modules") if isinstance(hparams, dict) else None
    missing = [m for m in NEEDED_MODULES if not isinstance(modules, dict) or m not in modules]
    pretrainer = hparams.get("pretrainer") if isinstance(hparams, dict) else None
    if missing or not isinstance(pretrainer, Pretrainer):
        what = f"modules {missing}" if missing else "a 'pretrainer' (speechbrain.utils.parameter_transfer.Pretrainer)"
        raise NotASpeakerModelError(f"{hp_path}: lacks {what}; not a SpeechBrain speaker-embedding model "
                                    "(EncoderClassifier)")
    files = _collect_local(folder, pretrainer)
    hparams["savedir"] = None
    # collect_in=None + NO_LINK: SpeechBrain uses each file where it is (all paths are now absolute local files),
    # creating no folder, symlink or copy.
    pretrainer.set_collect_in(None)
    pretrainer.collect_files(default_source=str(folder), local_strategy=LocalStrategy.NO_LINK)
    pretrainer.load_collected()
    classifier = EncoderClassifier(modules=modules, hparams=hparams, run_opts={"device": device})
    files = {"hyperparams": hp_path, **files}
    return SpeechBrainEncoder(classifier, files, normalize=normalize, source=str(folder))


def _download(repo_id: str, savedir, *, download: bool = True) -> Path:
    """Fetch a hub repo's model files (hub layout) into ``savedir`` (or the Hugging Face cache); with
    ``download=False`` only a copy already there is used (no network access at all)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(repo_id, local_dir=None if savedir is None else str(savedir),
                                 allow_patterns=["*.yaml", "*.ckpt", "*.txt", "*.json"],
                                 local_files_only=not download)
    except Exception as e:  # offline mode, no route, unknown repo, ...: all mean "not available here"
        example = savedir or f"models/{repo_id.split('/')[-1]}"
        where = ("could not be fetched from the Hugging Face hub" if download else
                 "is not in the local Hugging Face cache (and downloading was not allowed here)")
        raise HubUnreachableError(
            f"{repo_id!r} is not a local folder and {where} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). On a connected machine run "
            f"`huggingface-cli download {repo_id} --local-dir {example}` (or `hf download ...`), copy that folder "
            f"here and pass its path: from_speechbrain('{example}')") from e
    return Path(path)


def from_speechbrain(source, *, savedir=None, device: str = "cpu", normalize: bool = False,
                     trust_hparams: bool = False, download: bool = True) -> SpeechBrainEncoder:
    """A SpeechBrain pretrained speaker encoder, following the extraction protocol.

    Parameters
    ----------
    source : str or os.PathLike
        A local folder in the hub layout (``hyperparams.yaml`` + the files its pretrainer lists; a SpeechBrain
        ``savedir`` with ``<name>.ckpt`` files works too), loaded with no network access and without writing into
        it; or a hub id such as ``"speechbrain/spkrec-ecapa-voxceleb"``, fetched with ``huggingface_hub`` only if
        it is not an existing folder (and only when the hub is reachable).
    savedir : str or os.PathLike, optional
        Hub ids only: where to download the folder (default: the Hugging Face cache). Ignored for local folders.
    device : str
        Torch device for the model.
    normalize : bool
        Apply the model's ``mean_var_norm_emb`` (``encode_batch(normalize=True)``); the default (False) is
        SpeechBrain's default and what its ``SpeakerRecognition.verify_batch`` scores.
    trust_hparams : bool
        Allow ``hyperparams.yaml`` tags that run code other than SpeechBrain's model classes.
    download : bool
        Hub ids only: fetch the folder when it is not in ``savedir`` / the cache yet (the default). With False
        only a copy already there is used and the network is never touched.

    Returns
    -------
    SpeechBrainEncoder

    Raises
    ------
    ModelFileNotFoundError
        The folder, its ``hyperparams.yaml`` or a file its pretrainer lists is missing.
    NotASpeakerModelError
        The folder is not a SpeechBrain speaker-embedding model (no embedding model, wrong weights, ...).
    HubUnreachableError
        ``source`` is not a folder and could not be fetched (or, with ``download=False``, is not cached); the
        message says how to place it locally.

    Examples
    --------
    >>> enc = from_speechbrain("models/spkrec-ecapa-voxceleb")  # doctest: +SKIP
    >>> enc.embed(0.1 * torch.randn(2, 16000), torch.tensor([1.0, 0.6])).shape  # doctest: +SKIP
    torch.Size([2, 192])
    """
    folder = resolve_source(source, savedir=savedir, download=download)
    return _load_folder(folder, device=device, normalize=normalize, trust_hparams=trust_hparams)


def resolve_source(source, *, savedir=None, download: bool = True) -> Path:
    """The local folder :func:`from_speechbrain` loads ``source`` from (same arguments).

    An existing folder is returned as it is (resolved); a hub id (``owner/repo`` that is not an existing path) is
    looked up in ``savedir`` / the Hugging Face cache and fetched there first if ``download`` allows it.

    Raises
    ------
    ModelFileNotFoundError
        ``source`` is neither a folder nor a hub id.
    HubUnreachableError
        A hub id that is not cached and could not (or may not) be fetched.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> resolve_source(d) == Path(d).resolve()
    True
    """
    src = str(source)
    p = Path(src).expanduser()
    if not p.exists() and _HUB_ID.match(src) and not src.startswith(("./", "../")):
        return _download(src, savedir, download=download)
    return as_dir(p, "SpeechBrain model")
