"""Chains of aligners: stored profiles carried through several model upgrades (v1 -> v2 -> v3 ...).

A product that upgrades its speaker model every year migrates its stored profiles at each upgrade. With NESSA M2
the profiles land in the new model's own space (:func:`space_id` is the runtime model's id), so
the next upgrade's aligner, fitted v2 -> v3, takes them as they are: the chain *connects*. The rule this module
checks is exactly that: after aligner ``k`` the profiles live in ``space_id(aligner_k)``, and aligner ``k + 1``
must have been fitted for that model on its enrollment side (same id, same dimension).

What connects, by method of the earlier aligner:

- **M2** (``nessa-m2``): profiles move into the runtime model's space; the next aligner must be fitted from that
  runtime model (its ``enroll_model_id`` = this aligner's ``runtime_model_id``).
- **M1, linear** (runtime side mapped, enrollment side the identity): the profiles never move, they stay in the
  *old* model's space; a v2 -> v3 aligner cannot take them. The next upgrade needs an aligner fitted from the
  profiles' model (v1 -> v3): there is nothing to chain.
- **M3, procrustes, speaker-logit** (both sides mapped): the profiles live in a *new* space that neither model
  has (id ``<method>@<hash>``). No aligner fitted between two models accepts them. The principled continuation
  is an aligner fitted *from that space*: pair the old runtime model's embeddings mapped by the M3 aligner's
  runtime side with the new model's embeddings of the same utterances and fit with
  ``enroll_model_id=space_id(m3_aligner)`` (:func:`fit_from_space`); such an aligner connects. Without one the
  chain is refused, with a message naming both files, both ids and this way out.

Only the enrollment side chains (profiles are what is stored); the runtime side of a chain is its last aligner's
runtime side (the runtime model scores against the migrated profiles through it).

``python -m nessa_lib.migrate A.safetensors B.safetensors ... IN.npz OUT.npz`` applies a chain
(:func:`nessa_lib.migrate.migrate_file`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nessa_lib import align, embeddings

logger = logging.getLogger(__name__)


class ChainError(ValueError):
    """A chain of aligners whose model ids or dimensions do not connect (the message names the break)."""


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


def profile_space(aligner: align.Aligner) -> str | None:
    """Model id of the space an aligner migrates profiles into, or ``None`` when the aligner does not record it.

    As :func:`space_id`, except that an aligner with an identity side but no recorded id for
    that side gives ``None`` (its space cannot be named, so a chain through it cannot be checked).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(12, 3))
    >>> profile_space(align.fit("linear", x, x, np.arange(12) // 3, enroll_model_id="X@1", runtime_model_id="Y@1"))
    'X@1'
    >>> profile_space(align.fit("linear", x, x, np.arange(12) // 3)) is None
    True
    """
    if aligner.runtime_spec["kind"] == "identity":
        return aligner.runtime_model_id
    if aligner.enroll_spec["kind"] == "identity":
        return aligner.enroll_model_id
    return space_id(aligner)


def _why(prev: align.Aligner, space: str) -> str:
    """Where ``prev`` leaves the profiles, in words (for a break message)."""
    if prev.runtime_spec["kind"] == "identity":
        return f"migrates profiles into its runtime model's space {space!r}"
    if prev.enroll_spec["kind"] == "identity":
        return (f"leaves profiles in its enrollment model's space {space!r} ({prev.method} maps the runtime side, "
                "not the profiles)")
    return (f"migrates profiles into a new space {space!r} that neither of its models has ({prev.method} maps both "
            "sides)")


def chain_break(prev: align.Aligner, nxt: align.Aligner, names=("previous aligner", "next aligner")) -> str | None:
    """Why aligner ``nxt`` cannot take the profiles that ``prev`` migrated, or ``None`` when they connect.

    The profiles' space after ``prev`` (:func:`profile_space`) must be ``nxt``'s enrollment model and
    ``prev``'s output dimension ``nxt``'s enrollment dimension. An id that one of them does not record cannot be
    compared: that link is logged as unchecked and counted as connecting (as a single migration does).

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(12, 3))
    >>> ab = align.fit("linear", x, x, np.arange(12) // 3, enroll_model_id="v1", runtime_model_id="v2")
    >>> bc = align.fit("linear", x, x, np.arange(12) // 3, enroll_model_id="v2", runtime_model_id="v3")
    >>> print(chain_break(ab, bc, ("ab", "bc")))  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
    ab (linear) leaves profiles in its enrollment model's space 'v1' (linear maps the runtime side, ...), but bc was
    fitted for enrollment model 'v2': the chain does not connect between ab and bc. ... there is nothing to chain.
    """
    a, b = (str(n) for n in names)
    space = profile_space(prev)
    want = nxt.enroll_model_id
    if space is not None and want is not None and space != want:
        msg = (f"{a} ({prev.method}) {_why(prev, space)}, but {b} was fitted for enrollment model {want!r}: the "
               f"chain does not connect between {a} and {b}.")
        if prev.runtime_spec["kind"] == "identity":
            msg += f" Give the aligners in upgrade order; {b} must be fitted from {space!r}."
        elif prev.enroll_spec["kind"] == "identity":
            msg += (f" The next upgrade needs an aligner fitted from {space!r} (the profiles' model) to {b}'s "
                    f"runtime model {nxt.runtime_model_id!r}; there is nothing to chain.")
        else:
            msg += (f" No aligner fitted between two models accepts profiles in that space: fit the next one from "
                    f"it (nessa_lib.chain.fit_from_space: the old runtime model's embeddings mapped by {a}'s "
                    f"runtime side, paired with the new model's), or migrate the original profiles with one "
                    f"aligner fitted from {prev.enroll_model_id!r}.")
        return msg
    if space is None or want is None:
        logger.warning("chain %s -> %s: %s records no model id for the %s, so the link cannot be checked",
                       a, b, a if space is None else b, "profiles' space" if space is None else "enrollment side")
    if prev.shared_dim != nxt.enroll_dim:
        return (f"{a} ({prev.method}) migrates profiles into {prev.shared_dim}-d vectors, but {b} expects "
                f"{nxt.enroll_dim}-d enrollment embeddings: the chain does not connect between {a} and {b}.")
    return None


@dataclass
class AlignerChain:
    """Aligners applied one after another to stored profiles; quacks like an :class:`~nessa_lib.align.Aligner`.

    Build one with :func:`make_chain` (which checks that the links connect) or :func:`load_chain`.
    :meth:`map_enrollment` applies every aligner's enrollment side in order; :meth:`map_runtime` is the last
    aligner's runtime side. ``fit_agreement`` and ``fit_reference`` are the *last* aligner's (no fit data of the
    whole chain exists), which :func:`nessa_lib.migrate.check_files` says in its report.
    """

    aligners: list
    names: list = field(default_factory=list)

    @property
    def method(self) -> str:
        return "chain(" + " > ".join(a.method for a in self.aligners) + ")"

    @property
    def enroll_model_id(self):
        return self.aligners[0].enroll_model_id

    @property
    def runtime_model_id(self):
        return self.aligners[-1].runtime_model_id

    @property
    def enroll_dim(self) -> int:
        return self.aligners[0].enroll_dim

    @property
    def runtime_dim(self) -> int:
        return self.aligners[-1].runtime_dim

    @property
    def shared_dim(self) -> int:
        return self.aligners[-1].shared_dim

    @property
    def fit_agreement(self) -> dict:
        return self.aligners[-1].fit_agreement

    @property
    def fit_reference(self) -> dict:
        return self.aligners[-1].fit_reference

    @property
    def space_id(self) -> str:
        """The space the chain migrates profiles into: :func:`space_id` of the last aligner."""
        return space_id(self.aligners[-1])

    def map_enrollment(self, emb_x, *, model_id: str | None = None, source: str | None = None) -> np.ndarray:
        """Profiles of the first aligner's enrollment model through every aligner's enrollment side."""
        out = self.aligners[0].map_enrollment(emb_x, model_id=model_id, source=source)
        for a in self.aligners[1:]:
            out = a.map_enrollment(out)
        return out

    def map_runtime(self, emb_y, *, model_id: str | None = None, source: str | None = None) -> np.ndarray:
        """Runtime embeddings of the last aligner's runtime model through its runtime side."""
        return self.aligners[-1].map_runtime(emb_y, model_id=model_id, source=source)


def make_chain(aligners, names=None) -> AlignerChain:
    """Check that the aligners connect (:func:`chain_break`) and chain them.

    Parameters
    ----------
    aligners : sequence of Aligner
        In upgrade order: the first takes the stored profiles.
    names : sequence of str, optional
        How to name each aligner in errors (file names); default ``aligner 1``, ``aligner 2``, ...

    Raises
    ------
    ChainError
        Naming the first break: both aligners, the profiles' space after the first, the id the second expects.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
    >>> ab = align.fit("nessa-m2", x, x, np.arange(20) // 4, max_epochs=2, hidden_dim=8,
    ...                enroll_model_id="v1", runtime_model_id="v2")
    >>> bc = align.fit("nessa-m2", x, x, np.arange(20) // 4, max_epochs=2, hidden_dim=8,
    ...                enroll_model_id="v2", runtime_model_id="v3")
    >>> c = make_chain([ab, bc])
    >>> c.method, c.enroll_model_id, c.space_id, c.map_enrollment(x[:2]).shape
    ('chain(nessa-m2 > nessa-m2)', 'v1', 'v3', (2, 3))
    >>> make_chain([bc, ab])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nessa_lib.chain.ChainError: aligner 1 (nessa-m2) migrates profiles into its runtime model's space 'v3', but ...
    """
    aligners = list(aligners)
    if not aligners:
        raise ValueError("a chain needs at least one aligner")
    names = [f"aligner {i + 1}" for i in range(len(aligners))] if names is None else [str(n) for n in names]
    if len(names) != len(aligners):
        raise ValueError(f"{len(aligners)} aligners but {len(names)} names")
    for k in range(len(aligners) - 1):
        msg = chain_break(aligners[k], aligners[k + 1], (names[k], names[k + 1]))
        if msg:
            raise ChainError(msg)
    return AlignerChain(aligners, names)


def load_chain(paths) -> AlignerChain:
    """:func:`nessa_lib.align.load` each aligner file and :func:`make_chain` them, named by their paths."""
    paths = [Path(p) for p in paths]
    return make_chain([align.load(p) for p in paths], [str(p) for p in paths])


def fit_from_space(method: str, prev: align.Aligner, y_prev, y_next, speakers, *,
                   runtime_model_id: str | None = None, **kwargs) -> align.Aligner:
    """Fit the next upgrade's aligner from the space ``prev`` migrated profiles into (after M3, say).

    Profiles migrated by ``prev`` live in ``profile_space(prev)``; the runtime model of ``prev`` sees the same
    space through ``prev.map_runtime``. So paired utterances embedded by ``prev``'s runtime model (``y_prev``) and
    by the next model (``y_next``) give pairs (``prev.map_runtime(y_prev)``, ``y_next``) from that space to the
    next model, and an aligner fitted on them (with ``enroll_model_id`` = that space) takes the migrated profiles:
    the chain connects. What it cannot fix: the profiles were mapped by ``prev``'s *enrollment* side, whose
    errors it never saw.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
    >>> m3 = align.fit("nessa-m3", x, x, np.arange(20) // 4, max_epochs=2, hidden_dim=8,
    ...                enroll_model_id="v1", runtime_model_id="v2")
    >>> nxt = fit_from_space("linear", m3, x, x, np.arange(20) // 4, runtime_model_id="v3")
    >>> make_chain([m3, nxt]).space_id == profile_space(nxt)
    True
    """
    space = profile_space(prev)
    mapped = prev.map_runtime(y_prev)
    return align.fit(method, mapped, y_next, speakers, enroll_model_id=space, runtime_model_id=runtime_model_id,
                     **kwargs)


def fit_from_spaces(method: str, prevs, y_prev, y_next, speakers, *, runtime_model_id: str | None = None,
                    timings: dict | None = None, **kwargs) -> list:
    """:func:`fit_from_space` once for each of ``prevs`` (one per seed, say), with that aligner's own seed.

    ``timings``, if given, gets ``{"fit_s": mean seconds per fit}``.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
    >>> m3s = [align.fit("nessa-m3", x, x, np.arange(20) // 4, seed=s, max_epochs=2, hidden_dim=8) for s in (0, 1)]
    >>> [a.seed for a in fit_from_spaces("linear", m3s, x, x, np.arange(20) // 4)]
    [0, 1]
    """
    import time

    out, spent = [], []
    for prev in prevs:
        t = time.perf_counter()
        out.append(fit_from_space(method, prev, y_prev, y_next, speakers, runtime_model_id=runtime_model_id,
                                  seed=prev.seed, **kwargs))
        spent.append(time.perf_counter() - t)
    if timings is not None and spent:
        timings["fit_s"] = float(np.mean(spent))
    return out


def _seeds(fits) -> list:
    return list(fits) if isinstance(fits, (list, tuple)) else [fits]


def upgrade_routes(hops, *, direct=None, from_m3_space=None, method: str = "nessa-m2") -> dict:
    """The routes that carry stored v1 profiles to the last model of a chain of upgrades v1 -> v2 -> ... -> vN,
    for :func:`nessa_lib.evaluation.chains.chain_table`; each route a list of chains, one per seed.

    - ``composed-<method>``: the hops' ``method`` aligners one after another (profiles migrated at each upgrade,
      as a product does; M2 by default, the method whose migrated profiles the next aligner takes). Seed ``s``
      of every hop together, as many seeds as the hop with fewest.
    - ``direct-<m>``: every aligner of ``direct`` (fitted v1 -> vN, one route per method).
    - ``m3-then-<method>``: hop 1's ``nessa-m3`` aligners (profiles and runtime embeddings both moved into a new
      space), then ``from_m3_space`` (the second upgrade's aligners fitted from that space, :func:`fit_from_spaces`:
      one per M3 seed used, in order), then the later hops' ``method`` aligners.

    Every chain is checked with :func:`make_chain` (``ChainError`` naming the break). A route whose aligners
    are missing (a method not fitted) is left out.

    Parameters
    ----------
    hops : sequence of mappings
        For each upgrade, ``{method: aligner or [aligner per seed]}`` (stage 04's aligners of the pair).
    direct : mapping, optional
        ``{method: aligner or list}`` fitted v1 -> vN.
    from_m3_space : sequence of Aligner, optional
    method : str
        The method composed at each upgrade.

    Examples
    --------
    >>> x = np.random.default_rng(0).normal(size=(20, 3)).astype("float32")
    >>> fit = lambda a, b: align.fit("nessa-m2", x, x, np.arange(20) // 4, max_epochs=2, hidden_dim=8,
    ...                              enroll_model_id=a, runtime_model_id=b)
    >>> r = upgrade_routes([{"nessa-m2": [fit("v1", "v2")]}, {"nessa-m2": [fit("v2", "v3")]}],
    ...                    direct={"linear": align.fit("linear", x, x, np.arange(20) // 4)})
    >>> {k: len(v) for k, v in r.items()}, r["composed-nessa-m2"][0].space_id
    ({'composed-nessa-m2': 1, 'direct-linear': 1}, 'v3')
    """
    hops = list(hops)
    routes = {}
    if hops and all(method in h for h in hops):
        per_hop = [_seeds(h[method]) for h in hops]
        routes[f"composed-{method}"] = [
            make_chain([fits[s] for fits in per_hop], [f"hop {k + 1} {method} seed {s}" for k in range(len(hops))])
            for s in range(min(len(f) for f in per_hop))]
    for m, fits in (direct or {}).items():
        routes[f"direct-{m}"] = _seeds(fits)
    if from_m3_space and len(hops) >= 2 and "nessa-m3" in hops[0] and all(method in h for h in hops[2:]):
        m3s, later = _seeds(hops[0]["nessa-m3"]), [_seeds(h[method]) for h in hops[2:]]
        routes[f"m3-then-{method}"] = [
            make_chain([m3s[s], nxt, *(fits[s] for fits in later)],
                       [f"hop 1 nessa-m3 seed {s}", f"hop 2 from M3's space seed {s}",
                        *(f"hop {k + 3} {method} seed {s}" for k in range(len(later)))])
            for s, nxt in enumerate(from_m3_space) if s < len(m3s) and all(s < len(f) for f in later)]
    return routes
