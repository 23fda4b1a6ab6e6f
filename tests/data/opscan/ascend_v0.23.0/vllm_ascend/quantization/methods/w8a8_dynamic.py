from .registry import register_scheme


@register_scheme("W8A8_DYNAMIC", "linear")
class AscendW8A8DynamicLinearMethod:
    pass
