"""The inspect gate: architecture facts, exact parameter counts, quantization scheme, KV-cache
bytes, memory plan per device layout, backend support and the route to a deployment.

``inspect_model(InspectOptions(...)) -> InspectResult`` is the one entry point. Importing this
package never imports torch or transformers.
"""

from adaptgate.inspect.api import inspect_model
from adaptgate.inspect.devices import DEVICES, DeviceProfile, list_devices
from adaptgate.inspect.models import InspectOptions, InspectResult

__all__ = [
    "DEVICES",
    "DeviceProfile",
    "InspectOptions",
    "InspectResult",
    "inspect_model",
    "list_devices",
]
