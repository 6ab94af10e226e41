# %% [markdown]
# # 05 · Evaluate: does NESSA let stored profiles survive a model upgrade?
# > Score the evaluation trials with every (enrollment X, runtime Y) pair and method, test the paper's three claims
# > as measured here, run the A/B upgrade case study and the alignment-data ablation.
#
# Profiles average `k_enroll` enrollment utterances embedded by X (in X's own space), then are mapped by the
# aligner's enrollment side (identity for M1, migration for M2); test utterances are embedded by Y and mapped by its
# runtime side. The pairs are those of `fit_aligners.pairs` in `params.yaml`; aligners are fitted on the splits of
# stage 04 (`fit_splits`); thresholds are calibrated on the alignment split only; the evaluation trials are never
# used to tune. Settings: the `evaluate` section of `params.yaml`.
# **Outputs** (`reports/evaluate/`): `main_table.csv`, `findings.csv`, `ab_case_study.csv`, `calibration.csv`,
# `asnorm.csv`, `ablation.csv`, `learning_curve.csv`, `deployment_check.csv`, `chain.csv`, `metrics.json`, `headline.json`, `figures/`, and `plots/` (DET and ablation
# curves as CSV for `dvc plots`); `models/evaluate/<pair>/<system>.calibration.json`: every system's calibration and
# thresholds, the files `python -m nessa_lib.migrate --calibration` ships with migrated profiles.
# `reports/evaluate/scores/<pair>/<system>.txt`: every trial's score, one file per system (WeSpeaker layout:
# `<profile> <test utt> <score> target|nontarget`), for re-scoring with other tools.

# %% tags=["parameters"]
params_file: str = "params.yaml"  # the study's parameters (repo-relative); this stage reads evaluate

# %%
import pandas as pd
import torch

from nessa_lib import deployment, io, plots
from nessa_lib.data import lists, manifest
from nessa_lib.evaluation import ab, ablation, asnorm, bootstrap, chains, findings, headline, score_files, tables
from nessa_lib.pipeline import layout
from nessa_lib.stages import evaluate as stage

p = stage.load(params_file)
torch.set_num_threads(p.threads)
data = layout.out_dir("prepare_data")
reports = layout.report_dir("evaluate", write=True)
figures, curves = reports / "figures", reports / "plots"
figures.mkdir(parents=True, exist_ok=True)
curves.mkdir(parents=True, exist_ok=True)
df = manifest.read_manifest(data / "manifest.csv")
enroll, trials = lists.read_lists(data, manifest=df)
study = stage.load_study(p.pairs, methods=p.methods, extra_models=(p.ab_model_a, p.ab_model_b),
                         embeddings_root=layout.out_dir("extract_embeddings"),
                         encoders_root=layout.out_dir("train_encoder"),
                         aligners_root=layout.out_dir("fit_aligners"))
print(f"{len(study.pairs)} pairs, models and objectives: {study.objectives}")
print(lists.describe(enroll, trials))
# Every interval below comes from these rounds: the evaluation speakers resampled with replacement, each with all
# of its profile's trials; every system is scored on the same rounds, so differences between systems are paired.
boot = bootstrap.SpeakerBootstrap.from_lists(enroll, trials, df,
                                             n_rounds=p.bootstrap_rounds, seed=p.seed)
print(f"speaker bootstrap: {p.bootstrap_rounds} rounds over {boot.counts.shape[1]} evaluation speakers")

# %% [markdown]
# ## 1 · Main table
# Rows per pair: symmetric X/X (no upgrade), symmetric Y/Y (everyone re-enrolled), then each method with X profiles
# against Y tests. `gain_recovered` = (EER_XX − EER) / (EER_XX − EER_YY): the share of the symmetric upgrade's gain
# kept without re-enrollment. NESSA rows are the mean over stage 04's seeds, with their standard deviation ("seed
# s.d."); every figure has a 95 % speaker-bootstrap interval ("95 % CI"). FRR is read at every FAR of
# `far_targets` (12.5 % is the paper's operating point). Percentages in the tables; fractions in `metrics.json`.

# %%
evaluated = stage.evaluate_study(study, enroll, trials, fars=p.far_targets, boot=boot, workers=p.workers)
main = pd.concat(evaluated.tables, names=["pair"])
stage.percent_table(main, fars=p.far_targets)

# %%
for name, curve in evaluated.det.items():
    plots.det_curves(curve, title=f"{name}\n(NESSA: curve of the first seed; EER the mean of the seeds)",
                     path=figures / f"det_{name}.png",
                     eer_intervals=stage.det_legend_intervals(evaluated.tables[name]))
    stage.det_grid(curve).to_csv(curves / f"det_{name}.csv", index=False)
plots.gain_recovered_bars(evaluated.tables, path=figures / "gain_recovered.png");

# %%
# Every trial's score, one file per system of every pair (WeSpeaker layout), for re-scoring with other tools.
written = score_files.write_study_scores(evaluated.scores, trials, reports / "scores")
print(f"{len(written)} score files in {reports / 'scores'}: <profile> <test utt> <score> target|nontarget")

# %%
plots.score_distributions_grid(stage.before_after_panels(evaluated, trials.label),
                               path=figures / "scores_before_after.png");

# %% [markdown]
# ## 2 · The paper's three claims, as measured here
# Each claim is judged on the bootstrap distribution of a *paired* statistic (the EER difference between the two
# systems it compares, or the gain recovered), on the same resampled speakers: it **holds** when the whole 95 %
# interval is on the claimed side of the bar, **does not hold** when the whole interval is on the other side, and is
# **inconclusive** otherwise, with an estimate of how many evaluation speakers would decide it.

# %%
claims = findings.paper_findings(evaluated.tables, study.orientations(), study.objectives,
                                 rounds=evaluated.rounds, n_speakers=boot.counts.shape[1])
claims.to_csv(reports / "findings.csv", index=False)
print(findings.format_findings(claims))

# %% [markdown]
# ## 3 · A/B case study: upgrading the runtime model without re-enrolling anyone
# A is in production with stored profiles; B is the candidate. The aligners (`ab_methods`: M2 migrates the stored
# profiles into B's space once; M1 maps B's runtime embeddings into A's space; M3 migrates the profiles once *and*
# maps every runtime embedding, into a new space) are the stage-04 aligners of the pair (A, B) when it was fitted
# there (else fitted here on the `fit_splits` pool); at every FAR of `far_targets`, each system's threshold is
# calibrated on trials of the `calibration_split` (no evaluation data); the table shows the FAR and FRR that
# threshold gives on the evaluation trials, and what happens if A/A's threshold is naively kept after the upgrade.
# The control is A/A, the production system that keeps model A, as in the paper's A/B test: the relative FRR
# impact (FRR_A/A − FRR) / FRR_A/A is the figure the paper reports at 12.5 % FAR (up to 43.62 % fewer false
# rejections). The intervals resample the evaluation speakers with the thresholds fixed (paired: the control and
# each system on the same resampled speakers); the aligners are the first seed's.

# %%
pool = study.fit_pool(p.ab_model_a, p.ab_model_b, p.fit_splits)
fitted, ab_aligners = study.stage_aligners(p.ab_model_a, p.ab_model_b, p.ab_methods)
ab_table = ab.ab_case_study(
    pool, *study.eval_pair(p.ab_model_a, p.ab_model_b), enroll, trials, far=p.far_targets, seed=p.seed,
    k_enroll=lists.min_profile_size(enroll), calibrate_on=pool.splits == p.calibration_split,
    aligners=ab_aligners, methods=p.ab_methods, hparams=p.hparams,
    enroll_flag_align=manifest.enroll_flags(df, pool.utt_ids), boot=boot,
)
print(f"aligners {'of stage 04 (' + fitted + ')' if fitted else 'fitted here'} on {len(pool.utt_ids)} pairs "
      f"({p.fit_splits}); calibrated on {ab_table.attrs['n_calibration_trials']} {p.calibration_split} trials")
ab_table.to_csv(reports / "ab_case_study.csv")
stage.ab_percent_table(ab_table)

# %% [markdown]
# ### Calibration and thresholds for every system
# Every pair's systems (X/X, Y/Y, each method's first seed) scored on calibration trials of `calibration_split`
# (built like the A/B case study's), then: a logistic score calibration fitted there (the BOSARIS practice) and
# judged on the evaluation trials by Cllr (bits; min-Cllr is what optimal calibration on the evaluation trials
# would leave, so Cllr − min-Cllr is the calibration's own loss) and actual DCF beside minDCF at P_target = 1 %;
# and, per FAR target, the threshold chosen on the calibration trials with the FAR and FRR it gives on evaluation
# (95 % speaker intervals) and whether the target holds. Cllr, min-Cllr and actual DCF carry 95 % speaker intervals
# too (the calibration fixed, the evaluation speakers resampled; min-Cllr re-optimised in each round). `calibration.csv`; and each system's calibration and
# thresholds as the file `python -m nessa_lib.migrate --calibration FILE` reads, in `models/evaluate/<pair>/`:
# `<method>.calibration.json` records stage 04's aligner of the method's first seed (the one scored), so `migrate`
# refuses it with any other aligner; `XX` / `YY.calibration.json` record none.

# %%
calibrations = {}
cal_table = stage.calibration_study(study, evaluated, trials, fit_splits=p.fit_splits,
                                    calibration_split=p.calibration_split, k_enroll=lists.min_profile_size(enroll),
                                    manifest_df=df, seed=p.seed,
                                    fars=p.far_targets, boot=boot, calibrations=calibrations)
cal_table.to_csv(reports / "calibration.csv")
calibration_dir = layout.out_dir("evaluate", write=True)
written = stage.write_calibrations(study, cal_table, calibrations, calibration_dir)
print(f"{len(written)} calibration files in {calibration_dir}")
print(cal_table.xs(p.far_targets[0], level="far_target")[["cllr", "cllr_lo", "cllr_hi", "min_cllr", "act_dcf_p0.01",
                                                           "act_dcf_p0.01_lo", "act_dcf_p0.01_hi", "min_dcf_p0.01"]]
      .round(3).to_string())
cal_table[["far_eval", "holds"]].unstack("far_target").round(4)

# %% [markdown]
# ### AS-norm: every system with and without score normalisation
# Adaptive symmetric normalisation (`nessa_lib.evaluation.asnorm`) rescales each trial score by how both of its
# sides score against a cohort, keeping each side's `asnorm.top_k` most similar cohort members. The cohort is one
# averaged embedding per speaker of the pair's fit pool (`fit_splits`, `asnorm.cohort_speakers` of them drawn with
# `base.seed`, 0 = all; never an evaluation voice), mapped into each system's space. Each side meets the cohort as
# the *other* side produces it, because that is who it meets in impostor trials: a profile is compared with the
# cohort embedded by the runtime model (through the aligner's runtime side), a test utterance with the cohort
# embedded by the enrollment model (averaged, then migrated like a profile). Same systems as the calibration (X/X,
# Y/Y, each method's first seed); every figure with its 95 % speaker interval, and the change (on − off; negative
# = fewer errors with AS-norm) with a paired interval on the same resampled speakers. `asnorm.csv`.

# %%
asn = stage.asnorm_study(study, evaluated, enroll, trials, fit_splits=p.fit_splits, top_k=p.asnorm.top_k,
                         cohort_speakers=p.asnorm.cohort_speakers, seed=p.seed, fars=p.far_targets, boot=boot,
                         workers=p.workers)
asn.to_csv(reports / "asnorm.csv")
stage.asnorm_percent_table(asn, fars=p.far_targets)

# %% [markdown]
# ## 4 · How much alignment data does NESSA need?
# The fit pool of stage 04, subsampled: the first `n` speakers (in a seeded order) and `u` utterances of each;
# one fit (seed `base.seed`) per point and method of `ablation_methods` (the same subsamples for every method), with
# 95 % speaker intervals on the evaluation trials. The all-data point is stage 04's own fit of that seed, reused
# rather than fitted twice (`fit_s` NaN in the table).

# %%
X, Y = study.orientation(p.ablation_pair)
fit = study.fit_pool(X, Y, p.fit_splits)
abl, abl_curves, abl_targets = stage.ablation_study(
    fit.x, fit.y, fit.speaker_ids, *study.eval_pair(X, Y), enroll, trials, methods=p.ablation_methods, seed=p.seed,
    n_speakers=ablation.grid(p.ablation_speakers), utts_per_speaker=ablation.grid(p.ablation_utts),
    hparams=p.hparams, boot=boot, workers=p.workers, targets=p.learning_curve_targets,
    prefitted={m: study.first_fit(p.ablation_pair, m) for m in p.ablation_methods},
)
abl.to_csv(reports / "ablation.csv", index=False)
stage.ablation_curve(abl).to_csv(curves / "ablation.csv", index=False)
plots.ablation_curves(abl, path=figures / "ablation.png")
abl.round(4)

# %% [markdown]
# ### The learning curve: how many paired voices for a share of the gain?
# Each series of the ablation with at least four sizes gets a saturating curve, share(n) = a − b·n^(−c) in the
# voices used (`nessa_lib.evaluation.learning_curve.fit_saturating`: an inverse power law, the usual shape of
# learning curves; the ceiling `a` is bounded at 150 %), weighted by the inverse variance of each point's bootstrap
# rounds and refitted on every round for the band and the interval of the voices needed for each target share of
# `learning_curve_targets`. Beyond the largest size measured the curve is an extrapolation: the sentences say so.

# %%
abl_targets.to_csv(reports / "learning_curve.csv", index=False)
plots.ablation_learning_curves(abl, abl_curves, p.learning_curve_targets, path=figures / "learning_curve.png")
for sentence in abl_targets["statement"]:
    print(sentence)
abl_targets.drop(columns="statement").round(3)

# %% [markdown]
# ## 5 · Deployment check: would the A/B aligners hold on traffic recorded differently?
# An aligner is fitted on one domain; before stored profiles are migrated, `python -m nessa_lib.migrate ... --check`
# compares a small paired sample of the target traffic with the fit data (statistics stored in the aligner file):
# the pair agreement (cosine between the two mapped sides of the same utterance; flagged below the fit's 5th
# percentile), and two statistics that see a collapsed or scrambled space where agreement stays high: the
# non-pair cosines (different utterances; flagged when their median is above the fit's 95th percentile) and the
# pair identification rate (share of utterances whose nearest mapped neighbour is their own pair, at the same
# sample size; flagged below half the fit's 5th percentile). With speaker labels it gives the EERs on the sample
# with 95 % speaker intervals and the gain over keeping X (X/X EER minus aligned EER, paired interval), and flags
# an aligned system that is not better than X. Samples: the first evaluation utterances of each speaker as
# recorded, degraded with the `check_condition` preset (stage 03, a condition the aligners never saw), and a
# synthetic collapse (the recorded sample with every utterance pulled toward the first one, seen alike by both
# models: `deployment.pull_toward_one`), which the check must flag. It checks stage 04's aligners of the A/B pair
# (first seed); it is skipped when stage 04 did not fit that pair or `extract_embeddings.check_condition` is empty.

# %%
check = pd.DataFrame(columns=["method", "sample"]).set_index(["method", "sample"])  # written empty when skipped
if p.check_condition and ab_aligners:
    check_samples = study.condition_samples(p.ab_model_a, p.ab_model_b, p.check_condition)
    x_rec, y_rec, spk_rec = check_samples["as recorded"]
    check_samples["synthetic collapse"] = (*deployment.pull_toward_one(x_rec, y_rec), spk_rec)
    check = deployment.check_table(ab_aligners, check_samples, n_rounds=p.check_rounds, seed=p.seed)
check.to_csv(reports / "deployment_check.csv")
check.round(4)

# %% [markdown]
# ## 6 · Chains of upgrades: v1 → v2 → v3 without re-enrolling anyone
# Products upgrade their speaker model again and again. The models of `chain` (oldest first: v1, v2, v3) play
# three yearly upgrades' versions; profiles are enrolled once with v1 and scored against v3's runtime embeddings:
# **composed** (`composed-nessa-m2`): stage 04's M2 aligners v1 → v2 then v2 → v3, the profiles migrated at each
# upgrade, as a product does; **direct** (`direct-nessa-m2`, `direct-nessa-m3`): the aligners of the pair v1 → v3,
# fitted as if the v2 step had been skipped; **M3 first** (`m3-then-nessa-m2`): M3 at the first upgrade (profiles
# and v2's runtime embeddings moved into a new space), then, at the second, an M2 aligner fitted here from that
# space to v3 (`nessa_lib.chain.fit_from_space`; one fit, M3's first seed, `fit_s`). Each route's EER and share of
# the v1 → v3 symmetric gain; the `hop` rows give what each upgrade costs alone (v1 profiles against v2 tests with
# the share of the v1 → v2 gain, and so on); `EER over re-enrolled` is each row's EER minus its leg's re-enrolled
# system (v3/v3, or the hop's new model). Same speaker-bootstrap rounds as the main table (paired intervals);
# composed chains pair seed s of each hop, reported as the mean over seeds. `chain.csv`; `chain = []` skips it.

# %%
chain_timing = {}
chain = stage.chain_study(study, list(p.chain), enroll, trials, fit_splits=p.fit_splits, hparams=p.hparams,
                          fars=p.far_targets, boot=boot, timings=chain_timing, workers=p.workers,
                          chain_hparams=p.chain_hparams)
chain.to_csv(reports / "chain.csv")
print(f"chain {' -> '.join(p.chain) or '(disabled)'}; fit from M3's space: {chain_timing or 'none'}")
stage.chain_percent_table(chain, fars=p.far_targets)

# %% [markdown]
# ## 7 · Key numbers (checked by nbval on re-runs)

# %%
# NBVAL_CHECK_OUTPUT
print(stage.key_numbers(evaluated.tables))

# %%
io.write_json({**tables.flat_metrics(evaluated.tables, ab_table, fars=p.far_targets),
               **asnorm.flat_metrics(asn, fars=p.far_targets),
               **chains.flat_metrics(chain, fars=p.far_targets)}, reports / "metrics.json")
main.to_csv(reports / "main_table.csv")
# The dozen figures `dvc exp show` and `dvc metrics diff` list, from the tables just written.
headline.write_evaluate_headline(reports, ab_pair=headline.ab_pair_of(p.pairs, p.ab_model_a, p.ab_model_b))
