"""What a potential run trains: :class:`PotentialSpec` (data files, symmetry functions, networks,
settings) and the potential it describes (an HDNNP or an SF-MPNN, :mod:`mpnn.models.sf_mpnn`),
fitted to its training set (:func:`fit_inputs`: functions
constant on the set dropped, scaling and energy terms set from its statistics)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mpnn.batch import Molecule
from mpnn.errors import DataError
from mpnn.models.hdnnp import HDNNPConfig, PotentialModel, hdnnp, set_energy_terms
from mpnn.models.sf_mpnn import SFMPNNConfig, message_passing_defaults, sf_mpnn
from mpnn.symmetry.defaults import DEFAULT_OPTIONS
from mpnn.train import potential_data as pdata
from mpnn.train.checkpoint import CONFIG, LAST
from mpnn.train.run import apply_overrides
from mpnn.train.settings import TrainSettings, potential_settings
from mpnn.train.settings_files import load_json

#: The learned steps of an SF-MPNN by default: the fields :class:`~mpnn.models.sf_mpnn.SFMPNNConfig`
#: adds to an HDNNP's, with their defaults.
MESSAGE_PASSING = message_passing_defaults()


@dataclass
class PotentialSpec:
    """What to train.

    Attributes:
        train: the training file (validation structures are drawn from it when ``valid`` is a fraction).
        valid: fraction of the training file, or a file of validation structures.
        test: a file of test structures, or None.
        model: ``hdnnp`` or ``sf_mpnn`` (symmetry functions then learned message passing).
        cutoff: cutoff radius of the symmetry functions, Angstrom.
        nodes, activation: hidden layer sizes and their n2p2 activation letter (output linear) of
            the per-element energy networks.
        message_passing: an SF-MPNN's learned steps (keys of :data:`MESSAGE_PASSING`, the
            fields of :class:`~mpnn.models.sf_mpnn.SFMPNNConfig`); unused by an HDNNP.
        scaling: n2p2's scaling mode of the symmetry functions.
        symmetry: keyword arguments of :func:`~mpnn.symmetry.defaults.default_symmetry_functions`.
        training: the optimisation settings.
        units: (Angstrom, eV) per length and energy unit of n2p2 ``input.data`` files (``--units``);
            the structures are converted on reading, so the model is in Angstrom and eV.
        input_nn: an n2p2 ``input.nn`` whose symmetry functions, cutoff function, networks and
            scaling the potential has (:mod:`mpnn.n2p2.training`; lengths in ``units``), or None
            (then ``cutoff``, ``nodes``, ``activation``, ``scaling`` and ``symmetry`` decide).
    """

    train: str
    valid: float | str = 0.1
    test: str | None = None
    model: str = "hdnnp"
    cutoff: float = 6.0
    nodes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "t"
    scaling: str = "scale_center"
    symmetry: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_OPTIONS))
    training: TrainSettings = field(default_factory=potential_settings)
    units: list[float] = field(default_factory=lambda: [1.0, 1.0])
    message_passing: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(MESSAGE_PASSING))
    input_nn: str | None = None

    def __post_init__(self) -> None:
        from mpnn.train.validate import check_fields, potential_spec_rules

        rules, symmetry_rules, message_rules = potential_spec_rules()
        check_fields(self, rules)
        unknown = sorted(set(self.symmetry) - set(DEFAULT_OPTIONS))
        if unknown:
            raise DataError(f"symmetry.{unknown[0]}: unknown setting; known: {', '.join(DEFAULT_OPTIONS)}")
        check_fields(self.symmetry, symmetry_rules, "symmetry.")
        unknown = sorted(set(self.message_passing) - set(MESSAGE_PASSING))
        if unknown:
            raise DataError(
                f"message_passing.{unknown[0]}: unknown setting; known: {', '.join(MESSAGE_PASSING)}"
            )
        self.message_passing = {**MESSAGE_PASSING, **self.message_passing}
        check_fields(self.message_passing, message_rules, "message_passing.")
        cutoff = self.message_passing["message_cutoff"]
        if cutoff is not None and cutoff > self.cutoff:
            raise DataError(
                f"message_passing.message_cutoff: {cutoff:g} Angstrom exceeds the symmetry functions' "
                f"cutoff {self.cutoff:g} (the radius graph both share)"
            )
        if self.input_nn is not None and self.model != "hdnnp":
            raise DataError(
                f"input_nn: an input.nn describes an HDNNP, not model {self.model!r} (no n2p2 form)"
            )
        if not isinstance(self.training, TrainSettings):
            raise DataError(f"training: expected training settings, got {self.training!r}")
        if self.training.amp is not None and not self.training.float32:
            raise DataError(
                f"training.amp: mixed precision ({self.training.amp}) needs float32 training "
                "(--float32); float64 is never autocast"
            )

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "training": self.training.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PotentialSpec:
        return cls(**{**data, "training": potential_settings(**data["training"])})


def resume_spec(out: str | Path, given: dict[str, Any]) -> PotentialSpec | None:
    """The spec stored in ``out/config.json`` with the options ``given`` (dotted names), or None.

    Only the settings of :data:`mpnn.train.run.MUTABLE` may differ (the training length, the
    patience, TensorBoard logging), and the paths of data files whose SHA-256 the run recorded (a
    moved or copied file: :func:`~mpnn.train.potential_inputs.check_data_hashes` then checks that
    its content is the same).
    """
    path = Path(out) / CONFIG
    if not (Path(out) / LAST).is_file() or not path.is_file():
        return None
    stored = load_json(path)
    if not isinstance(stored, dict) or "run" not in stored:
        raise DataError(f"{path}: not a `train-potential` run folder")
    run = dict(stored["run"])
    # runs of earlier versions (HDNNPs only) lack the model and its message-passing settings
    run.setdefault("model", "hdnnp")
    if isinstance(run.get("message_passing", {}), dict):
        run["message_passing"] = {**MESSAGE_PASSING, **run.get("message_passing", {})}
    data = stored.get("data")
    recorded = data.get("sha256") if isinstance(data, dict) else None
    for role in recorded if isinstance(recorded, dict) else ():
        if (
            role in ("train", "valid", "test", "input_nn")
            and isinstance(given.get(role), str)
            and isinstance(run.get(role), str)
        ):
            run[role] = given[role]  # the content is checked against the recorded hash
    merged = apply_overrides(run, given, frozen=str(path))
    try:
        return PotentialSpec.from_json(merged)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: not a run description ({error})") from None


def new_model(
    spec: PotentialSpec, elements: Sequence[str], functions: list[list[dict]] | None = None
) -> PotentialModel:
    """The potential of ``spec`` (weights drawn from the seed); default symmetry functions unless
    given, or those of ``spec.input_nn`` with its networks and scaling."""
    from mpnn.symmetry.defaults import default_symmetry_functions

    if spec.input_nn is not None:
        from mpnn.n2p2.convert import hdnnp_config
        from mpnn.n2p2.training import read_training_settings

        config = hdnnp_config(read_training_settings(spec.input_nn, elements), elements, spec.units)
        torch.manual_seed(spec.training.seed)
        try:
            return hdnnp(config)
        except ValueError as error:
            raise DataError(f"{spec.input_nn}: {error}") from None
    if functions is None:
        functions = default_symmetry_functions(elements, spec.cutoff, **spec.symmetry)
    activations = spec.activation * len(spec.nodes) + "l"
    common = dict(
        elements=list(elements),
        symmetry_functions=functions,
        nodes=[list(spec.nodes)] * len(elements),
        activations=[activations] * len(elements),
        scaling=spec.scaling,
    )
    torch.manual_seed(spec.training.seed)
    try:
        if spec.model == "sf_mpnn":
            return sf_mpnn(SFMPNNConfig(**common, **spec.message_passing))
        return hdnnp(HDNNPConfig(**common))
    except ValueError as error:
        raise DataError(f"model settings: {error}") from None


def _new_potential(
    spec: PotentialSpec,
    elements: list[str],
    train_set: list[Molecule],
    progress: bool,
    echo: Callable[[str], None],
) -> tuple[PotentialModel, pdata.StructureSet]:
    """A new model for the training set: default functions less the constant ones, scaling, energy terms."""
    model = new_model(spec, elements)
    raw = pdata.build_structures(model, train_set, progress=progress)
    stats = pdata.statistics(raw, model.symmetry_functions.sizes)
    model, keep = fit_inputs(spec, elements, model, stats, pdata.energy_terms(raw, len(elements)), echo)
    return model, raw if keep is None else pdata.keep_columns(raw, keep)


def fit_inputs(
    spec: PotentialSpec,
    elements: list[str],
    model: PotentialModel,
    stats: list[torch.Tensor],
    terms: tuple[list[float], float],
    echo: Callable[[str], None],
) -> tuple[PotentialModel, list[list[int]] | None]:
    """The model of ``spec`` for training statistics ``stats`` of its functions
    (:func:`~mpnn.train.potential_data.statistics`) and energy ``terms`` (offsets, scale): the
    functions constant on the training set dropped (the kept columns per element are returned,
    None when all are kept), the scaling and the energy terms set."""
    if spec.input_nn is not None:  # the file's functions, all of them
        from mpnn.n2p2.training import check_constant_functions, read_training_settings, unused_keywords

        settings = read_training_settings(spec.input_nn, elements)
        check_constant_functions(settings, elements, stats, spec.input_nn)
        used = "its symmetry functions, cutoff, networks and scaling"
        echo(f"{spec.input_nn}: {used}{unused_keywords(settings)}")
        keep = [list(range(n)) for n in model.symmetry_functions.sizes]
    else:
        keep = pdata.informative_columns(stats)
    empty = [element for element, columns in zip(elements, keep, strict=True) if not columns]
    if empty:
        raise DataError(
            f"{spec.train}: every symmetry function of {', '.join(empty)} is constant on the training "
            f"set (no neighbours within the {spec.cutoff:g} Angstrom cutoff? data in other units "
            "need --units)"
        )
    dropped = sum(model.symmetry_functions.sizes) - sum(len(k) for k in keep)
    if dropped:
        echo(f"symmetry functions: dropped {dropped} that are constant on the training set")
        functions = [[model.config["symmetry_functions"][s][c] for c in k] for s, k in enumerate(keep)]
        model = new_model(spec, elements, functions)
        stats = [table[k] for table, k in zip(stats, keep, strict=True)]
    sf = model.symmetry_functions
    sf.set_scaling(model.config["scaling"], stats, model.config["scale_min"], model.config["scale_max"])
    offsets, scale = terms
    set_energy_terms(model, scale, offsets)
    echo(
        f"energy: offsets {dict(zip(elements, (round(o, 6) for o in offsets), strict=True))} eV, "
        f"scale {scale:.4g} eV"
    )
    return model, keep if dropped else None
