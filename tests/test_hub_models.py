"""Pretrained encoders from SpeechBrain and WeSpeaker (nessa_lib.zoo.from_speechbrain / from_wespeaker) and the
export of the study's encoders to both formats: offline loading (network blocked, read-only folders), agreement
with SpeechBrain's own encode_batch and with the study's Encoder.embed, WeSpeaker's feature recipe, model ids,
the extraction protocol, and every error path."""

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from nessa_lib import zoo
from nessa_lib.encoders.config import EncoderConfig
from nessa_lib.encoders.export import _export, load_encoder
from nessa_lib.encoders.modules import build_modules

SR = 16000
N_MELS = 24
ARCHS = ("xvector", "ecapa", "resnet")
HUB_FILES = ("hyperparams.yaml", "embedding_model.ckpt", "mean_var_norm_emb.ckpt", "classifier.ckpt",
             "label_encoder.txt")
# What speechbrain/spkrec-ecapa-voxceleb's hyperparams.yaml looks like (ECAPA shrunk to test size): the weights'
# paths go through pretrained_path, which names the hub repo.
HUB_YAML = """# ############################################################################
# Model: ECAPA for speaker embeddings (hub layout, test size)
# ############################################################################
n_mels: 24
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
out_n_neurons: 5

compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>

mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False

embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    kernel_sizes: [5, 3, 3, 3, 1]
    dilations: [1, 2, 3, 4, 1]
    attention_channels: 8
    lin_neurons: 12

classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 12
    out_neurons: !ref <out_n_neurons>

mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False

modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""


# ---------------------------------------------------------------------------------------------- helpers


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its size, mtime and bytes (to prove nothing was written)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def _read_only(folder: Path):
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)


def _writable(folder: Path):
    folder.chmod(0o755)
    for p in folder.iterdir():
        p.chmod(0o644)


def _write_hub_folder(folder: Path, seed: int = 1) -> Path:
    from speechbrain.dataio.encoder import CategoricalEncoder
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
    from speechbrain.processing.features import InputNormalization

    folder.mkdir(parents=True)
    (folder / "hyperparams.yaml").write_text(HUB_YAML)
    torch.manual_seed(seed)
    model = ECAPA_TDNN(N_MELS, channels=[16, 16, 16, 16, 48], attention_channels=8, lin_neurons=12)
    _perturb_batchnorm(model, seed)
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    torch.save(Classifier(12, out_neurons=5).state_dict(), folder / "classifier.ckpt")
    norm = InputNormalization(norm_type="global", std_norm=False).train()
    norm(torch.randn(4, 1, 12), torch.ones(4))  # global statistics, as a trained model's
    norm._save(folder / "mean_var_norm_emb.ckpt")
    labels = CategoricalEncoder()
    labels.update_from_iterable(["id10001", "id10002", "id10003", "id10004", "id10005"])
    labels.save(folder / "label_encoder.txt")
    return folder


def _perturb_batchnorm(model, seed):
    """Non-trivial running statistics, so a wrongly (un)loaded or skipped batch norm changes the embeddings."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(0.5 + 1.5 * torch.rand(m.running_var.shape, generator=g))


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory):
    """A read-only SpeechBrain hub-layout folder (speechbrain/spkrec-ecapa-voxceleb's files, tiny weights)."""
    folder = _write_hub_folder(tmp_path_factory.mktemp("hub") / "spkrec-ecapa-voxceleb")
    _read_only(folder)
    yield folder
    _writable(folder)


def _study_encoder(root: Path, arch: str, seed: int = 0) -> Path:
    """A study encoder export (the format train_encoder writes) with random weights; no training needed."""
    out = root / f"{arch}-{seed}"
    out.mkdir(parents=True)
    cfg = EncoderConfig(name=arch, architecture=arch, objective="supcon", emb_dim=16, n_mels=N_MELS,
                        channels=4 if arch == "resnet" else 16, seed=seed)
    torch.manual_seed(seed)
    mods = build_modules(cfg)
    _perturb_batchnorm(mods["embedding_model"], seed)
    _export(out, cfg, mods, history=[], summary={}, speakers=["a", "b"])
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    return {arch: _study_encoder(root, arch) for arch in ARCHS}


def _batch(seed=0, n=3, seconds=1.0):
    g = torch.Generator().manual_seed(seed)
    wavs = 0.1 * torch.randn(n, int(seconds * SR), generator=g)
    lengths = torch.tensor([1.0, 0.55, 0.8][:n])
    for i, rel in enumerate(lengths):  # zero padding, as extract_embeddings builds batches
        wavs[i, int(round(float(rel) * wavs.shape[1])):] = 0
    return wavs, lengths


def _max_abs(a, b):
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


def _unit_diff(a, b):
    """Max abs difference of the L2-normalised rows: the study scores cosine similarities of unit-norm rows (and
    its aligners normalise their input), so this is the difference that can change a result."""
    unit = torch.nn.functional.normalize
    return _max_abs(unit(torch.as_tensor(a).reshape(-1, a.shape[-1]), dim=1),
                    unit(torch.as_tensor(b).reshape(-1, b.shape[-1]), dim=1))


# ---------------------------------------------------------------------------------------------- SpeechBrain hub


def test_plain_from_hparams_on_a_hub_folder_goes_to_the_network(hub_folder, offline):
    """The trap from_speechbrain avoids: SpeechBrain follows pretrained_path to the hub (here: refused)."""
    from speechbrain.inference.speaker import EncoderClassifier

    before = _snapshot(hub_folder)
    with pytest.raises(Exception, match="(?i)offline|cache|network|connection"):
        EncoderClassifier.from_hparams(source=str(hub_folder))
    assert _snapshot(hub_folder) == before


def test_hub_folder_loads_offline_without_writing_and_matches_encode_batch(hub_folder, offline, tmp_path):
    before = _snapshot(hub_folder)
    enc = zoo.from_speechbrain(hub_folder)
    assert _snapshot(hub_folder) == before
    if os.getuid() != 0:  # root ignores permissions; the snapshot is the proof then
        assert not os.access(hub_folder, os.W_OK)
    assert enc.model_id.startswith("speechbrain@") and enc.sample_rate == SR and enc.emb_dim == 12
    assert enc.min_samples >= 400  # at least one 25 ms window

    # SpeechBrain's own documented way to load the same files, independently of from_speechbrain's path handling:
    # a writable copy, pretrained_path overridden, files collected into a savedir.
    from speechbrain.inference.speaker import EncoderClassifier

    copy = Path(shutil.copytree(hub_folder, tmp_path / "copy"))
    _writable(copy)
    ref = EncoderClassifier.from_hparams(source=str(copy), savedir=str(tmp_path / "save"),
                                         overrides={"pretrained_path": str(copy)})
    wavs, lengths = _batch()
    with torch.no_grad():
        want = ref.encode_batch(wavs, lengths).squeeze(1)
    got = enc.embed(wavs, lengths)
    assert got.shape == (3, 12) and got.dtype == torch.float32
    cos = torch.nn.functional.cosine_similarity(got, want, dim=1)
    assert bool((cos > 0.9999).all()), cos
    # Relative lengths are honoured: the padded row differs from embedding the whole padded row.
    assert _max_abs(enc.embed(wavs[1:2], torch.ones(1)), got[1:2]) > 1e-3
    # normalize=True is SpeechBrain's encode_batch(normalize=True) (mean_var_norm_emb from the folder).
    normed = zoo.from_speechbrain(hub_folder, normalize=True)
    with torch.no_grad():
        want_n = ref.encode_batch(wavs, lengths, normalize=True).squeeze(1)
    assert _max_abs(normed.embed(wavs, lengths), want_n) < 1e-4 and normed.model_id != enc.model_id


def test_model_id_is_stable_location_free_and_weight_sensitive(hub_folder, offline, tmp_path):
    a = zoo.from_speechbrain(hub_folder).model_id
    assert zoo.from_speechbrain(str(hub_folder)).model_id == a
    moved = Path(shutil.copytree(hub_folder, tmp_path / "elsewhere"))
    _writable(moved)
    assert zoo.from_speechbrain(moved).model_id == a
    state = torch.load(moved / "embedding_model.ckpt", weights_only=True)
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = state[key] + 1e-3
    torch.save(state, moved / "embedding_model.ckpt")
    changed = zoo.from_speechbrain(moved)
    assert changed.model_id != a
    wavs, lengths = _batch()
    assert _max_abs(changed.embed(wavs, lengths), zoo.from_speechbrain(hub_folder).embed(wavs, lengths)) > 0


def test_hub_ids_spelled_out_in_the_pretrainer_paths_are_redirected_too(hub_folder, offline, tmp_path):
    """Older hub files name the repo in every path instead of through pretrained_path."""
    folder = Path(shutil.copytree(hub_folder, tmp_path / "spelled"))
    _writable(folder)
    text = HUB_YAML.replace("pretrained_path: speechbrain/spkrec-ecapa-voxceleb\n", "")
    text = text.replace("!ref <pretrained_path>/", "speechbrain/spkrec-ecapa-voxceleb/")
    assert "pretrained_path" not in text
    (folder / "hyperparams.yaml").write_text(text)
    wavs, lengths = _batch()
    enc = zoo.from_speechbrain(folder)
    assert _max_abs(enc.embed(wavs, lengths), zoo.from_speechbrain(hub_folder).embed(wavs, lengths)) == 0


def test_speechbrain_savedir_layout_loads_too(hub_folder, offline, tmp_path):
    """A folder SpeechBrain collected (<name>.ckpt, e.g. label_encoder.ckpt) is accepted as well."""
    folder = Path(shutil.copytree(hub_folder, tmp_path / "collected"))
    _writable(folder)
    (folder / "label_encoder.txt").rename(folder / "label_encoder.ckpt")
    enc = zoo.from_speechbrain(folder)
    assert enc.emb_dim == 12 and enc.model_id == zoo.from_speechbrain(hub_folder).model_id  # same bytes, same id


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, about the hostile pickle below
def test_from_speechbrain_errors(hub_folder, offline, tmp_path):
    with pytest.raises(zoo.ModelFileNotFoundError, match=r"folder .*nowhere does not exist"):
        zoo.from_speechbrain(tmp_path / "nowhere")
    assert issubclass(zoo.ModelFileNotFoundError, FileNotFoundError)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=rf"{empty}.*hyperparams.yaml is missing"):
        zoo.from_speechbrain(empty)

    def copy(name):
        d = Path(shutil.copytree(hub_folder, tmp_path / name))
        _writable(d)
        return d

    partial = copy("partial")
    (partial / "embedding_model.ckpt").unlink()
    with pytest.raises(zoo.ModelFileNotFoundError, match=rf"{partial}: embedding_model.ckpt is missing"):
        zoo.from_speechbrain(partial)

    not_speaker = copy("asr")
    (not_speaker / "hyperparams.yaml").write_text("tokenizer: 1\nmodules: {}\n")
    with pytest.raises(zoo.NotASpeakerModelError, match=r"hyperparams.yaml: lacks modules \['compute_features'"):
        zoo.from_speechbrain(not_speaker)
    assert issubclass(zoo.NotASpeakerModelError, ValueError)

    wrong = copy("wrong")
    (wrong / "hyperparams.yaml").write_text(HUB_YAML.replace("lin_neurons: 12", "lin_neurons: 10"))
    with pytest.raises(zoo.NotASpeakerModelError, match=r"embedding_model.ckpt: does not match the ECAPA_TDNN"):
        zoo.from_speechbrain(wrong)

    marker = tmp_path / "code-ran"
    code = copy("code")
    (code / "hyperparams.yaml").write_text(HUB_YAML + f"\n__run: !apply:os.makedirs [{str(marker)!r}]\n")
    with pytest.raises(zoo.NotASpeakerModelError, match=r"hyperparams.yaml:\d+: tag !apply:os.makedirs"):
        zoo.from_speechbrain(code)
    assert not marker.exists()

    pickled = copy("pickled")
    with open(pickled / "classifier.ckpt", "wb") as f:  # a pickle that would run code if unpickled freely
        import pickle

        pickle.dump({"w": _Evil(tmp_path / "evil-ran")}, f)
    with pytest.raises(zoo.NotASpeakerModelError, match=r"classifier.ckpt: not a weights-only checkpoint"):
        zoo.from_speechbrain(pickled)
    assert not (tmp_path / "evil-ran").exists()

    with pytest.raises(zoo.HubUnreachableError, match=r"huggingface-cli download nessa-tests/no-such-model"):
        zoo.from_speechbrain("nessa-tests/no-such-model", savedir=tmp_path / "dl")
    assert issubclass(zoo.HubUnreachableError, FileNotFoundError)


class _Evil:
    """Unpickling this creates a folder: proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


# ---------------------------------------------------------------------------------------------- export -> SpeechBrain


@pytest.mark.parametrize("arch", ARCHS)
def test_export_speechbrain_round_trip(study, arch, tmp_path, offline):
    from speechbrain.inference.speaker import EncoderClassifier

    enc = load_encoder(study[arch])
    out = zoo.export_speechbrain(study[arch], tmp_path / "sb")
    assert {p.name for p in out.iterdir()} == {"hyperparams.yaml", "embedding_model.ckpt", "nessa_export.json"}
    assert json.loads((out / "nessa_export.json").read_text())["source_model_id"] == enc.model_id
    _read_only(out)
    try:
        before = _snapshot(out)
        wavs, lengths = _batch(seed=1)
        # SpeechBrain's own loader, straight from the folder, offline.
        ref = EncoderClassifier.from_hparams(source=str(out))
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the x-vector's pooling noise, seeded as Encoder.embed seeds it
            full = ref.encode_batch(wavs).squeeze(1)
        assert _unit_diff(full, enc.embed(wavs)) < 1e-4 and _max_abs(full, enc.embed(wavs)) < 1e-4
        sb = zoo.from_speechbrain(out)
        assert sb.emb_dim == enc.emb_dim and sb.min_samples == enc.min_samples
        assert _max_abs(sb.embed(wavs, lengths), enc.embed(wavs, lengths)) < 1e-4  # same modules: exact
        assert _snapshot(out) == before
    finally:
        _writable(out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.export_speechbrain(study[arch], out)
    zoo.export_speechbrain(study[arch], out, overwrite=True)


def test_resnet_rows_are_embedded_at_their_true_length(study, tmp_path):
    """ResNet ignores relative lengths: embedding the padded batch whole would let padding in."""
    out = zoo.export_speechbrain(study["resnet"], tmp_path / "sb")
    sb = zoo.from_speechbrain(out)
    wavs, lengths = _batch(seed=2)
    got = sb.embed(wavs, lengths)
    with torch.no_grad():
        whole = sb.classifier.encode_batch(wavs, lengths).squeeze(1)
    n = int(round(float(lengths[1]) * wavs.shape[1]))
    assert _max_abs(got[1:2], sb.embed(wavs[1:2, :n])) < 1e-5
    assert _max_abs(got[1], whole[1]) > 1e-3


# ---------------------------------------------------------------------------------------------- WeSpeaker / ONNX


class _PoolingNet(torch.nn.Module):
    """A stand-in for a WeSpeaker model: (B, T, 80) features -> mean+std pooling -> linear -> (B, D)."""

    def __init__(self, seed, dim=8, n_feat=80):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv1d(n_feat, 16, 3)
        self.out = torch.nn.Linear(32, dim)

    def forward(self, feats):
        h = torch.relu(self.conv(feats.transpose(1, 2)))
        return self.out(torch.cat([h.mean(dim=2), h.std(dim=2)], dim=1))


def _wespeaker_onnx(path: Path, seed: int, input_name="feats", output_name="embs") -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices (WeSpeaker uses it too)
        _export_pooling_net(path, seed, input_name, output_name)
    return path


def _export_pooling_net(path, seed, input_name, output_name):
    torch.onnx.export(_PoolingNet(seed).eval(), (torch.randn(1, 200, 80),), str(path), dynamo=False, opset_version=14,
                      input_names=[input_name], output_names=[output_name],
                      dynamic_axes={input_name: {0: "B", 1: "T"}, output_name: {0: "B"}})


def _wespeaker_reference(path, wav):
    """WeSpeaker's wespeaker/bin/infer_onnx.py, step by step, on one waveform."""
    import onnxruntime as ort
    import torchaudio.compliance.kaldi as kaldi

    mat = kaldi.fbank(wav[None] * (1 << 15), num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0,
                      sample_frequency=16000, window_type="hamming", use_energy=False)
    mat = mat - torch.mean(mat, dim=0)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(output_names=["embs"], input_feed={"feats": mat.unsqueeze(0).numpy()})[0][0]


def test_wespeaker_onnx_follows_the_wespeaker_recipe(tmp_path):
    path = _wespeaker_onnx(tmp_path / "ws.onnx", seed=0)
    enc = zoo.from_wespeaker(path)
    assert enc.frontend == {"kind": "kaldi", "num_mel_bins": 80} and enc.emb_dim == 8 and enc.sample_rate == SR
    assert enc.min_samples >= 400 and enc.model_id.startswith("wespeaker@")
    wavs, lengths = _batch(seed=3)
    # A very quiet row: only there does the int16 scaling matter (elsewhere CMN removes a constant log gain).
    wavs = torch.cat([wavs, 1e-6 * torch.randn(1, wavs.shape[1], generator=torch.Generator().manual_seed(5))])
    lengths = torch.cat([lengths, torch.ones(1)])
    got = enc.embed(wavs, lengths)
    for i in range(4):
        n = int(round(float(lengths[i]) * wavs.shape[1]))  # only the valid samples of a padded row
        assert _max_abs(got[i], _wespeaker_reference(path, wavs[i, :n])) < 1e-4
    assert _max_abs(got[1], _wespeaker_reference(path, wavs[1])) > 1e-3  # padding would change it


def test_wespeaker_model_id(tmp_path):
    a = _wespeaker_onnx(tmp_path / "a.onnx", seed=0)
    b = _wespeaker_onnx(tmp_path / "b.onnx", seed=1)
    shutil.copy(a, tmp_path / "a2.onnx")
    ida = zoo.from_wespeaker(a).model_id
    assert ida == zoo.from_wespeaker(a).model_id == zoo.from_wespeaker(tmp_path / "a2.onnx").model_id
    assert zoo.from_wespeaker(b).model_id != ida


def test_from_wespeaker_errors(tmp_path):
    with pytest.raises(zoo.ModelFileNotFoundError, match=r"nothing.onnx does not exist"):
        zoo.from_wespeaker(tmp_path / "nothing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(zoo.NotASpeakerModelError, match=r"junk.onnx: not a loadable ONNX model"):
        zoo.from_wespeaker(tmp_path / "junk.onnx")
    other = _wespeaker_onnx(tmp_path / "other.onnx", seed=0, input_name="x", output_name="y")
    with pytest.raises(zoo.NotASpeakerModelError, match=r"other.onnx: expected input 'feats'"):
        zoo.from_wespeaker(other)
    plain = _wespeaker_onnx(tmp_path / "plain.onnx", seed=0)
    with pytest.raises(ValueError, match="records no 'nessa.frontend'"):
        zoo.from_wespeaker(plain, frontend="speechbrain")
    with pytest.raises(ValueError, match="frontend must be"):
        zoo.from_wespeaker(plain, frontend="mfcc")


@pytest.mark.parametrize("arch", ARCHS)
def test_export_onnx_round_trip(study, arch, tmp_path):
    enc = load_encoder(study[arch])
    path = zoo.export_onnx(study[arch], tmp_path / f"{arch}.onnx")
    ws = zoo.from_wespeaker(path)
    assert ws.frontend["kind"] == "speechbrain" and ws.emb_dim == enc.emb_dim and ws.min_samples == enc.min_samples
    wavs, lengths = _batch(seed=4)
    # Full-length rows: the study's batch embedding. (For the x-vector, SpeechBrain's pooling noise is drawn per
    # batch; the ONNX graph carries the single-row draw, a ~1e-5 difference.)
    assert _unit_diff(ws.embed(wavs), enc.embed(wavs)) < 1e-4
    # Padded rows: WeSpeaker's convention has no lengths, so each row is featurised alone at its true length,
    # exactly what the study's encoder gives for that row alone.
    got = ws.embed(wavs, lengths)
    for i in range(3):
        n = int(round(float(lengths[i]) * wavs.shape[1]))
        assert _unit_diff(got[i:i + 1], enc.embed(wavs[i:i + 1, :n])) < 1e-4
    # The front-end mismatch is real: WeSpeaker's Kaldi fbank gives other embeddings from the same graph.
    kaldi = zoo.from_wespeaker(path, frontend="kaldi")
    assert kaldi.model_id != ws.model_id and _unit_diff(kaldi.embed(wavs), ws.embed(wavs)) > 1e-3


def test_exports_refuse_what_cannot_be_expressed(tmp_path, study):
    from nessa_lib.encoders.pretrained import PRETRAINED_FORMAT

    desc = tmp_path / "resemblyzer"
    desc.mkdir()
    (desc / "encoder.json").write_text(json.dumps({"format": PRETRAINED_FORMAT, "model_id": "resemblyzer@x",
                                                   "config": {"architecture": "resemblyzer"}}))
    with pytest.raises(zoo.NotExportableError, match=r"resemblyzer.*no SpeechBrain/WeSpeaker counterpart"):
        zoo.export_speechbrain(desc, tmp_path / "sb")
    with pytest.raises(zoo.NotExportableError, match=r"resemblyzer"):
        zoo.export_onnx(desc, tmp_path / "r.onnx")
    with pytest.raises(FileNotFoundError, match="encoder.json does not exist"):
        zoo.export_onnx(tmp_path / "nothing", tmp_path / "n.onnx")
    (tmp_path / "taken.onnx").write_bytes(b"")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        zoo.export_onnx(study["ecapa"], tmp_path / "taken.onnx")


# ---------------------------------------------------------------------------------------------- protocol


def test_hub_encoders_work_with_extract_embeddings_and_carry_their_model_id(hub_folder, study, tmp_path, offline):
    from nessa_lib import align, migrate
    from nessa_lib.data.audio import load_audio
    from nessa_lib.embeddings import load_embeddings, save_embeddings
    from nessa_lib.encoders.extract import extract_embeddings

    rng = np.random.default_rng(0)
    rows = []
    for i, sec in enumerate([1.0, 0.6, 0.8, 1.2]):
        p = tmp_path / f"u{i}.wav"
        sf.write(p, (0.1 * rng.standard_normal(int(sec * SR))).astype(np.float32), SR)
        rows.append(dict(utt_id=f"u{i}", speaker_id=f"s{i % 2}", path=str(p), duration_s=sec))
    manifest = pd.DataFrame(rows)
    sb = zoo.from_speechbrain(hub_folder)
    ws = zoo.from_wespeaker(zoo.export_onnx(study["ecapa"], tmp_path / "ecapa.onnx"))
    # extract_embeddings sorts by duration and pads: its first batch is u1 (0.6 s), u2 (0.8 s), u0 (1.0 s).
    audio = [load_audio(rows[i]["path"], target_sr=SR) for i in (1, 2, 0)]
    padded = torch.zeros(3, max(len(a) for a in audio))
    for j, a in enumerate(audio):
        padded[j, :len(a)] = torch.from_numpy(a)
    rel = torch.tensor([len(a) / padded.shape[1] for a in audio])
    sets = {}
    for name, enc in (("sb", sb), ("ws", ws)):
        es = extract_embeddings(manifest, enc, batch_size=3, progress=False)
        assert es.model_id == enc.model_id and es.embeddings.shape == (4, enc.emb_dim)
        assert list(es.utt_ids) == ["u0", "u1", "u2", "u3"]
        assert _max_abs(es.embeddings[[1, 2, 0]], enc.embed(padded, rel)) < 1e-5
        save_embeddings(tmp_path / f"{name}.npz", es)
        sets[name] = load_embeddings(tmp_path / f"{name}.npz")
        assert sets[name].model_id == enc.model_id
    # WeSpeaker's convention has no lengths: a padded row equals the row alone.
    assert _max_abs(sets["ws"].embeddings[1], ws.embed(padded[:1, :len(audio[0])])[0]) < 1e-5
    # An aligner fitted for these two spaces refuses embeddings of the wrong one, as for the study's encoders.
    x = rng.standard_normal((12, 12)).astype(np.float32)
    y = rng.standard_normal((12, ws.emb_dim)).astype(np.float32)
    aligner = align.fit("linear", x, y, np.arange(12) // 3, enroll_model_id=sb.model_id, runtime_model_id=ws.model_id)
    with pytest.raises(ValueError, match=r"come from model 'wespeaker@.*fitted for enrollment model 'speechbrain@"):
        migrate.migrate_embeddings(aligner, sets["ws"], side="enrollment", progress=False)
    assert migrate.migrate_embeddings(aligner, sets["sb"], side="enrollment", progress=False).embeddings.shape[0] == 4


# ---------------------------------------------------------------------------------------------- trained encoders


@pytest.mark.parametrize("arch,obj", [("xvector", "softmax"), ("ecapa", "aam"), ("resnet", "aam")])
def test_trained_encoder_round_trips_through_both_exports(tmp_path, arch, obj):
    """As the round trips above, with weights from a real (tiny, ~1 s) training run instead of random ones."""
    from nessa_lib.data.manifest import write_manifest
    from nessa_lib.encoders.brain import train_encoder

    rng = np.random.default_rng(0)
    rows = []
    for s in range(4):  # 4 speakers x 3 utterances: a distinct harmonic tone each, plus noise
        for u in range(3):
            t = np.arange(int(1.2 * SR)) / SR
            x = sum(np.sin(2 * np.pi * (110 + 40 * s) * k * t + rng.uniform(0, 6)) / k for k in range(1, 5))
            p = tmp_path / f"spk{s}_{u}.flac"
            sf.write(p, (0.2 * x / np.abs(x).max() + 0.01 * rng.standard_normal(len(t))).astype(np.float32), SR)
            rows.append(dict(utt_id=f"spk{s}_{u}", speaker_id=f"spk{s}", path=str(p), duration_s=1.2, split="train"))
    write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")
    cfg = EncoderConfig(name=arch, architecture=arch, objective=obj, emb_dim=16, channels=4 if arch == "resnet" else 16,
                        n_mels=N_MELS, crop_s=0.5, batch_size=6, epochs=1, valid_utts_per_speaker=0, lr=1e-2)
    train_encoder(tmp_path / "manifest.csv", tmp_path / "enc", cfg, progress=False)
    enc = load_encoder(tmp_path / "enc")
    wavs, lengths = _batch(seed=6)
    sb = zoo.from_speechbrain(zoo.export_speechbrain(tmp_path / "enc", tmp_path / "sb"))
    assert _max_abs(sb.embed(wavs, lengths), enc.embed(wavs, lengths)) < 1e-4
    ws = zoo.from_wespeaker(zoo.export_onnx(tmp_path / "enc", tmp_path / "enc.onnx"))
    assert _unit_diff(ws.embed(wavs), enc.embed(wavs)) < 1e-4
