"""Figures and README blocks drawn from stored results."""
