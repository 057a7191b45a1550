"""The tour behind ``python -m phoenixkit demo``: one section per module."""

from __future__ import annotations

from phoenixkit.demo.tour import SECTIONS, Section, TourContext, run_demo

__all__ = ["SECTIONS", "Section", "TourContext", "run_demo"]
