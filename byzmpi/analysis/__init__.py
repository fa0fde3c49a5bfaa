"""Post-processing of byzmpi traces."""
