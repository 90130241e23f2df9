"""The run-time stages: photo → frames → GMM → EDM → RM → photo, outfits and batch runs."""
