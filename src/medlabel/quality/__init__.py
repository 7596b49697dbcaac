"""Quality measures: segmentation, classification, agreement and detection metrics
(pure functions over arrays, spacing in mm; see ``docs/metrics.md``), and the
simulated-annotator benchmark of engines.

Importing this package loads NumPy only (SciPy is imported by the functions that need
it; never torch or MONAI).
"""

from medlabel.quality.boxes import (
    BoxMatching,
    DetectionMetrics,
    average_precision,
    box_iou,
    detection_metrics,
    match_boxes,
)
from medlabel.quality.classification import (
    ClassMetrics,
    RocCurve,
    accuracy_score,
    class_metrics,
    cohen_kappa,
    confusion_matrix,
    fleiss_kappa,
    macro_metrics,
    ratings_to_counts,
    roc_auc,
    roc_curve,
)
from medlabel.quality.overlap import (
    ConfusionCounts,
    accuracy,
    confusion_counts,
    dice,
    f1_score,
    iou,
    precision,
    sensitivity,
    specificity,
    volume_similarity,
)
from medlabel.quality.segmentation import (
    SegmentationMetrics,
    per_label_metrics,
    segmentation_metrics,
)
from medlabel.quality.surface import (
    SurfaceDistances,
    SurfaceMetrics,
    assd,
    hausdorff,
    hd95,
    mask_surface,
    surface_dice,
    surface_distances,
    surface_metrics,
)

__all__ = [
    "BoxMatching",
    "ClassMetrics",
    "ConfusionCounts",
    "DetectionMetrics",
    "RocCurve",
    "SegmentationMetrics",
    "SurfaceDistances",
    "SurfaceMetrics",
    "accuracy",
    "accuracy_score",
    "assd",
    "average_precision",
    "box_iou",
    "class_metrics",
    "cohen_kappa",
    "confusion_counts",
    "confusion_matrix",
    "detection_metrics",
    "dice",
    "f1_score",
    "fleiss_kappa",
    "hausdorff",
    "hd95",
    "iou",
    "macro_metrics",
    "mask_surface",
    "match_boxes",
    "per_label_metrics",
    "precision",
    "ratings_to_counts",
    "roc_auc",
    "roc_curve",
    "segmentation_metrics",
    "sensitivity",
    "specificity",
    "surface_dice",
    "surface_distances",
    "surface_metrics",
    "volume_similarity",
]
