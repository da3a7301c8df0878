"""Stores: the Store contract and its implementations."""
