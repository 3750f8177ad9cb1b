"""The paper's settings (model x dataset -> profile and workload) and scheduling methods (policy spec +
how its predictor columns are produced), resolved into :class:`RunSpec` objects.

Where no predictor trained on real text exists for a workload, the method uses the approximate oracle
at the paper's measured Kendall tau for that predictor, and the run's ``note`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ltrsched.experiments.reference import dataset_of, model_of, paper_value
from ltrsched.experiments.runspec import RunSpec
from ltrsched.experiments.scoring import trained_available

#: setting -> (step-time profile, workload). 8B: A100-40GB TP1; 70B: A100-40GB x8 TP8. The profiles are the
#: ``*-vllm041-eager`` variants: the paper's engine, vLLM 0.4.1 in eager mode, whose CPU time per scheduled
#: sequence was measured on the paper's published code (PROFILES.md); the base ``a100-*`` profiles keep
#: the earlier estimate.
SETTINGS: dict[str, tuple[str, str]] = {
    "8B ShareGPT": ("a100-llama3-8b-vllm041-eager", "sharegpt"),
    "8B LMSYS": ("a100-llama3-8b-vllm041-eager", "lmsys-like"),
    "70B ShareGPT": ("a100-llama3-70b-tp8-vllm041-eager", "sharegpt"),
    "70B LMSYS": ("a100-llama3-70b-tp8-vllm041-eager", "lmsys-like-70b"),
}

#: Classification bucket widths of Table 3 [tokens] -> method key.
CLASS_BUCKETS = {820: "class", 100: "class-100", 10: "class-10", 1: "class-1"}


@dataclass(frozen=True)
class Method:
    """A scheduling method as the paper names it.

    Attributes:
        key: short key used in reference data (``fcfs``, ``ltr``, ``class-100``...).
        label: name in tables and figure legends.
        policy: policy spec string.
        scoring: setting -> (scoring string, note); the note is empty when nothing stands in.
    """

    key: str
    label: str
    policy: str
    scoring: Callable[[str], tuple[str, str]]


def _none(setting: str) -> tuple[str, str]:
    return "none", ""


def _ltr_tau(setting: str) -> float:
    return float(paper_value("kendall_tau", "ltr", setting))


def _ltr_scoring(setting: str) -> tuple[str, str]:
    name = trained_available("ltr", SETTINGS[setting][1])
    if name is not None:
        return f"trained-ltr:{name}", ""
    tau = _ltr_tau(setting)
    return f"approx-score:tau={tau}", f"LTR scores: approximate oracle at the paper's tau {tau} (no trained predictor for this workload)"


def _ltr_paper_tau_scoring(setting: str) -> tuple[str, str]:
    tau = _ltr_tau(setting)
    return f"approx-score:tau={tau}", f"LTR (paper's tau): approximate oracle at the paper's LTR tau {tau}"


def _oracle_scoring(setting: str) -> tuple[str, str]:
    tau = float(paper_value("kendall_tau", "oracle", dataset_of(setting)))
    return f"approx-score:tau={tau}", f"Oracle: approximate oracle at the paper's tau {tau}"


def _po_scoring(setting: str) -> tuple[str, str]:
    # The paper measured PO's tau only for 70B (Table 3); the 8B settings reuse the same dataset's value.
    tau = float(paper_value("kendall_tau", "po", dataset_of(setting)))
    src = "" if model_of(setting) == "70B" else " (70B value, Table 3)"
    return f"approx-po:tau={tau}", f"PO self-estimates: simulated at the paper's tau {tau}{src}"


def _class_scoring(bucket: int) -> Callable[[str], tuple[str, str]]:
    key = CLASS_BUCKETS[bucket]

    def scoring(setting: str) -> tuple[str, str]:
        name = trained_available("class", SETTINGS[setting][1])
        if name is not None:  # a classifier of this bucket width trained on the workload's real text
            return (f"trained-class:{name}", "") if bucket == 820 else (f"trained-class:{name},bucket={bucket}", "")
        # Table 3 gives the classifiers' measured tau for 70B; the 8B settings reuse the same dataset's value.
        tau = float(paper_value("table3", dataset_of(setting), "class-820" if key == "class" else key, "kendall_tau"))
        src = "" if model_of(setting) == "70B" else " (70B value, Table 3)"
        return (f"approx-class:bucket={bucket},tau={tau}",
                f"Classification ({bucket}-token buckets): simulated classifier at the paper's tau {tau}{src}")

    return scoring


METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method("fcfs", "FCFS", "fcfs", _none),
        Method("mlfq", "MLFQ", "mlfq", _none),
        Method("po", "PO", "po", _po_scoring),
        Method("class", "Classification", "class:bucket=820", _class_scoring(820)),
        Method("class-100", "Class (bucket 100)", "class:bucket=100", _class_scoring(100)),
        Method("class-10", "Class (bucket 10)", "class:bucket=10", _class_scoring(10)),
        Method("class-1", "Class (bucket 1)", "class:bucket=1", _class_scoring(1)),
        Method("ltr", "LTR", "ltr", _ltr_scoring),
        Method("ltr-paper-tau", "LTR at the paper's tau", "ltr", _ltr_paper_tau_scoring),
        Method("ltr-sp", "LTR + starvation prevention", "ltr:starve=200,quantum=10", _ltr_scoring),
        Method("oracle", "Oracle", "ltr", _oracle_scoring),
        Method("srtf", "SRTF (true lengths)", "srtf", _none),
    )
}


def make_spec(experiment: str, setting: str, method: str, **kw) -> RunSpec:
    """A RunSpec for ``method`` in ``setting`` (profile and workload from :data:`SETTINGS`)."""
    m = METHODS[method]
    profile, workload = SETTINGS[setting]
    scoring, note = m.scoring(setting)
    return RunSpec(experiment=experiment, setting=setting, label=m.label, workload=workload, policy=m.policy,
                   profile=profile, scoring=scoring, note=note, **kw)


def poisson_window_spec(experiment: str, setting: str, method: str, rate: float, duration: float) -> RunSpec:
    """A spec of Poisson arrivals at ``rate`` [req/s] for ``duration`` [s]: enough requests for the window
    (+30% for Poisson variation), cut to it by ``duration``. The real ShareGPT eval split holds only
    ``EVAL_SIZE`` prompts; a window wanting more (Figure 3 at 64 req/s: 3,840 expected) takes them all."""
    from ltrsched.workloads.selection import EVAL_SIZE

    n = int(rate * duration * 1.3) + 20
    if SETTINGS[setting][1] == "sharegpt":
        n = min(n, EVAL_SIZE)
    return make_spec(experiment, setting, method, num_requests=n, arrival="poisson", rate=float(rate), duration=duration)


def paper_tau_twin(setting: str) -> tuple[str, ...]:
    """Where LTR runs on our trained predictor (ShareGPT), also LTR at the paper's tau: separates the
    predictor's quality from the rest of the comparison (PO stands in at the paper's tau everywhere)."""
    return ("ltr-paper-tau",) if trained_available("ltr", SETTINGS[setting][1]) else ()


def with_method_key(spec: RunSpec) -> str:
    """The method key of a spec made by :func:`make_spec` (by its label)."""
    for m in METHODS.values():
        if m.label == spec.label:
            return m.key
    return spec.label


def one_length_note(setting: str, spec: RunSpec, summary: dict) -> str | None:
    """A note for a run whose trained classifier predicted one length for every request (its Kendall tau
    undefined): it then orders them as FCFS does, which a table row equal to FCFS's should say; None otherwise."""
    if not spec.scoring.startswith("trained-class") or summary.get("scoring_kendall_tau") is not None:
        return None
    accuracy = summary.get("scoring_accuracy")
    share = "" if accuracy is None else f" (accuracy {accuracy:.4g}: the share of requests in that bucket)"
    return (f"{setting}: {spec.label}: the trained classifier puts every request in one "
            f"bucket{share}, so it orders them as FCFS does; Kendall tau undefined ('-')")


__all__ = ["CLASS_BUCKETS", "METHODS", "Method", "SETTINGS", "make_spec", "one_length_note", "paper_tau_twin",
           "poisson_window_spec", "with_method_key"]

