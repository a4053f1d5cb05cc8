"""What do statistics over many test digits say about the ViT's attention, its patch filters and its [CLS] features?

The question: the notebook's attention maps show single digits. Over many digits: how far does each head look
(Dosovitskiy et al., 2021, Figure 7), what patterns do the patch-embedding filters measure, and how do the final
[CLS] features group the ten digits; are the digits that the ViT confuses most close together in that space?

Reuses: the committed ViT (checkpoints/vit_mnist.pt), the notebook's `attention_maps` and `test_predictions`.
Computes: the mean attention distance of every head on the first 500 test digits, against uniform attention; the
principal components of the 7x7 patch-embedding filters; a PCA of the [CLS] features of the 10,000 test digits to two
dimensions; for every two digits, the distance between their class centroids in the projection and in the full
128-dimensional space (also divided by the classes' spread), their confusions in the confusion matrix, and Spearman's
rank correlation between confusions and distance over the 45 pairs.
Takes about a minute on 2 CPU cores; --quick (500 test digits) about 15 s.
"""

import itertools
import math
from dataclasses import replace

import numpy as np
import torch
from scipy import stats
from sklearn.decomposition import PCA

import common
from common import nb

DISTANCE_DIGITS = 500  # test digits for the mean attention distance
FILTER_COMPONENTS = 16


def mean_attention_distance(maps: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(layers, B, heads, T, T) -> (layers, heads): mean pixel distance between a patch and the patches it attends
    to, weighted by attention (rows renormalised over the patches, [CLS] left out)."""
    side = int(math.isqrt(maps.shape[-1] - 1))
    rows, cols = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], 1).float() * patch_size  # (N, 2) in pixels
    distance = torch.cdist(centres, centres).to(maps.device)  # (N, N)
    patch_maps = maps[..., 1:, 1:]
    patch_maps = patch_maps / patch_maps.sum(-1, keepdim=True)
    return (patch_maps * distance).sum(-1).mean(dim=(1, 3))  # average over queries and images


def attention_distances(model, data, n: int) -> dict:
    config = model.config
    maps = torch.cat([nb.attention_maps(model, images, data) for images in data.x_test[:n].split(100)], dim=1)
    distances = mean_attention_distance(maps, config.patch_size)  # (layers, heads)
    tokens = config.num_patches + 1
    uniform = mean_attention_distance(torch.full((1, 1, 1, tokens, tokens), 1.0 / tokens), config.patch_size).item()
    fig, ax = nb.plt.subplots(figsize=(7.5, 4))
    for head in range(config.num_heads):
        offset = (head - (config.num_heads - 1) / 2) * 0.08  # side by side within a layer, so no point hides another
        ax.scatter(torch.arange(1, config.depth + 1) + offset, distances[:, head], label=f"head {head + 1}", s=30)
    ax.axhline(uniform, color="gray", ls="--", lw=1, label=f"uniform attention ({uniform:.1f} px)")
    ax.set(xlabel="layer (depth)", ylabel="mean attention distance (pixels)", ylim=(0, 1.15 * distances.max().item()),
           title=f"Mean attention distance per head, {n} test digits", xticks=range(1, config.depth + 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    nb.save_figure(fig, "attention_distance")
    print(f"mean attention distance from {distances.min():.1f} to {distances.max():.1f} pixels over the "
          f"{config.depth * config.num_heads} heads; uniform attention: {uniform:.1f} pixels")
    return {"test_digits": n, "per_layer_and_head": distances.tolist(), "min": distances.min().item(),
            "max": distances.max().item(), "uniform": uniform}


def patch_filters(model) -> dict:
    """The principal components of the patch projection's filters, one P x P filter per token dimension."""
    P = model.config.patch_size
    weights = model.patch_embed.proj.weight.detach().reshape(model.config.embed_dim, -1)  # (D, P*P*C)
    _, singular_values, components = torch.linalg.svd(weights - weights.mean(0), full_matrices=False)
    explained = singular_values**2 / (singular_values**2).sum()
    fig, axes = nb.plt.subplots(2, FILTER_COMPONENTS // 2, figsize=(12, 3.4))
    for pc, ax in enumerate(axes.flat):
        ax.imshow(components[pc].reshape(P, P), cmap="RdBu_r")
        ax.set_title(f"PC {pc + 1} ({explained[pc]:.0%})", fontsize=8)
        ax.axis("off")
    fig.suptitle("Principal components of the patch-embedding filters (share of variance)")
    nb.save_figure(fig, "patch_filters")
    print(f"patch filters: the first {FILTER_COMPONENTS} principal components explain "
          f"{explained[:FILTER_COMPONENTS].sum():.1%} of their variance, the first four {explained[:4].sum():.1%}")
    return {"filters": model.config.embed_dim, "filter_size": P, "explained_variance": explained.tolist(),
            "explained_by_first_4": explained[:4].sum().item(),
            f"explained_by_first_{FILTER_COMPONENTS}": explained[:FILTER_COMPONENTS].sum().item()}


def centroid_distances(points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(10, 10) distances between the class centroids of `points` (N, d), and (10,) each class's spread: the root
    mean square distance of its points to its centroid."""
    centroids = np.stack([points[labels == digit].mean(0) for digit in range(10)])  # (10, d)
    spread = np.array([np.sqrt(((points[labels == digit] - centroids[digit]) ** 2).sum(1).mean())
                       for digit in range(10)])
    return np.linalg.norm(centroids[:, None] - centroids[None, :], axis=-1), spread


def ranks(values: list[float]) -> list[int]:
    """1 for the smallest value."""
    order = np.argsort(values, kind="stable")
    result = np.empty(len(values), dtype=int)
    result[order] = np.arange(1, len(values) + 1)
    return result.tolist()


def cls_features(model, data, seed: int) -> dict:
    """PCA of the test digits' [CLS] features, and whether the pairs the ViT confuses lie close together."""
    test = nb.test_predictions(model, data, features=True)
    features, labels, pred = test["features"].numpy(), test["labels"].numpy(), test["pred"].numpy()
    pca = PCA(n_components=2, random_state=seed)
    projected = pca.fit_transform(features)  # (N, 2)
    fig, ax = nb.plt.subplots(figsize=(7, 6))
    colours = nb.plt.get_cmap("tab10")
    for digit in range(10):
        chosen = labels == digit
        ax.scatter(projected[chosen, 0], projected[chosen, 1], s=2, color=colours(digit), label=str(digit))
        centre = projected[chosen].mean(0)
        ax.text(centre[0], centre[1], str(digit), fontsize=14, fontweight="bold", ha="center", va="center",
                bbox=dict(boxstyle="circle,pad=0.2", facecolor="white", edgecolor=colours(digit)))
    ax.set(xlabel=f"principal component 1 ({pca.explained_variance_ratio_[0]:.0%} of the variance)",
           ylabel=f"principal component 2 ({pca.explained_variance_ratio_[1]:.0%})",
           title=f"[CLS] features of the {len(labels):,} test digits (PCA; each class's centroid numbered)")
    ax.legend(markerscale=6, title="digit", fontsize=8)
    nb.save_figure(fig, "cls_features_pca")

    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (labels, pred), 1)  # rows: true digit, columns: predicted
    (in_2d, _), (in_full, spread) = centroid_distances(projected, labels), centroid_distances(features, labels)
    pairs = [{"digits": [a, b], "confusions": int(confusion[a, b] + confusion[b, a]),
              f"{a}_read_as_{b}": int(confusion[a, b]), f"{b}_read_as_{a}": int(confusion[b, a]),
              "distance_2d": float(in_2d[a, b]), "distance_full": float(in_full[a, b]),
              "separation_full": float(in_full[a, b] / np.sqrt((spread[a] ** 2 + spread[b] ** 2) / 2))}
             for a, b in itertools.combinations(range(10), 2)]
    dim = features.shape[1]
    measures = {"distance_2d": "centroid distance, 2-D PCA", "distance_full": f"centroid distance, {dim}-D",
                "separation_full": f"centroid distance / class spread, {dim}-D"}
    for measure in measures:  # rank 1: the closest pair of the 45
        for pair, rank in zip(pairs, ranks([p[measure] for p in pairs])):
            pair[f"rank_{measure}"] = rank
    pairs.sort(key=lambda p: (-p["confusions"], p["digits"]))
    correlation = {measure: stats.spearmanr([p["confusions"] for p in pairs], [p[measure] for p in pairs])
                   for measure in measures}
    common.print_table(["digits", "confusions (both ways)", *(f"{title} (rank of 45)" for title in measures.values())],
                       [[f"{p['digits'][0]} and {p['digits'][1]}", p["confusions"],
                         *(f"{p[m]:.2f} ({p[f'rank_{m}']})" for m in measures)] for p in pairs[:6]],
                       "The most confused pairs of digits; rank 1 is the closest pair of the 45. Class spread: the "
                       "root mean square distance of a class's digits to its centroid (of the two classes).")
    for measure, result in correlation.items():
        print(f"Spearman's rank correlation over the 45 pairs, confusions against the {measures[measure]}: "
              f"{result.statistic:+.2f} (p = {result.pvalue:.2g})")
    print(f"{features.shape[1]}-D centroid distances from {min(p['distance_full'] for p in pairs):.2f} to "
          f"{max(p['distance_full'] for p in pairs):.2f}; 2-D from {min(p['distance_2d'] for p in pairs):.2f} to "
          f"{max(p['distance_2d'] for p in pairs):.2f} (the two PCs keep "
          f"{pca.explained_variance_ratio_.sum():.0%} of the variance)")
    return {"test_digits": len(labels), "errors": int((labels != pred).sum()),
            "explained_variance_2d": pca.explained_variance_ratio_.tolist(), "feature_dim": features.shape[1],
            "class_spread_full": spread.tolist(), "confusion_matrix": confusion.tolist(), "pairs_by_confusions": pairs,
            "distance_range": {measure: [min(p[measure] for p in pairs), max(p[measure] for p in pairs)]
                               for measure in measures},
            "spearman_confusions_vs_measure": {measure: {"rho": float(r.statistic), "p": float(r.pvalue)}
                                               for measure, r in correlation.items()}}


def main():
    args = common.options(__doc__.splitlines()[0])
    data = common.load_data()
    if args.quick:
        data = replace(data, x_test=data.x_test[:500], y_test=data.y_test[:500])
    model, _, _ = common.load_model("ViT")
    print(f"computing: mean attention distance, patch-filter components, PCA of the [CLS] features of "
          f"{len(data.x_test):,} test digits and the centroid distances of the confused pairs")
    common.write_json(args, "attention_statistics", {
        "attention_distance": attention_distances(model, data, 100 if args.quick else DISTANCE_DIGITS),
        "patch_filters": patch_filters(model), "cls_features": cls_features(model, data, args.seed),
        "figures": ["attention_distance.png", "patch_filters.png", "cls_features_pca.png"]})


if __name__ == "__main__":
    main()
