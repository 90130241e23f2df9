"""Small dataclass configs of the three networks; ``full`` reproduces each original exactly.

``lite`` configs build the same graphs, narrower (and, for tests, at smaller frames), so demos and
tests run fast on a CPU. ``get(module, name)`` is the one lookup the rest of the code uses.
"""

import dataclasses

from everywear_tf import spec

FULL = 'full'
LITE = 'lite'
CONFIG_NAMES = (FULL, LITE)

CPVTON = 'cpvton'
CPVTON_PLUS = 'cpvton_plus'
GMM_VARIANTS = (CPVTON, CPVTON_PLUS)


@dataclasses.dataclass(frozen=True)
class GmmConfig:
    """CP-VTON's geometric matching module (networks.py GMM)."""
    variant: str = CPVTON  # 'cpvton_plus' feeds the cloth mask, not RGB, to the cloth branch
    ngf: int = 64  # extractor widths ngf·(1, 2, 4, 8, 8, 8); regression 8, 4, 2, 1 × ngf
    grid_size: int = 5
    height: int = spec.IMAGE_HEIGHT
    width: int = spec.IMAGE_WIDTH
    agnostic_channels: int = 22

    def __post_init__(self):
        if self.variant not in GMM_VARIANTS:
            raise ValueError(f'GmmConfig.variant must be one of {GMM_VARIANTS}, '
                             f'got {self.variant!r}')
        if self.height < 64 or self.width < 64 or self.height % 16 or self.width % 16:
            raise ValueError('GmmConfig needs height and width that are multiples of 16 and at '
                             f'least 64, got {self.height}x{self.width}')

    @property
    def cloth_channels(self):
        """Channels of the cloth branch's input: 3 (RGB) for CP-VTON, 1 (the mask) for CP-VTON+."""
        return 3 if self.variant == CPVTON else 1


@dataclasses.dataclass(frozen=True)
class EdmConfig:
    """VITON stage 1's encoder-decoder (model_zalando_mask_content.py create_generator)."""
    ngf: int = 64  # encoder widths ngf·(1, 2, 4, 8, 8, 8)
    input_channels: int = 25
    output_channels: int = 4  # mask first, then RGB
    dropout: float = 0.5  # decoder_6 only, training only


@dataclasses.dataclass(frozen=True)
class RmConfig:
    """VITON stage 2's refinement network (model_zalando_tps_warp.py create_refine_generator)."""
    filters: int = 64
    input_channels: int = 6  # warped product + coarse person


_CONFIGS = {
        (spec.GMM, FULL): GmmConfig(),
        (spec.GMM, LITE): GmmConfig(ngf=8),
        (spec.EDM, FULL): EdmConfig(),
        (spec.EDM, LITE): EdmConfig(ngf=8),
        (spec.RM, FULL): RmConfig(),
        (spec.RM, LITE): RmConfig(filters=8),
}

_TYPES = {spec.GMM: GmmConfig, spec.EDM: EdmConfig, spec.RM: RmConfig}


def get(module, name=FULL, **overrides):
    """The named config of ``module`` ('gmm', 'edm', 'rm'), with field overrides."""
    if (module, name) not in _CONFIGS:
        raise ValueError(f'no config {name!r} for module {module!r}; modules {spec.MODULES}, '
                         f'configs {CONFIG_NAMES}')
    return dataclasses.replace(_CONFIGS[(module, name)], **overrides)


def module_of(config) -> str:
    """The module ('gmm', 'edm', 'rm') a config describes; TypeError for anything else."""
    for module, cls in _TYPES.items():
        if type(config) is cls:
            return module
    raise TypeError(f'not a network config: {config!r}')


def to_dict(config):
    """The config's fields as a plain dict (what manifests store)."""
    return dataclasses.asdict(config)


def from_dict(module, values):
    """Rebuilds a config from ``to_dict`` output; unknown fields are an error, not ignored."""
    cls = _TYPES[module]
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f'unknown {cls.__name__} fields {unknown}; known: {sorted(known)}')
    return cls(**values)
