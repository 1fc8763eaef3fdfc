"""Adapters that feed rlenv environments to third-party trainers (TRL, verl, OpenRLHF).

Each adapter is an optional extra and imports its trainer library only when used.
"""
