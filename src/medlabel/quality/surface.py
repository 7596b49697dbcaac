"""Surface distances between two binary masks, in mm: Hausdorff distance, its 95th
percentile (HD95), the average symmetric surface distance (ASSD) and the normalised
surface Dice (NSD) at a tolerance.

Definitions (as in MONAI's ``compute_hausdorff_distance``, ``compute_average_surface_distance``
and ``compute_surface_dice`` with their defaults; ``docs/metrics.md`` explains them):

* The **surface** of a mask is its voxels that have at least one face neighbour
  (4-connectivity in 2D, 6 in 3D) outside the mask; outside the array counts as outside.
  This is ``mask & ~binary_erosion(mask)`` with SciPy's default cross structure, which is
  MONAI's ``get_mask_edges`` without sub-voxel areas.
* The **directed distances** ``d(A→B)`` are, for each surface voxel of A, the Euclidean
  distance in mm (voxel centres scaled by ``spacing``) to the nearest surface voxel of B.
* ``hausdorff(percentile=p) = max(P_p(d(A→B)), P_p(d(B→A)))`` where ``P_p`` is the
  ``p``-th percentile with linear interpolation (NumPy's and PyTorch's default); ``p=100``
  is the classical Hausdorff distance, ``p=95`` is HD95.
* ``assd`` is the mean of all distances of both directions together:
  ``(Σ d(A→B) + Σ d(B→A)) / (|∂A| + |∂B|)``.
* ``surface_dice`` (NSD) is the share of surface voxels of both masks within the
  tolerance of the other surface: ``(|d(A→B) ≤ τ| + |d(B→A) ≤ τ|) / (|∂A| + |∂B|)``; each
  surface voxel counts once (no sub-voxel surface areas).

Empty masks: two empty masks agree (distances 0.0, NSD 1.0); when exactly one mask is
empty the distances are ``inf`` and NSD is 0.0.

Speed: the masks are cropped to their joint bounding box, surfaces are found with array
shifts, and each surface voxel looks for the other surface at voxel offsets visited in
order of increasing distance, so the first hit is the exact nearest; only voxels with no
hit within a few voxels are looked up in a k-d tree. :func:`surface_distances` computes
both directions once; :func:`surface_metrics` derives every metric from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Spacing in mm per array axis; a number means isotropic, ``None`` means 1 mm.
SpacingLike = float | Sequence[float] | None

#: Voxel offsets tried at most before falling back to a k-d tree.
_STENCIL_SIZE = 400
#: Offsets tried between two looks at whether the k-d tree has become cheaper.
_CHUNK = 32
#: Rough costs, in units of "one surface voxel tried at one offset" (measured on x86-64):
#: a k-d tree query, building the tree (per target voxel), NumPy's overhead per offset.
_CHECKS_PER_QUERY = 300.0
_CHECKS_PER_TREE_VOXEL = 30.0
_CHECKS_PER_OFFSET = 2000.0


def _as_bool(x: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(x)
    return arr if arr.dtype == bool else arr != 0


def _spacing(spacing: SpacingLike, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    if isinstance(spacing, int | float | np.integer | np.floating):
        values = (float(spacing),) * ndim
    else:
        values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise ValueError(
            f"spacing must have one value per array axis: got {len(values)} values "
            f"{values} for masks with {ndim} dimensions"
        )
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be positive and finite (mm), got {values}")
    return values


def _validate_inputs(
    a: npt.ArrayLike, b: npt.ArrayLike, spacing: SpacingLike, roi: npt.ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...], np.ndarray | None]:
    a_arr, b_arr = _as_bool(a), _as_bool(b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"masks must have the same shape; got {a_arr.shape} and {b_arr.shape}")
    if a_arr.ndim not in (2, 3):
        raise ValueError(f"surface metrics need 2D or 3D masks, got shape {a_arr.shape}")
    roi_arr = None
    if roi is not None:
        roi_arr = _as_bool(roi)
        if roi_arr.shape != a_arr.shape:
            raise ValueError(
                f"roi must have the masks' shape; got roi {roi_arr.shape} and masks {a_arr.shape}"
            )
    return a_arr, b_arr, _spacing(spacing, a_arr.ndim), roi_arr


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Tight box of the non-zero voxels, or ``None`` if there are none."""
    box: list[slice] = []
    sub = mask
    for axis in range(mask.ndim):
        others = tuple(ax for ax in range(mask.ndim) if ax != axis)
        hits = np.flatnonzero(sub.any(axis=others))
        if hits.size == 0:
            return None
        lo, hi = int(hits[0]), int(hits[-1]) + 1
        box.append(slice(lo, hi))
        idx: list[slice] = [slice(None)] * mask.ndim
        idx[axis] = slice(lo, hi)
        sub = sub[tuple(idx)]  # later projections scan less
    return tuple(box)


def _surface_padded(padded: np.ndarray) -> np.ndarray:
    """Surface of a mask whose outermost voxels on every side are background."""
    core = tuple(slice(1, -1) for _ in range(padded.ndim))
    interior = padded[core].copy()
    for axis in range(padded.ndim):
        lo = list(core)
        hi = list(core)
        lo[axis] = slice(0, -2)
        hi[axis] = slice(2, None)
        interior &= padded[tuple(lo)]
        interior &= padded[tuple(hi)]
    out = padded.copy()
    out[core] &= ~interior
    return out


def mask_surface(mask: npt.ArrayLike) -> np.ndarray:
    """The surface voxels of a mask: inside voxels with a face neighbour outside.

    Parameters
    ----------
    mask
        2D or 3D mask; non-zero means inside. Outside the array counts as outside.

    Returns
    -------
    numpy.ndarray
        Boolean array of the mask's shape.

    Examples
    --------
    >>> m = np.zeros((5, 5), bool); m[1:4, 1:4] = True
    >>> mask_surface(m).astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 0, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]])
    """
    arr = _as_bool(mask)
    core = tuple(slice(1, -1) for _ in range(arr.ndim))
    return _surface_padded(np.pad(arr, 1))[core]


def _stencil(
    spacing: tuple[float, ...], size: int = _STENCIL_SIZE
) -> tuple[np.ndarray, np.ndarray, float]:
    """Integer voxel offsets within ``radius`` mm, sorted by length; returns
    ``(offsets (n, ndim), lengths in mm (n,), radius)``."""
    ndim = len(spacing)
    cell = float(np.prod(spacing))
    ball = math.pi if ndim == 2 else 4.0 * math.pi / 3.0
    radius = (size * cell / ball) ** (1.0 / ndim)
    reach = [int(radius // s) for s in spacing]
    grids = np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    lengths = np.sqrt(((offsets * np.asarray(spacing)) ** 2).sum(axis=1))
    keep = lengths <= radius
    order = np.argsort(lengths[keep], kind="stable")
    return offsets[keep][order], lengths[keep][order], radius


def _directed(
    source: np.ndarray,
    target: np.ndarray,
    flat_offsets: np.ndarray,
    lengths: np.ndarray,
    spacing: tuple[float, ...],
) -> np.ndarray:
    """Distance in mm from each voxel of ``source`` (flat indices into ``target``) to the
    nearest true voxel of ``target`` (a padded boolean array, flattened).

    Offsets are tried in order of increasing length, so a voxel's first hit is its exact
    nearest target voxel. Voxels still without a hit when the offsets run out, or when
    trying more offsets would cost more than looking them up, go to a k-d tree.
    """
    out = np.full(source.size, np.inf)
    flat = target.ravel()
    n_target = int(np.count_nonzero(flat))
    if source.size == 0 or n_target == 0:
        return out
    # Gathers read ``grid[reach + off:]`` at ``active``, i.e. voxel ``active - reach + reach
    # + off``: no index arithmetic per offset. A found voxel is parked at ``dead``, whose
    # every offset lands in the background appended to the grid, so it cannot be found
    # again; parked voxels are dropped from time to time rather than at every offset.
    reach = int(np.abs(flat_offsets).max()) if flat_offsets.size else 0
    grid = np.concatenate([flat, np.zeros(2 * reach + 1, bool)])
    index = np.int32 if grid.size < 2**31 - 1 else np.int64
    dead = flat.size
    active: np.ndarray = (source - reach).astype(index)
    where: np.ndarray = np.arange(source.size, dtype=index)
    hit_buf = np.empty(source.size, bool)
    steps = list(zip(flat_offsets.tolist(), lengths.tolist(), strict=True))
    n = source.size  # voxels in ``active``, parked ones included
    parked = 0
    for start in range(0, len(steps), _CHUNK):
        n_before = n - parked
        for off, length in steps[start : start + _CHUNK]:
            hit = np.take(grid[reach + off :], active, out=hit_buf[:n])
            found = np.flatnonzero(hit)
            if found.size:
                out[where[found]] = length
                active[found] = dead
                parked += found.size
                if parked == n:
                    return out
                if 4 * parked > n:
                    keep = active != dead
                    active, where = active[keep], where[keep]
                    n, parked = active.size, 0
        left = len(steps) - start - _CHUNK
        if left <= 0:
            break
        # costs in units of one voxel tried at one offset
        live = n - parked
        next_chunk = _CHUNK * n
        saved = _CHECKS_PER_QUERY * (n_before - live)  # if the next chunk finds as many
        finish = left * (_CHECKS_PER_OFFSET + n)
        tree = _CHECKS_PER_TREE_VOXEL * n_target + _CHECKS_PER_QUERY * live
        if next_chunk > saved and finish > tree:
            break
    keep = active != dead
    active, where = active[keep] + reach, where[keep]
    from scipy.spatial import cKDTree

    scale = np.asarray(spacing)
    tgt = np.stack(np.unravel_index(np.flatnonzero(flat), target.shape), axis=1) * scale
    src = np.stack(np.unravel_index(active, target.shape), axis=1) * scale
    tree = cKDTree(tgt, leafsize=64, balanced_tree=False, compact_nodes=False)
    out[where] = tree.query(src, k=1)[0]
    return out


@dataclass(frozen=True)
class SurfaceMetrics:
    """Surface-distance metrics of one pair of masks (mm, except ``nsd``).

    Attributes
    ----------
    hd
        Hausdorff distance (maximum of both directed distance sets).
    hd95
        Maximum of the two directed 95th percentiles.
    assd
        Average symmetric surface distance.
    nsd
        Normalised surface Dice at ``tolerance_mm``, in ``[0, 1]``.
    tolerance_mm
        The NSD tolerance.
    """

    hd: float
    hd95: float
    assd: float
    nsd: float
    tolerance_mm: float


@dataclass(frozen=True, eq=False)
class SurfaceDistances:
    """Both directed surface-distance sets of a pair of masks, in mm.

    Attributes
    ----------
    a_to_b
        For each surface voxel of ``a`` (in C order), the distance to the nearest surface
        voxel of ``b``; ``inf`` when ``b`` has no surface.
    b_to_a
        The same from ``b`` to ``a``.
    """

    a_to_b: np.ndarray
    b_to_a: np.ndarray

    @property
    def both_empty(self) -> bool:
        """Whether neither mask has a surface voxel (both empty)."""
        return self.a_to_b.size == 0 and self.b_to_a.size == 0

    def hausdorff(self, percentile: float = 100.0) -> float:
        """``max(P_p(a_to_b), P_p(b_to_a))``, linear interpolation; 0.0 if both are
        empty, ``inf`` if exactly one is."""
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        values = []
        for d in (self.a_to_b, self.b_to_a):
            if d.size == 0:
                continue
            if percentile == 100.0 or np.isinf(d[0]):  # inf: the other surface is empty
                values.append(float(d.max()))
            else:
                values.append(float(np.percentile(d, percentile)))
        return max(values) if values else 0.0

    def assd(self) -> float:
        """Mean of both directed sets together; 0.0 if both are empty, ``inf`` if one is."""
        n = self.a_to_b.size + self.b_to_a.size
        if n == 0:
            return 0.0
        return float((self.a_to_b.sum() + self.b_to_a.sum()) / n)

    def surface_dice(self, tolerance_mm: float) -> float:
        """Share of surface voxels within ``tolerance_mm`` of the other surface; 1.0 if
        both are empty, 0.0 if exactly one is."""
        tol = _tolerance(tolerance_mm)
        n = self.a_to_b.size + self.b_to_a.size
        if n == 0:
            return 1.0
        close = np.count_nonzero(self.a_to_b <= tol) + np.count_nonzero(self.b_to_a <= tol)
        return float(close) / n

    def metrics(self, tolerance_mm: float = 1.0) -> SurfaceMetrics:
        """HD, HD95, ASSD and NSD at ``tolerance_mm`` from these distances."""
        return SurfaceMetrics(
            hd=self.hausdorff(100.0),
            hd95=self.hausdorff(95.0),
            assd=self.assd(),
            nsd=self.surface_dice(tolerance_mm),
            tolerance_mm=float(tolerance_mm),
        )


def _tolerance(tolerance_mm: float) -> float:
    tol = float(tolerance_mm)
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tolerance_mm must be finite and >= 0, got {tolerance_mm}")
    return tol


def surface_distances(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    spacing: SpacingLike = None,
    *,
    roi: npt.ArrayLike | None = None,
) -> SurfaceDistances:
    """Directed distances between the surfaces of two masks, both ways, in mm.

    Parameters
    ----------
    a, b
        2D or 3D masks of the same shape; non-zero means inside.
    spacing
        Voxel size in mm per array axis (a number: isotropic; ``None``: 1 mm).
    roi
        Optional mask: surfaces are found on the whole masks, then only surface voxels
        inside ``roi`` are kept (as MONAI's ``mask`` argument does).

    Returns
    -------
    SurfaceDistances
        ``a_to_b`` and ``b_to_a``; their methods give HD, HD95, ASSD and NSD.

    Raises
    ------
    ValueError
        If the shapes differ, the masks are not 2D or 3D, or the spacing is invalid.

    Examples
    --------
    >>> a = np.zeros((1, 6, 6), bool); a[0, 1:3, 1:3] = True
    >>> b = np.zeros_like(a); b[0, 1:3, 3:5] = True
    >>> d = surface_distances(a, b, spacing=(3.0, 1.0, 0.5))
    >>> d.a_to_b.tolist(), d.b_to_a.tolist()
    ([1.0, 0.5, 1.0, 0.5], [0.5, 1.0, 0.5, 1.0])
    """
    a_arr, b_arr, sp, roi_arr = _validate_inputs(a, b, spacing, roi)
    box = _bounding_box(a_arr | b_arr)
    if box is None:
        empty = np.zeros(0)
        return SurfaceDistances(empty, empty)
    offsets, lengths, _ = _stencil(sp)
    pad = [int(np.abs(offsets[:, ax]).max()) + 1 for ax in range(a_arr.ndim)]
    widths = [(p, p) for p in pad]
    surf_a = _surface_padded(np.pad(a_arr[box], widths))
    surf_b = _surface_padded(np.pad(b_arr[box], widths))
    if roi_arr is not None:
        roi_pad = np.pad(roi_arr[box], widths)
        surf_a &= roi_pad
        surf_b &= roi_pad
    strides = np.array([s // surf_a.itemsize for s in surf_a.strides])
    flat_offsets = offsets @ strides
    src_a = np.flatnonzero(surf_a)
    src_b = np.flatnonzero(surf_b)
    return SurfaceDistances(
        a_to_b=_directed(src_a, surf_b, flat_offsets, lengths, sp),
        b_to_a=_directed(src_b, surf_a, flat_offsets, lengths, sp),
    )


def surface_metrics(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    spacing: SpacingLike = None,
    *,
    tolerance_mm: float = 1.0,
    roi: npt.ArrayLike | None = None,
) -> SurfaceMetrics:
    """HD, HD95, ASSD and NSD from one computation of the surface distances.

    Parameters
    ----------
    a, b
        2D or 3D masks of the same shape; non-zero means inside.
    spacing
        Voxel size in mm per array axis (a number: isotropic; ``None``: 1 mm).
    tolerance_mm
        NSD tolerance in mm.
    roi
        Optional mask restricting which surface voxels count (see
        :func:`surface_distances`).

    Returns
    -------
    SurfaceMetrics
        Distances in mm; two empty masks give 0.0 and NSD 1.0, one empty mask gives
        ``inf`` and NSD 0.0.

    Raises
    ------
    ValueError
        If the shapes differ, the masks are not 2D or 3D, the spacing is invalid or the
        tolerance is negative.

    Examples
    --------
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> b = np.zeros_like(a); b[2:6, 2:7] = True
    >>> m = surface_metrics(a, b, spacing=(1.0, 2.0), tolerance_mm=1.0)
    >>> m.hd, m.hd95, round(m.assd, 4), round(m.nsd, 4)
    (2.0, 2.0, 0.3846, 0.8462)
    """
    tol = _tolerance(tolerance_mm)
    return surface_distances(a, b, spacing, roi=roi).metrics(tol)


def hausdorff(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    spacing: SpacingLike = None,
    percentile: float = 100.0,
    *,
    roi: npt.ArrayLike | None = None,
) -> float:
    """Hausdorff distance in mm between the surfaces of two masks, or its ``percentile``.

    ``max(P_p(d(A→B)), P_p(d(B→A)))`` with linear interpolation between ranks; see
    the module docstring for the surface definition.

    Parameters
    ----------
    a, b
        2D or 3D masks of the same shape; non-zero means inside.
    spacing
        Voxel size in mm per array axis (a number: isotropic; ``None``: 1 mm).
    percentile
        In ``[0, 100]``; 100 is the maximum (classical Hausdorff), 95 gives HD95.
    roi
        Optional mask restricting which surface voxels count.

    Returns
    -------
    float
        mm; 0.0 when both masks are empty, ``inf`` when exactly one is.

    Raises
    ------
    ValueError
        If the shapes differ, the masks are not 2D or 3D, the spacing is invalid or the
        percentile is outside ``[0, 100]``.

    Examples
    --------
    >>> a = np.zeros((8, 8), bool); a[2:4, 2:4] = True
    >>> b = np.zeros_like(a); b[2:4, 2:4] = True; b[7, 7] = True
    >>> round(hausdorff(a, b, spacing=(0.5, 0.5)), 4)  # (7, 7) to (3, 3)
    2.8284
    >>> hausdorff(a, np.zeros_like(a))
    inf
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return surface_distances(a, b, spacing, roi=roi).hausdorff(percentile)


def hd95(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    spacing: SpacingLike = None,
    *,
    roi: npt.ArrayLike | None = None,
) -> float:
    """95th-percentile Hausdorff distance in mm: :func:`hausdorff` with ``percentile=95``.

    The larger of the two directed 95th percentiles (MONAI's definition), not the 95th
    percentile of both sets pooled.

    Examples
    --------
    >>> a = np.zeros((30, 30), bool); a[5:25, 5:25] = True
    >>> b = a.copy(); b[0, 0] = True  # one stray voxel
    >>> hausdorff(a, b), hd95(a, b)
    (7.0710678118654755, 0.0)
    """
    return hausdorff(a, b, spacing, 95.0, roi=roi)


def assd(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    spacing: SpacingLike = None,
    *,
    roi: npt.ArrayLike | None = None,
) -> float:
    """Average symmetric surface distance in mm: the mean of the distances of every
    surface voxel of each mask to the other surface, both sets pooled.

    0.0 when both masks are empty, ``inf`` when exactly one is.

    Examples
    --------
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> b = np.zeros_like(a); b[2:6, 2:7] = True
    >>> round(assd(a, b), 4)  # 6 of the 26 surface voxels are 1 mm off
    0.2308
    """
    return surface_distances(a, b, spacing, roi=roi).assd()


def surface_dice(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    tolerance_mm: float,
    spacing: SpacingLike = None,
    *,
    roi: npt.ArrayLike | None = None,
) -> float:
    """Normalised surface Dice (NSD): the share of both surfaces within ``tolerance_mm``
    of the other surface.

    Every surface voxel counts once (MONAI's default ``use_subvoxels=False``); DeepMind's
    ``surface-distance`` weights surface elements by their area instead.

    Returns
    -------
    float
        In ``[0, 1]``; 1.0 when both masks are empty, 0.0 when exactly one is.

    Examples
    --------
    >>> a = np.zeros((8, 8), bool); a[2:6, 2:6] = True
    >>> b = np.zeros_like(a); b[2:6, 2:7] = True
    >>> round(surface_dice(a, b, tolerance_mm=0.5), 4)  # 20 of 26 surface voxels
    0.7692
    """
    tol = _tolerance(tolerance_mm)
    return surface_distances(a, b, spacing, roi=roi).surface_dice(tol)
