"""The report's catalogue: each section's files, the command that makes them, its figures with
their alt text and captions, and the glossary of the terms the tables use.

Adding a section is adding one ``SectionSpec`` here (and, optionally, a takeaway function in
``report_takeaways``); ``report.build_report`` reads whatever this lists.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GLOSSARY", "SECTIONS", "Figure", "SectionSpec"]


@dataclass(frozen=True)
class Figure:
    """One PNG of a section: its path under the results folder, what it shows in a line (the
    alt text) and how to read it (the caption)."""

    path: str
    alt: str
    caption: str


@dataclass(frozen=True)
class SectionSpec:
    """Where one section's files are, relative to the results folder, and what made them."""

    key: str
    title: str
    json: str
    keys: tuple[str, ...]
    command: str
    markdown: str | None = None
    images: tuple[Figure, ...] = ()
    intro: str = ""


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("demo", "Verdicts on the shipped pirates (the demo)", "demo.json",
                ("reports",), "python -m verifier_client demo --repository zoo --json "
                "results/demo.json",
                intro="Mean matching rate per method over the demo's repeats, with the verdict "
                      "of each method and the overall verdict (family-wise alpha)."),
    SectionSpec("evaluation", "The paper's table on the zoo", "evaluation/evaluation.json",
                ("rows", "methods"), "python -m verifier_client evaluate --repository zoo "
                "--repeats 100 --out results/evaluation", "evaluation/evaluation.md",
                (Figure("evaluation/evaluation.png",
                        "Bar chart: matching rate per pirate and fingerprinting method, with the "
                        "independent models' range shaded grey",
                        "Matching rate T_avg (0-1) of each pirate under each method; the grey box "
                        "is the [min, max] of the independent models. A bar inside the box is a "
                        "copy the method cannot tell from an innocent."),)),
    SectionSpec("roc", "Population: ROC-AUC per method and attack", "roc/roc.json",
                ("roles", "fingerprints"), "python -m verifier_client roc --repository zoo "
                "--quiet --out results/roc", "roc/roc.md", (Figure("roc/roc.png",
                               "ROC curves, one per fingerprinting method, all positives against "
                               "the held-out innocents",
                               "True-positive rate over all stolen copies against the false-"
                               "positive rate over the held-out innocents; the dotted diagonal "
                               "is chance. The legend gives each method's AUC."),
                        Figure("roc/budget.png",
                               "Line charts: ROC-AUC against the number of fingerprints sent and "
                               "against repeats, one line per method",
                               "Left: AUC when only k fingerprints are sent (mean and std over "
                               "seeded subsets). Right: AUC against repeats of the whole set. "
                               "Flat lines mean more queries do not help.")),),
    SectionSpec("validation", "Out-of-sample false accusations and catch rates",
                "validation/validation.json", ("negatives", "positives"),
                "python -m verifier_client validate --repository zoo --serve-behind 'none;"
                "csrp(sigma=1.23, p=6);csrp(sigma=1.16, p=3);csrp(sigma=1.3, p=8)' --out "
                "results/validation", "validation/validation.md",
                intro="Innocents no calibration saw, as they are and behind CSRP, decided by "
                      "verify --adaptive against a null measured through the same protocol; "
                      "each model is one trial, intervals are exact (Clopper-Pearson)."),
    SectionSpec("fronts", "Pirate fronts at CSRP's accuracy", "fronts/fronts.json",
                ("fronts", "methods"), "python -m verifier_client fronts --repository zoo "
                "--repeats 3 --out results/fronts", "fronts/fronts.md",
                intro="Each front's strength is set so the copy's top-1 equals CSRP's; AUC of "
                      "stolen copies against held-out innocents behind the same front, and the "
                      "share of each set a query detector flags."),
    SectionSpec("false-claims", "False claims and the commitment defence",
                "false-claims/false-claims.json", ("strategies", "commitment"),
                "python -m verifier_client false-claims --repository zoo --fingerprints "
                "build/false-claims/transfer.safetensors --out results/false-claims",
                "false-claims/false-claims.md",
                intro="Transferable samples crafted on the accuser's own model: innocents are "
                      "called stolen when the accuser chooses the null, and not when the "
                      "verifier does."),
    SectionSpec("eot", "The owner fights back: EOT fingerprints and votes", "roc-eot/roc.json",
                ("roles", "fingerprints"), "python -m verifier_client roc --repository zoo "
                "--fingerprints zoo/fingerprints-eot --repeats 10 --fingerprint-budgets 10,25,50 "
                "--repeat-budgets 1,5,10 --quiet --out results/roc-eot", "roc-eot/roc.md",
                (Figure("roc-eot/roc.png",
                        "ROC curves of the EOT fingerprint sets, one per method",
                        "As the population ROC above, for the sets made robust to CSRP's draws "
                        "(expectation over transformation), 10 repeats."),)),
    SectionSpec("tune-defence", "The pirate's answer: the defence's Pareto front",
                "tune-defence/tune_defence.json", ("points", "fronts"),
                "python -m models tune-defence --model zoo/target --transform csrp --grid "
                "sigma=1.16,1.23,1.35 --grid p=3,6,9 --suite "
                "plain=zoo/fingerprints/cae.safetensors,"
                "zoo/fingerprints/ipguard.safetensors,zoo/fingerprints/rce-gm.safetensors,"
                "zoo/fingerprints/rce-lt.safetensors,zoo/fingerprints/rce.safetensors,"
                "zoo/fingerprints/vce.safetensors --suite eot=zoo/fingerprints-eot --votes 1,5 "
                "--entries zoo/csrp-ft,zoo/csrp-ft-weak,zoo/csrp-ft-strong --repeats 4 "
                "--samples 1000 --out results/tune-defence",
                "tune-defence/tune_defence.md", (Figure("tune-defence/tune_defence.png",
                                 "Scatter plots: the pirate's accuracy against the owner's best "
                                 "matching rate for each CSRP setting, plain and EOT "
                                 "fingerprints side by side",
                                 "Each point is one CSRP setting (sigma/p) or fine-tuned entry; "
                                 "hollow circles: one vote, triangles: five votes; lines: the "
                                 "Pareto front (points no other setting beats on both axes), "
                                 "labelled. Down and left is better for the pirate."),)),
    SectionSpec("stability", "RDG vs CSRP at equal accuracy (the paper's Table 5)",
                "stability/stability.json", ("modes", "methods"),
                "python -m verifier_client stability --repository zoo --threads 2 --out "
                "results/stability",
                "stability/stability.md", (Figure("stability/stability.png",
                             "Range charts: matching-rate spread over 100 tests for RDG and "
                             "CSRP, with per-sample and shared draws, per method",
                             "Each bar spans the [min, max] matching rate over 100 tests of the "
                             "set, the tick is the mean; grey: the independent models' range."),)),
    SectionSpec("explain", "LIME before and after CSRP (the paper's Figures 4 and 5)",
                "explain/explain.json", ("groups", "settings"),
                "python -m verifier_client explain --target zoo/target --fingerprints "
                "zoo/fingerprints --out results/explain", "explain/explain.md",
                (Figure("explain/explain.png",
                           "Grid of images and LIME heat maps before and after one CSRP draw, "
                           "one row per fingerprint method",
                           "Per row: an image, LIME's evidence for its label (red for, blue "
                           "against; each map on its own colour scale), the image after one "
                           "CSRP draw and LIME's evidence there for the same label."),)),
    SectionSpec("loadtest", "Load test: CSRP on and off", "loadtest/loadtest.json",
                ("points", "models"),
                "python -m server --repository zoo --models copy,csrp --port 8017 & python -m "
                "verifier_client loadtest --url http://127.0.0.1:8017 --model csrp --model copy "
                "--concurrency 1,8,32,64 --duration 10 --quiet --out results/loadtest",
                "loadtest/loadtest.md", (Figure("loadtest/loadtest.png",
                             "Line chart: latency percentiles against achieved throughput, "
                             "with and without CSRP",
                             "p50 (solid) and p99 (dashed) latency against images per second at "
                             "1 to 64 concurrent clients; the two models share one server."),)),
    SectionSpec("peer", "Serving against Triton and MLServer", "peer/peer.json",
                ("table", "ratios"),
                "python benchmarks/bench_peer.py --duration 8 --rounds 2 --concurrency 1,8,32 "
                "--out results/peer", "peer/peer.md"),
)


#: the terms a reader meets in the tables, defined once
GLOSSARY: tuple[tuple[str, str], ...] = (
    ("units", "a model's rates (matching rate, top-1 accuracy) and AUCs are fractions, 0-1; "
     "shares of models (TPR, FPR, models accused) are percentages with their count."),
    ("matching rate", "the share of fingerprint samples a suspect answers with the label the "
     "owner's model gives them; 1.00 for an exact copy."),
    ("T_avg", "the matching rate averaged over repeated tests (the paper's notation)."),
    ("independent band", "the [min, max] matching rate of models trained independently of the "
     "owner's: a suspect inside it cannot be told from an innocent."),
    ("calibration negatives", "independently trained models whose matching rates form the null "
     "a verdict is tested against; held-out innocents are never used for calibration."),
    ("parametric p-value", "the probability of the suspect's rate under a distribution (logit-"
     "normal) fitted to the calibration negatives; can reach any level, trusts the fit."),
    ("rank p-value", "(1 + number of negatives at or above the suspect) / (n + 1): exact "
     "without any fit, but never below 1/(n + 1), so 0.01 needs 99 or more negatives."),
    ("Holm", "the step-down correction that keeps the chance of any false 'stolen' across "
     "several methods at alpha."),
    ("family-wise alpha", "the false-accusation rate a verdict guarantees over all the "
     "methods it combines (0.01 here)."),
    ("inconclusive", "the methods disagree or the test cannot reach its level; neither stolen "
     "nor cleared."),
    ("EOT", "expectation over transformation: fingerprints optimised over random draws of the "
     "pirate's transform, so they survive it."),
    ("votes", "each sample sent several times and the majority label kept, to cancel a "
     "randomized front's noise."),
    ("front", "what the pirate puts before the stolen model: CSRP, RDG, JPEG, smoothing, a "
     "query detector."),
    ("AUC", "area under the ROC curve: the chance a random stolen copy scores above a random "
     "innocent (0.5 is chance)."),
    ("TPR at 1% FPR", "the share of stolen copies caught when the threshold lets 1% of "
     "innocents through."),
)
