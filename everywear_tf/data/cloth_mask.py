"""A product photo's garment mask when none is given: near-white background removed, holes
filled, specks removed. Product shots are on white, so this recovers the masks CP-VTON's
datasets ship (cloth-mask/) closely enough for GMM's inputs."""

import cv2
import numpy as np

WHITE_THRESHOLD = 250  # every channel at or above → background


def compute_cloth_mask(cloth, white_threshold=WHITE_THRESHOLD):
    """uint8 [H,W,3] RGB on white → uint8 {0, 255} [H,W]."""
    cloth = np.asarray(cloth)
    if cloth.dtype != np.uint8 or cloth.ndim != 3 or cloth.shape[2] != 3:
        raise ValueError(f'a product photo must be uint8 [H,W,3], got {cloth.dtype} '
                         f'{cloth.shape}')
    foreground = np.any(cloth < white_threshold, axis=-1).astype(np.uint8) * 255
    # Holes: background pixels not connected to the border (a white print on the garment).
    height, width = foreground.shape
    flood = np.pad(foreground, 1)  # a background ring so the fill reaches around
    mask = np.zeros((height + 4, width + 4), np.uint8)
    cv2.floodFill(flood, mask, (0, 0), 128)
    filled = np.where(flood[1:-1, 1:-1] == 128, 0, 255).astype(np.uint8)
    return cv2.medianBlur(filled, 3)
