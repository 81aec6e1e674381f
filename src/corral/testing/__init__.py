"""Test and benchmark support that ships with corral: the scripted engine and its launcher."""
