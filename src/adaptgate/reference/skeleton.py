"""A transformers causal LM built from config with no weights, filled one unit at a time.

The model class is transformers' own (``AutoModelForCausalLM.from_config``). Parameters start on
the meta device (buffers such as rotary frequencies are real), so building costs no memory.
Weights come from :mod:`adaptgate.reference.weights` and go through transformers' own checkpoint
conversion (renamings, per-expert weights merged into fused MoE tensors, tied embeddings), one
*unit* at a time: ``base`` (everything outside the decoder layers) or one decoder layer. When the
input and output embeddings are untied, each is a unit of its own (``embed``, ``head``): a pass
holds the input embeddings only before the layers and the LM head only after them, so the two
largest matrices of a dense model are never held together. Freeing a unit puts its parameters
back on the meta device. In streamed mode a MoE layer's unit holds no routed experts: they are
read a group at a time, only those the tokens are routed to (:mod:`adaptgate.reference.experts`,
:meth:`LayeredModel.stream_experts`); every mode computes experts with transformers' eager
forward. Checkpoint layers beyond
``num_hidden_layers`` (GLM's MTP layer) are ignored, as ``from_pretrained`` ignores them.

In streamed mode, units are kept loaded after use while their dequantized weights (in the compute
dtype) fit ``cache_budget``: the RAM cache. Only a pass that another pass will follow (greedy
decoding) fills it; a single pass keeps nothing, so its memory is one unit at a time. A later
pass finds kept units loaded and reads nothing for them; the first units of a pass are kept
first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptgate.errors import CheckpointFormatError, ConfigError, UsageError
from adaptgate.reference.experts import RoutedExperts, find_routed_experts
from adaptgate.reference.memory import model_bytes, trim_heap
from adaptgate.reference.weights import WeightSource, layer_index

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

BASE = "base"
EMBED = "embed"  # the input embeddings, when untied from the LM head
HEAD = "head"  # the LM head (output embeddings), when untied
OUTSIDE_LAYERS = (BASE, EMBED, HEAD)


def layer_unit(index: int) -> str:
    return f"layer.{index}"


@contextmanager
def _meta_parameters() -> Iterator[None]:
    """Every parameter registered inside goes to the meta device; buffers stay real."""
    import torch

    original = torch.nn.Module.register_parameter

    def register(self: torch.nn.Module, name: str, param: Any) -> None:
        original(self, name, param)
        value = self._parameters.get(name)
        if value is not None and value.device.type != "meta":
            self._parameters[name] = torch.nn.Parameter(value.to("meta"), requires_grad=False)

    torch.nn.Module.register_parameter = register  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]


def _to_meta(module: torch.nn.Module) -> None:
    import torch

    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and param.device.type != "meta":
                sub._parameters[name] = torch.nn.Parameter(
                    torch.empty_like(param, device="meta"), requires_grad=False
                )


def _find_layers(model: torch.nn.Module, count: int) -> tuple[str, torch.nn.ModuleList]:
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == count and name:
            return name, module
    raise ConfigError(
        f"found no list of {count} decoder layers in {type(model).__name__}",
        fix="the reference supports decoder-only causal LMs with a layer list",
    )


@dataclass
class LayeredModel:
    """The model, where its decoder layers are, and which units are loaded."""

    model: PreTrainedModel
    layers: torch.nn.ModuleList
    layer_path: str  # e.g. "model.layers"
    weights: WeightSource
    device: torch.device
    dtype: torch.dtype
    units: dict[str, list[str]]  # unit -> checkpoint tensor names
    ignored: list[str] = field(default_factory=list)  # checkpoint tensors no module takes
    unexpected: list[str] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)
    cache_budget: int = 0  # bytes of dequantized units streamed mode may keep loaded
    kept: set[str] = field(default_factory=set)  # units the cache holds
    kept_bytes: int = 0
    cache_hits: int = 0  # holds of a unit the cache already held
    experts: dict[int, RoutedExperts] = field(default_factory=dict)  # layer -> read by group
    load_seconds: float = 0.0  # reading, dequantizing and converting weights, so far
    _mapping: list[Any] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def unit_bytes(self, unit: str) -> int:
        """The unit's loaded size: its checkpoint tensors in the compute dtype."""
        return model_bytes(self.weights, self.dtype.itemsize, self.unit_names(unit))

    def unit_names(self, unit: str) -> list[str]:
        """The checkpoint tensors loading ``unit`` reads: not the routed experts read by group."""
        names = self.units.get(unit, [])
        experts = self._routed(unit)
        if experts is None:
            return names
        grouped = experts.tensor_names
        return [n for n in names if n not in grouped]

    def _routed(self, unit: str) -> RoutedExperts | None:
        if not self.experts or not unit.startswith("layer."):
            return None
        return self.experts.get(int(unit.split(".")[1]))

    def run_layer(self, index: int, calls: Sequence[Callable[[], Any]]) -> list[Any]:
        """The results of ``calls`` of layer ``index``, in turn; a layer whose experts are read
        by group serves all the calls' experts together (:meth:`RoutedExperts.run`)."""
        experts = self.experts.get(index)
        return experts.run(calls) if experts is not None else [call() for call in calls]

    def experts_weight_bytes(self) -> int:
        """Checkpoint weight bytes the routed experts read by group so far (scales aside)."""
        return sum(e.weight_bytes for e in self.experts.values())

    def stream_experts(self) -> None:
        """From now on, MoE layers' routed experts are read by group (:mod:`adaptgate.reference.
        experts`), each group at most half the largest other unit: loading a group holds its
        experts' tensors and their fused copy, twice its size. Before any load."""
        self.experts = find_routed_experts(self)
        group = self.largest_unit_bytes() // 2
        for experts in self.experts.values():
            experts.group_bytes = group

    def largest_unit_bytes(self) -> int:
        return max(self.unit_bytes(u) for u in self.units)

    @property
    def input_units(self) -> tuple[str, ...]:
        """The units the model's forward needs before the first decoder layer."""
        return (BASE, EMBED) if EMBED in self.units else (BASE,)

    @property
    def output_units(self) -> tuple[str, ...]:
        """The units the model's forward needs after the last decoder layer."""
        return (BASE, HEAD) if HEAD in self.units else (BASE,)

    def unit_modules(self, unit: str) -> list[torch.nn.Module]:
        if unit == EMBED:
            return [self.model.get_input_embeddings()]
        if unit == HEAD:
            return [self.model.get_output_embeddings()]
        if unit == BASE:
            other = {id(m) for m in self.layers.modules()}
            for split in (EMBED, HEAD):
                if split in self.units:
                    other |= {id(m) for m in self.unit_modules(split)[0].modules()}
            return [
                m
                for m in self.model.modules()
                if id(m) not in other and any(True for _ in m.parameters(recurse=False))
            ]
        return [self.layers[int(unit.split(".")[1])]]

    def load(self, unit: str) -> None:
        if unit in self.loaded:
            return
        t0 = time.perf_counter()
        state = {name: self.weights.read(name) for name in self.unit_names(unit)}
        self._load_state(state, unit)
        del state
        self.loaded.add(unit)
        self.load_seconds += time.perf_counter() - t0

    def free(self, unit: str) -> None:
        experts = self._routed(unit)
        if experts is not None:
            experts.release()
        if unit not in self.loaded:
            return
        for module in self.unit_modules(unit):
            _to_meta(module)
        self.loaded.discard(unit)
        trim_heap()

    def load_all(self) -> None:
        for unit in self.units:
            self.load(unit)

    @contextmanager
    def holding(self, unit: str, *, release: bool, keep: bool = False) -> Iterator[None]:
        """Loads ``unit`` for the block; after it, when ``release``, frees it unless the cache
        holds it or (``keep``: a later pass will read it again) takes it in."""
        if unit in self.kept:
            self.cache_hits += 1
        self.load(unit)
        try:
            yield
        finally:
            experts = self._routed(unit)
            if experts is not None:  # a group is never kept
                experts.release()
            if release and not self._keep(unit, keep):
                self.free(unit)

    @contextmanager
    def holding_all(
        self, units: Iterable[str], *, release: bool, keep: bool = False
    ) -> Iterator[None]:
        """``holding`` of several units at once (e.g. :attr:`input_units`)."""
        with ExitStack() as stack:
            for unit in units:
                stack.enter_context(self.holding(unit, release=release, keep=keep))
            yield

    def _keep(self, unit: str, take: bool) -> bool:
        if unit in self.kept:
            return True
        if not take:
            return False
        size = self.unit_bytes(unit)
        if self.kept_bytes + size > self.cache_budget:
            return False
        self.kept.add(unit)
        self.kept_bytes += size
        return True

    def convert_state(self, state: dict[str, torch.Tensor]) -> Any:
        """Loads checkpoint tensors into the model through transformers' own conversion; returns
        its loading info (missing keys...)."""
        from transformers.core_model_loading import convert_and_load_state_dict_in_model
        from transformers.modeling_utils import LoadStateDictConfig

        config = LoadStateDictConfig(
            weight_mapping=self._mapping, dtype=self.dtype, device_map={"": str(self.device)}
        )
        info, _ = convert_and_load_state_dict_in_model(self.model, state, config)
        if info.conversion_errors:
            key, err = next(iter(info.conversion_errors.items()))
            raise CheckpointFormatError(
                f"transformers could not convert {key}: {err}".splitlines()[0],
                fix="check that config.json matches the weights",
            )
        if info.mismatched_keys:
            key, got, want = sorted(info.mismatched_keys)[0]
            raise CheckpointFormatError(
                f"{key} has shape {list(got)} in the checkpoint but the model expects {list(want)}",
                fix="check that config.json matches the weights",
            )
        self.unexpected += sorted(info.unexpected_keys)
        return info

    def _load_state(self, state: dict[str, torch.Tensor], unit: str) -> None:
        info = self.convert_state(state)
        if unit == BASE:
            self.model.tie_weights(missing_keys=set(info.missing_keys), recompute_mapping=True)
        experts = self._routed(unit)
        grouped = set() if experts is None else {id(p) for p in experts.module.parameters()}
        missing = [
            f"{name}"
            for module in self.unit_modules(unit)
            for name, p in module.named_parameters(recurse=unit not in OUTSIDE_LAYERS)
            if p.device.type == "meta" and id(p) not in grouped
        ]
        if missing:
            where = (
                "outside the decoder layers" if unit in OUTSIDE_LAYERS else unit.replace(".", " ")
            )
            raise CheckpointFormatError(
                f"the checkpoint lacks {len(missing)} parameters of {where} (e.g. {missing[0]})",
                fix="check that the weights are complete and match config.json",
            )


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def build_config(weights: WeightSource) -> Any:
    """transformers' config for the checkpoint, without its quantization_config (weights arrive
    dequantized)."""
    from transformers import AutoConfig

    _quiet_transformers()
    try:
        config = AutoConfig.from_pretrained(str(weights.ckpt.root))
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigError(
            f"transformers cannot read {weights.ckpt.root}/config.json: {str(exc).splitlines()[0]}",
            fix="use a transformers version that knows this architecture",
        ) from None
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def _split_embeddings(model: PreTrainedModel, units: dict[str, list[str]]) -> None:
    """Moves untied input and output embeddings out of ``base`` into units of their own, when
    the checkpoint names their weights as the modules do; otherwise ``base`` keeps them."""
    if getattr(model.config.get_text_config(), "tie_word_embeddings", False):
        return
    paths = {id(m): path for path, m in model.named_modules()}
    split: dict[str, list[str]] = {}
    for unit, module in (
        (EMBED, model.get_input_embeddings()),
        (HEAD, model.get_output_embeddings()),
    ):
        if module is None or id(module) not in paths:
            return
        names = [f"{paths[id(module)]}.{p}" for p, _ in module.named_parameters()]
        if not names or any(n not in units[BASE] for n in names):
            return
        split[unit] = names
    for unit, names in split.items():
        units[BASE] = [n for n in units[BASE] if n not in names]
        units[unit] = names


def build_model(weights: WeightSource, device: str, dtype: torch.dtype) -> LayeredModel:
    """The model skeleton with no weights loaded."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.conversion_mapping import get_model_conversion_mapping

    config = build_config(weights)
    if device.split(":", maxsplit=1)[0] == "npu":
        try:
            import torch_npu  # noqa: F401  (registers the npu device with torch)
        except ImportError:
            raise UsageError(
                "device npu needs torch_npu", fix="install torch_npu matching your CANN"
            ) from None
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(
            f"unknown torch device {device!r}", fix="use cpu, cuda, cuda:1, npu, npu:0, ..."
        ) from None
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise UsageError(
            f"torch cannot use device {device!r}: {str(exc).splitlines()[0]}",
            fix="install a torch build for that device (or torch_npu), or use --torch-device cpu",
        ) from None
    with _meta_parameters():
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        except ValueError as exc:
            raise ConfigError(
                f"transformers has no causal LM for this config: {str(exc).splitlines()[0]}",
                fix="the reference needs an architecture transformers supports natively",
            ) from None
    model.eval()
    # transformers' per-expert loop (the definition the faster kernels approximate); streamed
    # MoE layers compute the same loop by group, bit for bit (adaptgate.reference.experts)
    model.config._experts_implementation = "eager"
    for module in model.modules():
        for name, buf in list(module._buffers.items()):
            if buf is not None:
                module._buffers[name] = buf.to(dev)
    count = int(getattr(model.config.get_text_config(), "num_hidden_layers", 0) or 0)
    layer_path, layers = _find_layers(model, count)
    container = layer_path.rsplit(".", 1)[-1]
    units: dict[str, list[str]] = {BASE: []}
    ignored: list[str] = []
    for name in weights.names:
        idx = layer_index(name, container)
        if idx is None:
            units[BASE].append(name)
        elif idx < count:
            units.setdefault(layer_unit(idx), []).append(name)
        else:
            ignored.append(name)  # e.g. GLM's MTP layer: no module of this class takes it
    _split_embeddings(model, units)
    return LayeredModel(
        model=model,
        layers=layers,
        layer_path=layer_path,
        weights=weights,
        device=dev,
        dtype=dtype,
        units=units,
        ignored=ignored,
        _mapping=get_model_conversion_mapping(model),
    )
