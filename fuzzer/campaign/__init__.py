"""Campaigns: the loop, its engines (threads or Ray actors), the store, scheduling, progress, background reduction."""
