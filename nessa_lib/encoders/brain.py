"""Training one encoder, laid out like a SpeechBrain recipe: the data preparation is
:mod:`nessa_lib.encoders.data` (datasets, samplers, loaders), the ``Brain`` subclass (objectives, learning-rate
schedule, per-epoch validation and history) and the distributed setup and checkpoints are here, the export is
:mod:`nessa_lib.encoders.export`; :func:`train_encoder` runs them in order (also under ``torchrun``)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

from nessa_lib.encoders.config import CKPT_DIR, DATA_FIELDS, META_FILE, EncoderConfig, _as_config
from nessa_lib.encoders.data import _prepare_data, training_loaders
from nessa_lib.encoders.export import _export
from nessa_lib.encoders.modules import _embed_batch, _n_params, build_modules
from nessa_lib.losses import supcon_loss

logger = logging.getLogger(__name__)


def _loo_nn_error(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out nearest-neighbour (cosine) speaker-identification error: one metric for every objective."""
    z = torch.nn.functional.normalize(emb, dim=-1)
    sim = z @ z.T
    sim.fill_diagonal_(float("-inf"))
    keep = torch.tensor([(labels == y).sum() > 1 for y in labels])
    if not keep.any():
        return float("nan")
    nn_idx = sim.argmax(1)
    return float((labels[nn_idx] != labels)[keep].float().mean())


def _lr_at(cfg: EncoderConfig, step: int, total: int) -> float:
    warm = max(1, int(round(cfg.warmup_frac * total)))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    t = min(1.0, (step - warm) / max(1, total - warm))
    lo = cfg.lr * cfg.final_lr_frac
    return lo + 0.5 * (cfg.lr - lo) * (1.0 + math.cos(math.pi * t))


class _History:
    """Per-epoch training records, saved in every SpeechBrain checkpoint so a resumed run keeps them."""

    def __init__(self):
        self.records = []

    def save(self, path):
        from speechbrain.utils.distributed import if_main_process

        if if_main_process():  # custom save hooks run on every DDP rank
            Path(path).write_text(json.dumps(self.records), encoding="utf-8")

    def load(self, path, end_of_epoch=True):
        del end_of_epoch
        self.records = json.loads(Path(path).read_text(encoding="utf-8"))


class _TorchRng:
    """The global torch RNG state as a checkpoint recoverable: SpeechBrain's x-vector statistics pooling draws
    noise from it during training, so without it a resumed run would not reproduce an uninterrupted one."""

    def save(self, path):
        from speechbrain.utils.distributed import if_main_process

        if if_main_process():
            with open(path, "wb") as f:
                np.save(f, torch.get_rng_state().numpy(), allow_pickle=False)

    def load(self, path, end_of_epoch=True):
        del end_of_epoch
        with open(path, "rb") as f:
            torch.set_rng_state(torch.from_numpy(np.load(f, allow_pickle=False)))


class EncoderBrain(sb.core.Brain):
    """``Brain`` for speaker-encoder training (see :func:`train_encoder`).

    ``hparams`` must hold ``cfg`` (EncoderConfig), ``epoch_counter``, ``history`` (``_History``),
    ``total_steps`` and ``sampler`` (the train sampler, for ``set_epoch``).
    """

    def on_fit_start(self):
        cfg = self.hparams.cfg
        if cfg.objective == "aam":
            self.loss_fn = LogSoftmaxWrapper(AdditiveAngularMargin(margin=cfg.aam_margin, scale=cfg.aam_scale))
        elif cfg.objective == "softmax":
            self.loss_fn = LogSoftmaxWrapper(torch.nn.Identity())
        super().on_fit_start()

    def _wrap_distributed(self):
        # SpeechBrain converts BatchNorm to SyncBatchNorm before wrapping in DDP, and SyncBatchNorm refuses
        # CPU tensors in training; on CPU keep per-process BatchNorm statistics (plain DDP).
        if self.distributed_launch and self.device_type == "cpu":
            from torch.nn.parallel import DistributedDataParallel as DDP

            for name, module in self.modules.items():
                if any(p.requires_grad for p in module.parameters()):
                    self.modules[name] = DDP(module, device_ids=None,
                                             find_unused_parameters=self.find_unused_parameters)
            return
        super()._wrap_distributed()

    def compute_forward(self, batch, stage):
        wavs, lens, _ = batch
        wavs, lens = wavs.to(self.device), lens.to(self.device)
        emb = _embed_batch(self.modules, wavs, lens)
        if "classifier" in self.modules:
            head = self.modules["classifier"](emb.unsqueeze(1))
            return emb, head.reshape(head.shape[0], 1, -1)
        return emb, None

    def compute_objectives(self, predictions, batch, stage):
        emb, head = predictions
        labels = batch[2].to(self.device)
        cfg = self.hparams.cfg
        if head is not None:
            loss = self.loss_fn(head, labels.unsqueeze(1))
        elif stage == sb.Stage.TRAIN or (labels[:, None] == labels[None, :]).sum() > len(labels):
            loss = supcon_loss(torch.nn.functional.normalize(emb, dim=-1), labels, cfg.temperature)
        else:
            loss = torch.zeros((), device=emb.device)
        if stage != sb.Stage.TRAIN:
            self._valid_emb.append(emb.detach().cpu())
            self._valid_lab.append(labels.cpu())
        return loss

    def on_fit_batch_start(self, batch, should_step):
        lr = _lr_at(self.hparams.cfg, self.optimizer_step, self.hparams.total_steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self._last_lr = lr

    def on_stage_start(self, stage, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.hparams.sampler.set_epoch(epoch)
            self._t0 = time.time()
        else:
            self._valid_emb, self._valid_lab = [], []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        hist = self.hparams.history
        if stage == sb.Stage.TRAIN:
            self._train_record = {"epoch": int(epoch), "train_loss": float(stage_loss),
                                  "lr_end": float(getattr(self, "_last_lr", 0.0)),
                                  "train_time_s": round(time.time() - self._t0, 2)}
            if not self.hparams.has_valid:
                self._end_epoch(hist, self._train_record)
            return
        err = _loo_nn_error(torch.cat(self._valid_emb), torch.cat(self._valid_lab))
        rec = dict(self._train_record, valid_loss=float(stage_loss), valid_error=err)
        self._end_epoch(hist, rec)

    def _end_epoch(self, hist, rec):
        hist.records = [r for r in hist.records if r["epoch"] != rec["epoch"]] + [rec]
        msg = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())
        if sb.utils.distributed.if_main_process():
            logger.info("%s: %s", self.hparams.cfg.name, msg)
        # One checkpoint per finished epoch, only the newest kept: a killed run resumes after it.
        self.checkpointer.save_and_keep_only(meta={"epoch": rec["epoch"]}, num_to_keep=1)


def _check_same_config(out_dir: Path, cfg: EncoderConfig, write: bool) -> None:
    """Refuse to resume checkpoints of another configuration (only ``epochs`` may change between runs)."""
    from speechbrain.utils.distributed import ddp_barrier, if_main_process

    from nessa_lib.io import atomic_write_text

    def identity(d):
        # How the data is read does not change what is trained (memory and stream give the same batches), except
        # shards (another example order).
        out = {k: v for k, v in d.items() if k != "epochs" and k not in DATA_FIELDS}
        if d.get("data") == "shards":
            out["data"] = "shards"
        return out

    path = out_dir / CKPT_DIR / "config.json"
    mine = identity(cfg.to_dict())
    if path.is_file():
        theirs = identity(json.loads(path.read_text(encoding="utf-8")))
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ValueError(f"{out_dir} holds checkpoints of a different encoder config (differs in {diff}); "
                             "use another out_dir or delete it to start over")
    elif write and if_main_process():
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cfg.to_dict(), indent=1) + "\n")
    ddp_barrier()


def _run_options(device: str, precision: str, progress: bool, run_opts: dict | None) -> dict:
    """SpeechBrain's run options for ``device`` and ``precision`` (gloo backend), ``run_opts`` over them."""
    from nessa_lib.devices import check_precision, resolve_device

    dev = resolve_device(device)
    if check_precision(precision) != "fp32" and not dev.startswith("cuda"):
        raise ValueError(f"precision={precision!r} is a GPU option; on device {dev!r} use 'fp32'")
    opts = {"device": "cuda:0" if dev == "cuda" else dev, "distributed_backend": "gloo",
            "noprogressbar": not progress, "precision": precision}
    opts.update(run_opts or {})
    return opts


def _setup_distributed(opts: dict, out_dir: Path) -> int:
    """Join the DDP process group under ``torchrun`` (``RANK``/``LOCAL_RANK`` set), make ``out_dir`` on the main
    process; the number of ranks (1 without DDP)."""
    from speechbrain.utils.distributed import ddp_barrier, ddp_init_group, if_main_process, is_distributed_initialized

    if os.environ.get("RANK") is not None and os.environ.get("LOCAL_RANK") is not None \
            and not is_distributed_initialized():
        ddp_init_group(opts)
    world = torch.distributed.get_world_size() if is_distributed_initialized() else 1
    if if_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
    ddp_barrier()
    return world


def _epochs(cfg: EncoderConfig, steps_per_epoch: int, opts: dict) -> tuple[int, int]:
    """``(epochs to run, total optimizer steps)``; with ``cfg.max_steps``, SpeechBrain's step limit goes in ``opts``.

    max_steps: stop after that many optimizer steps (SpeechBrain's optimizer_step_limit ends the epoch it falls in)
    and count only the epochs needed to reach it, so a finished capped run is not repeated on a re-run.
    """
    n_epochs, total_steps = cfg.epochs, steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        n_epochs = min(cfg.epochs, math.ceil(cfg.max_steps / max(1, steps_per_epoch)))
        total_steps = min(total_steps, cfg.max_steps)
        opts["optimizer_step_limit"] = cfg.max_steps
    return n_epochs, total_steps


def _checkpointer(out_dir: Path, mods: dict, counter, history: _History):
    """SpeechBrain's ``Checkpointer`` of a run: the modules, the epoch counter, the history and the torch RNG."""
    from speechbrain.utils.checkpoints import Checkpointer

    recoverables = {"embedding_model": mods["embedding_model"], "counter": counter}
    if "classifier" in mods:
        recoverables["classifier"] = mods["classifier"]
    checkpointer = Checkpointer(out_dir / CKPT_DIR, recoverables=recoverables)
    checkpointer.add_recoverable("history", history, custom_load_hook=_History.load,
                                 custom_save_hook=_History.save)
    rng = _TorchRng()
    checkpointer.add_recoverable("torch_rng", rng, custom_load_hook=_TorchRng.load, custom_save_hook=_TorchRng.save)
    return checkpointer


def _export_on_main(out_dir: Path, cfg: EncoderConfig, mods: dict, history: _History, summary: dict,
                    speakers: list) -> str:
    """Export on the main process (:func:`~nessa_lib.encoders.export._export`); every rank gets the model id."""
    from speechbrain.utils.distributed import ddp_barrier, if_main_process

    model_id = None
    if if_main_process():
        meta = _export(out_dir, cfg, mods, history.records, summary, speakers)
        model_id = meta["model_id"]
    ddp_barrier()
    if model_id is None:
        model_id = json.loads((out_dir / META_FILE).read_text())["model_id"]
    return model_id


def train_encoder(manifest, out_dir, cfg, *, progress: bool = True, run_opts: dict | None = None,
                  device: str = "auto", precision: str = "fp32", shards=None) -> dict:
    """Train one speaker encoder with a SpeechBrain ``Brain`` and export it to ``out_dir``.

    Re-running with the same ``out_dir`` resumes from the last epoch checkpoint in ``out_dir/checkpoints``
    (a finished run is not repeated: its epoch counter is already at ``cfg.epochs``; raising ``epochs``
    continues it, though the learning-rate schedule is then stretched over the new total).

    With ``cfg.max_steps`` set, training ends after that many optimizer steps (across epochs, the last epoch cut
    short), is validated and checkpointed as a finished epoch, and is exported as usual; the summary then also
    holds ``optimizer_steps``.

    Parameters
    ----------
    manifest : str, os.PathLike or pandas.DataFrame
        Manifest (see :mod:`nessa_lib.data.manifest`); the utterances of its ``train`` split are used. A DataFrame
        needs absolute paths (or paths relative to the working directory).
    out_dir : str or os.PathLike
        Output folder: ``encoder.safetensors``, ``encoder.json``, ``checkpoints/``.
    cfg : EncoderConfig or dict
        Model and training configuration.
    progress : bool
        Show progress bars (audio loading and SpeechBrain's per-epoch bar).
    run_opts : dict, optional
        SpeechBrain run options (``device``, ``distributed_backend``, ``precision`` ...); they override ``device``
        and ``precision``. Default backend: gloo. Under ``torchrun`` (``RANK``/``LOCAL_RANK`` set) the DDP
        process group is initialised here with ``speechbrain.utils.distributed.ddp_init_group``.
    device : str
        ``"auto"`` (default: ``cuda:0`` when a GPU is visible, else ``cpu``), ``"cpu"`` or ``"cuda[:N]"``
        (:func:`nessa_lib.devices.resolve_device`). Under ``torchrun`` with ``nccl``, pass ``run_opts`` as
        SpeechBrain expects (it picks ``cuda:<LOCAL_RANK>``).
    precision : {'fp32', 'fp16', 'bf16'}
        SpeechBrain's training precision; fp16/bf16 (automatic mixed precision) only on CUDA. Default fp32.
    shards : str or os.PathLike, optional
        Folder of WebDataset shards (:mod:`nessa_lib.encoders.shards`) packed from ``manifest``; needed, and used
        only, with ``cfg.data == 'shards'`` (the manifest still gives the speakers and validation utterances).

    Returns
    -------
    dict
        Flat summary: ``train_time_s``, ``load_time_s``, ``epochs``, ``final_train_loss``,
        ``final_valid_error`` (NaN without validation), ``n_params``, ``n_train_speakers``, ``n_train_utts``,
        ``model_id``, ``world_size``; ``data_path`` when not 'memory' (:func:`~nessa_lib.encoders.data.
        choose_data_path`) and ``skipped_reads`` when the streaming paths skipped bad audio (listed, with the
        files named, in ``out_dir/skipped_train.csv``).

    Raises
    ------
    nessa_lib.data.audio.AudioError
        A training file cannot be read on the 'memory' path; the message names the file. The streaming paths
        skip and report it instead.
    ValueError
        Invalid configuration or manifest.
    """
    from speechbrain.utils.distributed import ddp_barrier, if_main_process
    from speechbrain.utils.epoch_loop import EpochCounter

    cfg = _as_config(cfg)
    out_dir = Path(out_dir)
    opts = _run_options(device, precision, progress, run_opts)
    world = _setup_distributed(opts, out_dir)

    # Data preparation (nessa_lib.encoders.data).
    _check_same_config(out_dir, cfg, write=False)  # fail fast, before loading audio
    t0 = time.time()
    skip_log = out_dir / "skipped_train.csv"
    train_ds, valid_ds, speakers = _prepare_data(manifest, cfg, progress and if_main_process(), shards=shards,
                                                 skip_log=skip_log)
    data_path = train_ds.data_path
    load_time = time.time() - t0
    _check_same_config(out_dir, cfg, write=True)

    # Modules, loaders, checkpoints, the Brain.
    torch.manual_seed(cfg.seed)  # same seed -> same initial weights on every rank
    mods = build_modules(cfg, n_speakers=len(speakers))
    loaders = training_loaders(train_ds, cfg, world, shards=shards)
    n_epochs, total_steps = _epochs(cfg, loaders.steps_per_epoch, opts)
    history = _History()
    counter = EpochCounter(limit=n_epochs)
    checkpointer = _checkpointer(out_dir, mods, counter, history)
    hparams = {"cfg": cfg, "history": history, "sampler": loaders.sampler, "has_valid": valid_ds is not None,
               "total_steps": max(1, total_steps)}
    opt_class = lambda params: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)  # noqa: E731
    brain = EncoderBrain(modules=mods, opt_class=opt_class, hparams=hparams, run_opts=opts, checkpointer=checkpointer)

    # Training.
    t1 = time.time()
    brain.fit(counter, loaders.train_set, valid_ds, progressbar=progress, train_loader_kwargs=loaders.train_kwargs,
              valid_loader_kwargs=loaders.valid_kwargs)
    train_time = time.time() - t1
    # After fit() (or a recovery of a finished run) the modules hold the last epoch's weights.
    if counter.current < n_epochs:
        raise RuntimeError(f"training of {out_dir} stopped at epoch {counter.current} of {n_epochs}")
    if not history.records:  # a finished run loaded from its checkpoint on a fresh Brain
        checkpointer.recover_if_possible()

    # Summary and export (nessa_lib.encoders.export).
    last = history.records[-1] if history.records else {}
    summary = {"train_time_s": round(train_time, 2), "load_time_s": round(load_time, 2),
               "epochs": int(counter.current), "final_train_loss": float(last.get("train_loss", float("nan"))),
               "final_valid_error": float(last.get("valid_error", float("nan"))),
               "n_params": _n_params(mods["embedding_model"]), "n_train_speakers": len(speakers),
               "n_train_utts": loaders.n_train_utts, "world_size": world}
    if cfg.max_steps is not None:  # only then: an uncapped run's summary (and encoder.json) stays as it was
        summary["optimizer_steps"] = int(brain.optimizer_step)
    if data_path != "memory":  # likewise: the default path's summary is unchanged
        summary["data_path"] = data_path
    ddp_barrier()
    if skip_log.is_file():
        with open(skip_log, encoding="utf-8") as f:
            summary["skipped_reads"] = sum(1 for _ in f) - 1
    model_id = _export_on_main(out_dir, cfg, mods, history, summary, speakers)
    return dict(summary, model_id=model_id)
