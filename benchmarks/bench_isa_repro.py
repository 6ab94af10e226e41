"""Benchmark: does CPU training give the same bits on an AVX2-only and on an AVX-512 machine, and which setting
makes it so (issue 20, part 3)?

The AVX2-only machine is *simulated* on this AVX-512 machine by capping every library's instruction set before the
process starts (:data:`AVX2_SIM`): PyTorch's own vectorised kernels (``ATEN_CPU_CAPABILITY=avx2``), oneDNN's JIT
kernels (``ONEDNN_MAX_CPU_ISA=AVX2``) and MKL (``MKL_ENABLE_INSTRUCTIONS=AVX2``). That a real AVX2 CPU computes what
the capped libraries compute here is an assumption (a library may detect the CPU some other way, or a real CPU may
lack an instruction, e.g. FMA, that the capped code path still uses).

For each setting ``S`` of :data:`SETTINGS` (environment variables, torch threads,
``torch.use_deterministic_algorithms``) two subprocesses run the same work: the *AVX-512 side* with ``S`` alone and
the *AVX2 side* with :data:`AVX2_SIM` plus ``S`` (a setting is applied on both machines). Each subprocess

1. runs single ops on fixed random inputs (``torch.stft`` as in the Fbank front end, ``matmul``, ``conv1d``,
   ``exp``, ``log``, ``softmax``, ``tanh``, ``sigmoid``, ``sum``, ``batch_norm``, the backward of ``conv1d``) and
   keeps their outputs;
2. builds a tiny x-vector (softmax head) and a tiny ECAPA-TDNN (AAM head) with the library's
   :func:`~nessa_lib.encoders.modules.build_modules`, runs a forward pass of a fixed random waveform batch
   keeping every module's output in call order (forward hooks), then trains them by hand for
   :data:`HAND_STEPS` Adam steps on fixed random batches with the study's losses, keeping all weights after each
   step;
3. trains the x-vector and the ECAPA with the library's own :func:`~nessa_lib.encoders.brain.train_encoder`
   (``max_steps``) on a small synthetic manifest and hashes the exported ``encoder.safetensors`` tensors.

The parent prints, per setting: whether the two sides are bit-identical (ops, layers, steps, exported weights), the
first op / layer / step that differs and the largest absolute difference there, and the wall time of the
training parts against the default setting's AVX-512 side. Every configuration is also compared with the plain
AVX-512 run (``default``) to say what each setting changes by itself. ``--cost NAMES`` adds a timing of study-size
training steps (``channels=128``, batch 64 crops of 1.5 s, as ``DEFAULT_CONFIGS``) on the AVX-512 side of the named
settings (their own thread counts), best of ``--repeats`` interleaved rounds, as ratios to the first name.

No target: the script reports and exits 0.

Run: ``.venv/bin/python benchmarks/bench_isa_repro.py [--only default,all-avx2] [--cost default,RECOMMENDED]``
(about 4 minutes on 2 cores for all settings; ``--cost`` about 20 s per named setting and round).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The simulated AVX2-only machine: every library capped to AVX2.
AVX2_SIM = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: Settings tried on both sides: (name, environment, torch threads, deterministic algorithms).
SETTINGS = [
    ("default", {}, 1, False),
    ("threads-2", {}, 2, False),
    ("deterministic", {}, 1, True),
    ("mkl-cbwr-avx2", {"MKL_CBWR": "AVX2"}, 1, False),
    ("mkl-cbwr-compatible", {"MKL_CBWR": "COMPATIBLE"}, 1, False),
    ("mkl-avx2", {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, 1, False),
    ("onednn-avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}, 1, False),
    ("aten-avx2", {"ATEN_CPU_CAPABILITY": "avx2"}, 1, False),
    ("aten+onednn-avx2", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, 1, False),
    ("aten+onednn-avx2+cbwr", {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
     1, False),
    ("all-avx2", dict(AVX2_SIM), 1, False),
    ("all-avx2+cbwr", dict(AVX2_SIM, MKL_CBWR="AVX2"), 1, False),
    ("all-avx2-threads-2", dict(AVX2_SIM), 2, False),
    ("aten+onednn-avx2+cbwr-threads-2",
     {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}, 2, False),
]
#: The setting docs/reproducibility.md recommends (with a fixed thread count), and the one ``--cost`` compares.
RECOMMENDED = "aten+onednn-avx2+cbwr"
#: Environment variables this script sets itself; removed from the inherited environment of every subprocess.
CONTROLLED = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS")
HAND_STEPS = 6
TINY = dict(emb_dim=16, channels=32, n_mels=24, crop_s=0.5, batch_size=8, epochs=1, lr=1e-2,
            valid_utts_per_speaker=1, valid_crop_s=1.0, data="memory", data_workers=0)
ARCHS = (("xvector", "softmax"), ("ecapa", "aam"))
SR = 16000


def side_env(env: dict, threads: int, avx2: bool) -> dict:
    """The subprocess environment of one side of a setting.

    Parameters
    ----------
    env : dict
        The setting's environment variables.
    threads : int
        Torch / OpenMP / MKL threads.
    avx2 : bool
        The simulated AVX2 side: :data:`AVX2_SIM` under the setting's own variables.

    Returns
    -------
    dict
        The full environment (the inherited one without :data:`CONTROLLED`, plus these).
    """
    out = {k: v for k, v in os.environ.items() if k not in CONTROLLED}
    out.update(AVX2_SIM if avx2 else {})
    out.update(env)
    out.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return out


def weights_hash(tensors: dict) -> str:
    """SHA-256 (first 16 hex digits) of the float bytes of ``tensors``, in sorted key order.

    Parameters
    ----------
    tensors : dict of str to torch.Tensor

    Returns
    -------
    str
    """
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def make_manifest(root: Path, n_spk: int = 8, n_utt: int = 6, dur_s: float = 1.0) -> Path:
    """A small synthetic training manifest: each speaker a harmonic tone plus noise, 16-bit WAV.

    Parameters
    ----------
    root : pathlib.Path
        Folder to write into.
    n_spk, n_utt : int
        Speakers and utterances per speaker.
    dur_s : float
        Utterance length in seconds.

    Returns
    -------
    pathlib.Path
        The manifest CSV.
    """
    import numpy as np
    import pandas as pd
    import soundfile as sf

    from nessa_lib.data.manifest import write_manifest

    rng = np.random.default_rng(0)
    t = np.arange(int(dur_s * SR)) / SR
    rows = []
    for s in range(n_spk):
        for u in range(n_utt):
            f0 = 100 + 30 * s
            x = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
            x = 0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))
            p = root / f"spk{s}" / f"spk{s}_{u}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, x.astype(np.float32), SR, subtype="PCM_16")
            rows.append(dict(utt_id=f"spk{s}_{u}", speaker_id=f"spk{s}", path=str(p), duration_s=dur_s,
                             split="train"))
    manifest = root / "manifest.csv"
    write_manifest(pd.DataFrame(rows), manifest)
    return manifest


# ------------------------------------------------------------------------------------------- in the subprocess


def _ops() -> dict:
    """Outputs of single ops on fixed random inputs, in order (first the front end's, then the network's)."""
    import torch

    g = torch.Generator().manual_seed(0)
    wav = torch.randn(4, 8000, generator=g)
    x = torch.randn(8, 32, 120, generator=g)
    w = torch.randn(32, 32, 5, generator=g) * 0.1
    a, b = torch.randn(96, 160, generator=g), torch.randn(160, 64, generator=g)
    out = {}
    out["stft (MKL FFT)"] = torch.stft(wav, 400, 160, window=torch.hamming_window(400), return_complex=True).abs()
    out["matmul (MKL sgemm)"] = a @ b
    out["conv1d (oneDNN)"] = torch.nn.functional.conv1d(x, w, padding=2)
    out["exp"] = torch.exp(x)
    out["log"] = torch.log(x.abs() + 1e-3)
    out["softmax"] = torch.softmax(x, dim=-1)
    out["tanh"] = torch.tanh(x)
    out["sigmoid"] = torch.sigmoid(x)
    out["sum"] = x.sum(dim=-1)
    out["mean+var"] = torch.cat([x.mean(dim=(0, 2)), x.var(dim=(0, 2))])
    out["batch_norm"] = torch.nn.functional.batch_norm(x, None, None, training=True)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    torch.nn.functional.conv1d(xr, wr, padding=2).square().sum().backward()
    out["conv1d backward (oneDNN)"] = torch.cat([xr.grad.flatten(), wr.grad.flatten()])
    return out


def _loss_fn(objective: str):
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper
    import torch

    if objective == "aam":
        return LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30.0))
    return LogSoftmaxWrapper(torch.nn.Identity())


def _hand(arch: str, objective: str) -> tuple[list, list, float]:
    """Per-module forward outputs (call order) and weights after each of HAND_STEPS Adam steps; train time."""
    import torch

    from nessa_lib.encoders.config import EncoderConfig
    from nessa_lib.encoders.modules import _embed_batch, build_modules

    cfg = EncoderConfig(**{**TINY, "name": arch, "architecture": arch, "objective": objective})
    n_spk = 8
    torch.manual_seed(0)
    mods = build_modules(cfg, n_speakers=n_spk)
    g = torch.Generator().manual_seed(1)
    wavs = [torch.randn(8, 8000, generator=g) * 0.1 for _ in range(HAND_STEPS)]
    labels = [torch.randint(0, n_spk, (8,), generator=g) for _ in range(HAND_STEPS)]
    lens = torch.ones(8)
    layers, seen = [], set()

    def hook(name):
        def f(_mod, _inp, out):
            if name not in seen and isinstance(out, torch.Tensor):
                seen.add(name)
                layers.append((name, out.detach().clone()))
        return f

    handles = [m.register_forward_hook(hook(f"{key}.{n}" if n else key))
               for key, mod in mods.items() for n, m in mod.named_modules()]
    for m in mods.values():
        m.train()
    with torch.no_grad():
        _embed_batch(mods, wavs[0], lens)
    for h in handles:
        h.remove()
    trained = [m for m in mods.values() if any(True for _ in m.parameters())]
    params = [p for m in trained for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = _loss_fn(objective)
    steps = []
    t0 = time.perf_counter()
    for wav, lab in zip(wavs, labels):
        emb = _embed_batch(mods, wav, lens)
        head = mods["classifier"](emb.unsqueeze(1))
        loss = loss_fn(head.reshape(head.shape[0], 1, -1), lab.unsqueeze(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append(torch.cat([p.detach().flatten() for p in params]).clone())
    return layers, steps, time.perf_counter() - t0


def _library_train(manifest: str, arch: str, objective: str, max_steps: int) -> tuple[str, dict, float]:
    """Train with the library's train_encoder; hash and tensors of the export, wall time."""
    from safetensors.torch import load_file

    from nessa_lib.encoders.brain import train_encoder
    from nessa_lib.encoders.config import WEIGHTS_FILE, EncoderConfig

    cfg = EncoderConfig(**{**TINY, "name": arch, "architecture": arch, "objective": objective,
                           "max_steps": max_steps})
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        train_encoder(manifest, out, cfg, progress=False, device="cpu")
        dt = time.perf_counter() - t0
        w = load_file(str(Path(out) / WEIGHTS_FILE))
    return weights_hash(w), w, dt


def _cost(steps: int) -> dict:
    """Seconds per study-size training step (ECAPA, channels 128, batch 64 x 1.5 s, AAM) after one warm-up step."""
    import torch

    from nessa_lib.encoders.config import EncoderConfig
    from nessa_lib.encoders.modules import _embed_batch, build_modules

    out = {}
    for arch, objective in ARCHS:
        cfg = EncoderConfig(name=arch, architecture=arch, objective=objective, channels=128,
                            emb_dim=192 if arch == "ecapa" else 128)
        torch.manual_seed(0)
        mods = build_modules(cfg, n_speakers=200)
        params = [p for m in mods.values() for p in m.parameters()]
        opt = torch.optim.Adam(params, lr=1e-3)
        loss_fn = _loss_fn(objective)
        wav, lab, lens = torch.randn(64, 24000) * 0.1, torch.randint(0, 200, (64,)), torch.ones(64)
        times = []
        for _ in range(steps + 1):
            t0 = time.perf_counter()
            emb = _embed_batch(mods, wav, lens)
            head = mods["classifier"](emb.unsqueeze(1))
            loss = loss_fn(head.reshape(64, 1, -1), lab.unsqueeze(1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        out[arch] = min(times[1:])
    return out


def worker(spec: dict) -> None:
    """Run the measurements of one side of one setting and save them with ``torch.save`` to ``spec['out']``.

    Parameters
    ----------
    spec : dict
        ``threads``, ``deterministic``, ``manifest``, ``max_steps``, ``out``, ``cost_steps`` (0: no cost timing),
        ``parts`` (subset of ``ops``, ``hand``, ``library``).
    """
    import torch

    torch.set_num_threads(spec["threads"])
    torch.use_deterministic_algorithms(spec["deterministic"])
    res = {"capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}
    if "ops" in spec["parts"]:
        res["ops"] = _ops()
    if "hand" in spec["parts"]:
        for arch, objective in ARCHS:
            res[f"{arch}/layers"], res[f"{arch}/steps"], res[f"{arch}/hand_s"] = _hand(arch, objective)
    if "library" in spec["parts"]:
        for arch, objective in ARCHS:
            res[f"{arch}/lib_hash"], res[f"{arch}/lib_weights"], res[f"{arch}/lib_s"] = \
                _library_train(spec["manifest"], arch, objective, spec["max_steps"])
    if spec.get("cost_steps"):
        res["cost"] = _cost(spec["cost_steps"])
    torch.save(res, spec["out"])


# ------------------------------------------------------------------------------------------------ in the parent


def run_side(env: dict, threads: int, deterministic: bool, avx2: bool, tmp: Path, tag: str, manifest: Path,
             max_steps: int, parts=("ops", "hand", "library"), cost_steps: int = 0) -> dict:
    """Run :func:`worker` in a fresh interpreter with the environment of one side and load its results.

    Parameters
    ----------
    env, threads, deterministic, avx2
        See :func:`side_env` and :data:`SETTINGS`.
    tmp : pathlib.Path
        Folder for the result file.
    tag : str
        File name stem.
    manifest : pathlib.Path
        Training manifest of the library run.
    max_steps : int
        Optimizer steps of the library run.
    parts : sequence of str
        Which measurements (see :func:`worker`).
    cost_steps : int
        Study-size steps to time (0: none).

    Returns
    -------
    dict
        The worker's results plus ``wall_s`` (the whole subprocess).
    """
    import torch

    out = tmp / f"{tag}.pt"
    spec = dict(threads=threads, deterministic=deterministic, manifest=str(manifest), max_steps=max_steps,
                out=str(out), parts=list(parts), cost_steps=cost_steps)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], check=True,
                   env=side_env(env, threads, avx2))
    res = torch.load(out, weights_only=False)
    res["wall_s"] = time.perf_counter() - t0
    return res


def _maxdiff(a, b) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def compare(a: dict, b: dict) -> dict:
    """Where two sides' results first differ.

    Parameters
    ----------
    a, b : dict
        Results of :func:`run_side`.

    Returns
    -------
    dict
        ``ops``: names of the single ops that differ (with max abs difference); per architecture ``first_layer``
        (name, max abs difference) or None, ``first_step`` (1-based, max abs difference) or None, ``lib_equal``.
    """
    import torch

    out = {}
    if "ops" in a and "ops" in b:
        out["ops"] = {k: _maxdiff(a["ops"][k], b["ops"][k]) for k in a["ops"]
                      if not torch.equal(a["ops"][k], b["ops"][k])}
    for arch, _ in ARCHS:
        if f"{arch}/layers" in a and f"{arch}/layers" in b:
            out[f"{arch}/first_layer"] = next(((n, _maxdiff(x, y)) for (n, x), (_, y) in
                                               zip(a[f"{arch}/layers"], b[f"{arch}/layers"])
                                               if not torch.equal(x, y)), None)
            out[f"{arch}/first_step"] = next(((i + 1, _maxdiff(x, y)) for i, (x, y) in
                                              enumerate(zip(a[f"{arch}/steps"], b[f"{arch}/steps"]))
                                              if not torch.equal(x, y)), None)
            out[f"{arch}/step_diffs"] = [_maxdiff(x, y) for x, y in zip(a[f"{arch}/steps"], b[f"{arch}/steps"])]
        if f"{arch}/lib_hash" in a and f"{arch}/lib_hash" in b:
            out[f"{arch}/lib_equal"] = a[f"{arch}/lib_hash"] == b[f"{arch}/lib_hash"]
            out[f"{arch}/lib_maxdiff"] = max(_maxdiff(a[f"{arch}/lib_weights"][k], b[f"{arch}/lib_weights"][k])
                                             for k in a[f"{arch}/lib_weights"])
    return out


def _fmt_cmp(c: dict) -> list[str]:
    lines = []
    if "ops" in c:
        lines.append("ops differing: " + (", ".join(f"{k} ({v:.2g})" for k, v in c["ops"].items()) or "none"))
    for arch, _ in ARCHS:
        if f"{arch}/first_layer" in c:
            fl, fs = c[f"{arch}/first_layer"], c[f"{arch}/first_step"]
            lines.append(f"{arch}: first layer differing: " + (f"{fl[0]} ({fl[1]:.2g})" if fl else "none")
                         + "; first step differing: " + (f"{fs[0]} ({fs[1]:.2g})" if fs else "none")
                         + "; weights max|diff| per step: "
                         + " ".join(f"{d:.1g}" for d in c[f"{arch}/step_diffs"]))
        if f"{arch}/lib_equal" in c:
            lines.append(f"{arch}: train_encoder export identical: {c[f'{arch}/lib_equal']}"
                         + ("" if c[f"{arch}/lib_equal"] else f" (max|diff| {c[f'{arch}/lib_maxdiff']:.2g})"))
    return lines


def _train_s(r: dict) -> float:
    return sum(r.get(f"{a}/hand_s", 0) + r.get(f"{a}/lib_s", 0) for a, _ in ARCHS)


def main(argv=None) -> None:
    """Parse arguments, run every setting's two sides, print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--only", help="comma-separated setting names (default: all)")
    ap.add_argument("--max-steps", type=int, default=4, help="optimizer steps of the train_encoder runs")
    ap.add_argument("--cost", metavar="NAMES",
                    help="comma-separated settings whose study-size training steps are timed (ratios to the first); "
                         "'none' in --only skips the comparison part")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the --cost timing")
    args = ap.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from machine import cpu_name

    settings = SETTINGS if not args.only else [s for s in SETTINGS if s[0] in args.only.split(",")]
    print(f"{cpu_name()}; AVX2 side = AVX-512 side + {AVX2_SIM}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = make_manifest(tmp / "corpus")
        res = {}
        for name, env, threads, det in settings:
            for side in ("avx512", "avx2"):
                r = run_side(env, threads, det, side == "avx2", tmp, f"{name}-{side}", manifest, args.max_steps)
                res[name, side] = r
                print(f"  ran {name:24s} {side:6s}: ATen capability {r['capability']}, {r['threads']} thread(s), "
                      f"training parts {_train_s(r):.1f} s, process {r['wall_s']:.1f} s", flush=True)
        base = res.get(("default", "avx512"))
        print("\n== per setting: AVX-512 side vs AVX2 side (setting applied on both)")
        for name, *_ in settings:
            a, b = res[name, "avx512"], res[name, "avx2"]
            c = compare(a, b)
            same = all(c.get(f"{x}/lib_equal") and c.get(f"{x}/first_step") is None for x, _ in ARCHS)
            ratio = f"{_train_s(a) / _train_s(base):.2f}" if base else "n/a"
            print(f"-- {name}: {'BIT-IDENTICAL' if same else 'DIFFERENT'}; train_encoder hashes "
                  + " ".join(f"{x}={a[f'{x}/lib_hash']}/{b[f'{x}/lib_hash']}" for x, _ in ARCHS)
                  + f"; AVX-512 side training time / default's: {ratio}")
            for line in _fmt_cmp(c):
                print("     " + line)
        if base:
            print("\n== each configuration's AVX-512 side vs the plain AVX-512 run (default): what the setting "
                  "changes by itself")
            for name, *_ in settings:
                if name != "default":
                    c = compare(res[name, "avx512"], base)
                    print(f"-- {name}:")
                    for line in _fmt_cmp(c):
                        print("     " + line)
        if args.cost:
            names = [n if n != "RECOMMENDED" else RECOMMENDED for n in args.cost.split(",")]
            chosen = [next(s for s in SETTINGS if s[0] == n) for n in names]
            times = {n: [] for n in names}
            for i in range(args.repeats):
                for name, env, threads, det in chosen:
                    r = run_side(env, threads, det, False, tmp, f"cost-{name}-{i}", manifest, args.max_steps,
                                 parts=(), cost_steps=3)
                    times[name].append(r["cost"])
            print(f"\n== study-size training step (batch 64 x 1.5 s, channels 128), best of {args.repeats} rounds "
                  "x 3 steps, AVX-512 side (ratio to the first)")
            for arch, _ in ARCHS:
                best = {n: min(t[arch] for t in times[n]) for n in names}
                print(f"   {arch}: " + ", ".join(f"{n} {best[n]:.3f} s/step ({best[n] / best[names[0]]:.2f})"
                                                 for n in names))

if __name__ == "__main__":
    main()
