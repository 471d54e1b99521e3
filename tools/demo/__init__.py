"""`make demo`: the real data plane on one machine, two people in a browser (world.py)."""
