"""phoenixkit: backend optimization primitives.

Independent modules, each usable alone: ``cache``, ``ratelimit``, ``breaker``, ``retry``,
``batch``, ``replicas``, ``querymon``, ``masking`` and ``integrations``. Importing the
package imports nothing heavy; import the module you need.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0.dev0"
