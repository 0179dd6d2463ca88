"""Bonuses and promotions with wagering requirements (issue 11)."""
