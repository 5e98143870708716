"""Scores of synthetic images against real ones, in the judge's eyes (stages quality and study)
and of detectors (evaluate, quality): conditional accuracy, Fréchet distance, KID, statistics; and the
judge's filter of synthetic images (assemble)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from synthaug.compose import box_iou
from synthaug.errors import DataError
from synthaug.images import load_array

if TYPE_CHECKING:
    import torch

# torch, scipy and the ResNet code are imported where they are used: assemble imports this module for
# its filter, which with the default filter.min_confidence of 0 runs no network (2.5 s of start-up saved)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (FID's formula)."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:
        raise DataError(f"Fréchet distance needs >= 2 images per set, got {len(a)} and {len(b)}")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():  # singular product (few samples): regularise as pytorch-fid does
        eps = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018, as torchmetrics and clean-fid compute it): the unbiased MMD² with the
    cubic polynomial kernel k(x, y) = (x·y / d + 1)³, averaged over ``subsets`` random subsets of
    min(``subset_size``, len(a), len(b)) features of each set; returns the mean and the standard
    deviation over subsets. Unbiased at any sample size, unlike the Fréchet distance, so sources
    of different sizes compare, and its spread says how far two sources must differ to mean it."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise DataError(f"KID needs >= 2 images per set, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((p @ q.T / d + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def conditional_accuracy(probs: torch.Tensor, labels: Sequence[int]) -> float:
    """Share of images the judge assigns to their intended class."""
    import torch

    return float((probs.argmax(1) == torch.as_tensor(labels)).float().mean()) if len(labels) else 0.0


def refound(truth: list[tuple[int, Sequence[float]]], found: list[tuple[int, Sequence[float]]], iou: float) -> int:
    """How many true (class, box) a detector re-found: same class, IoU >= ``iou``, one-to-one."""
    if not truth or not found:
        return 0
    ious = np.array([[box_iou(tb, fb) if tc == fc else 0.0 for fc, fb in found] for tc, tb in truth])
    hits, used = 0, set()
    for i in np.argsort(-ious.max(1)):  # greedy, best matches first
        j = next((j for j in np.argsort(-ious[i]) if j not in used and ious[i, j] >= iou), None)
        if j is not None:
            used.add(j)
            hits += 1
    return hits


def judge_scores(
    judge: torch.nn.Module, images: torch.Tensor, labels: Sequence[int], real_features: torch.Tensor
) -> dict:
    """Conditional accuracy, Fréchet distance and KID (mean and spread over subsets; to
    ``real_features``) of labelled images."""
    from synthaug.resnet import predict

    probs, feats = predict(judge, images)
    kid, kid_std = kernel_inception_distance(feats.numpy(), real_features.numpy())
    return {
        "images": len(labels),
        "conditional_accuracy": round(conditional_accuracy(probs, labels), 6),
        "frechet_distance": round(frechet_distance(feats.numpy(), real_features.numpy()), 4),
        "kid": round(kid, 6),
        "kid_std": round(kid_std, 6),
    }


def judge_filter(
    synthetic: list[tuple[Path, int]], classes: list[str], judge_dir: Path, min_confidence: float, fit: tuple[int, int]
) -> tuple[list[tuple[Path, int]], dict]:
    """Keep the synthetic images the judge assigns to their class with >= ``min_confidence`` (the
    CLIP-filtering step of synthetic-data papers; stage assemble), converted as datasets hold them
    (``fit`` = size, channels); returns them and the per-class counts kept and dropped."""
    keep = [True] * len(synthetic)
    if min_confidence > 0 and synthetic:
        import torch

        from synthaug.resnet import load_trained, predict

        net, config = load_trained(judge_dir)
        if config["classes"] != classes:
            raise DataError(
                f"{judge_dir}: judge classes {config['classes']} differ from the dataset's {classes}; "
                "rerun `dvc repro judge`"
            )
        x = torch.from_numpy(np.stack([load_array(f, "RGB", fit) for f, _ in synthetic])).permute(0, 3, 1, 2)
        probs, _ = predict(net, x)
        labels = torch.tensor([k for _, k in synthetic])
        keep = (probs[torch.arange(len(labels)), labels] >= min_confidence).tolist()
    per_class = {name: {"kept": 0, "dropped": 0} for name in classes}
    for (_, k), ok in zip(synthetic, keep):
        per_class[classes[k]]["kept" if ok else "dropped"] += 1
    kept = sum(keep)
    metrics = {
        "min_confidence": min_confidence,
        "kept": kept,
        "dropped": len(keep) - kept,
        "rejection_rate": round((len(keep) - kept) / len(keep), 6) if keep else 0.0,
        "per_class": per_class,
    }
    return [item for item, ok in zip(synthetic, keep) if ok], metrics
