"""The demo: the Beauty Rewards program (`program`) and its synthetic history (`history`)."""

from loyalty.demo.program import BADGES, CODE, FX_TO_USD, SPRING_SAVINGS, TIERS, demo_program_seed

__all__ = ["BADGES", "CODE", "FX_TO_USD", "SPRING_SAVINGS", "TIERS", "demo_program_seed"]
