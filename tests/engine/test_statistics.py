"""Transformer statistics of known parameters, the warnings, and the table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from stn import transforms as T
from stn.engine import statistics as D
from stn.layers import ParallelSpatialTransformers, SpatialTransformer

SIZE = (8, 8)  # pixel centres at ±1/8, ±3/8, ±5/8, ±7/8: a zoom out by 2 reads exactly 3/4 outside


def stats(transform, rows, **options):
    params = torch.tensor(rows, dtype=torch.float64)
    return D.transformer_stats(T.get(transform, **options), params, SIZE, SIZE)


def test_zoom_out_by_two():
    s = stats("affine", [[2, 0, 0, 0, 2, 0]])
    assert s["stn_scale_mean"] == pytest.approx(2)
    assert s["stn_anisotropy_mean"] == pytest.approx(1)
    assert s["stn_rotation_mean"] == pytest.approx(0)
    assert s["stn_shear_mean"] == pytest.approx(0)
    assert s["stn_translation_mean"] == pytest.approx(0)
    assert s["stn_outside_share"] == pytest.approx(0.75)
    assert s["stn_outside_samples"] == 1
    assert s["stn_reflection_share"] == 0 and s["stn_collapse_share"] == 0
    # every grid point p reads 2p: it lies |p| from where the identity reads
    centres = (2 * np.arange(8) + 1) / 8 - 1
    x, y = np.meshgrid(centres, centres)
    assert s["stn_displacement_mean"] == pytest.approx(np.hypot(x, y).mean())


def test_rotation_and_spread():
    angles = torch.tensor([math.radians(30), math.radians(90)], dtype=torch.float64)
    params = T.Similarity.from_angle(angles, torch.ones(2, dtype=torch.float64), torch.zeros(2, 2))
    s = D.transformer_stats("similarity", params, SIZE, SIZE)
    assert s["stn_rotation_mean"] == pytest.approx(60)
    assert s["stn_rotation_std"] == pytest.approx(30)  # population spread of {30, 90}
    assert s["stn_scale_mean"] == pytest.approx(1) and s["stn_scale_std"] == pytest.approx(0, abs=1e-12)
    assert s["stn_anisotropy_mean"] == pytest.approx(1)
    assert s["stn_shear_mean"] == pytest.approx(0, abs=1e-9)
    # 90° maps pixel centres of a square onto pixel centres; 30° sends the corners outside
    values = D.per_sample("similarity", params, SIZE, SIZE)
    assert values["outside"][1] == 0 and values["outside"][0] > 0


def test_reflection_anisotropy_shear_translation():
    s = stats("affine", [[-1, 0, 0.3, 0, 1, -0.4]])
    assert s["stn_reflection_share"] == 1 and s["stn_collapse_share"] == 0
    assert s["stn_scale_mean"] == pytest.approx(1)
    assert s["stn_translation_mean"] == pytest.approx(0.5)
    s = stats("affine", [[2, 0, 0, 0, 0.5, 0], [1, 1, 0, 0, 1, 0]])
    assert s["stn_anisotropy_mean"] == pytest.approx((4 + (3 + 5**0.5) / 2) / 2)  # 1 and φ² for the shear
    values = D.per_sample("affine", torch.tensor([[1.0, 1, 0, 0, 1, 0]]), SIZE, SIZE)
    assert float(values["shear"]) == pytest.approx(45)  # axes' images (1, 0) and (1, 1)
    assert float(values["scale"]) == pytest.approx(1)


def test_collapse():
    s = stats("affine", [[0.1, 0, 0, 0, 0.1, 0], [1, 0, 0, 0, 1, 0]])
    assert s["stn_collapse_share"] == 0.5  # det 0.01 < COLLAPSE_DET; the identity is fine
    assert s["stn_scale_mean"] == pytest.approx(0.55)
    assert s["stn_reflection_share"] == 0 and s["stn_outside_share"] == 0


def test_projective_uses_the_linear_map_at_the_centre():
    # Identity plus a perspective row: at the centre the map is p / (v·p + 1), derivative I - 0 = I
    s = stats("projective", [[1, 0, 0, 0, 1, 0, 0.3, 0]])
    assert s["stn_scale_mean"] == pytest.approx(1)
    # with a shift t, the derivative at 0 is I - t vᵀ
    values = D.per_sample("projective", torch.tensor([[1, 0, 0.5, 0, 1, 0, 0.4, 0]], dtype=torch.float64), SIZE, SIZE)
    assert float(values["det"]) == pytest.approx(1 - 0.5 * 0.4)


def test_tps_known_offsets():
    tps = T.get("tps", grid_size=3)
    shift = torch.tensor([[0.25, 0.0] * 9], dtype=torch.float64)  # every control point moved right by 1/4
    s = D.transformer_stats(tps, shift, SIZE, SIZE)
    assert s["stn_tps_offset_max"] == pytest.approx(0.25) and s["stn_tps_offset_mean"] == pytest.approx(0.25)
    assert s["stn_tps_bending"] == pytest.approx(0, abs=1e-9)  # an affine map does not bend
    assert s["stn_outside_share"] == pytest.approx(1 / 8)  # the last column (7/8 + 1/4 > 1) reads outside
    zoom = tps.control_points(dtype=torch.float64).reshape(1, -1)  # offsets c: reads 2c, a zoom out by 2
    assert D.transformer_stats(tps, zoom, SIZE, SIZE)["stn_outside_share"] == pytest.approx(0.75)
    one = torch.zeros(1, 18, dtype=torch.float64)
    one[0, 8:10] = torch.tensor([0.3, 0.4])  # only the centre point moves, by 0.5
    s = D.transformer_stats(tps, one, SIZE, SIZE)
    assert s["stn_tps_offset_max"] == pytest.approx(0.5) and s["stn_tps_offset_mean"] == pytest.approx(0.5 / 9)
    # bending energy of one moved point: |d|² times its diagonal entry of the inverse system (numpy)
    c = np.array([(x, y) for y in (-1, 0, 1) for x in (-1, 0, 1)], dtype=float)
    r2 = ((c[:, None] - c[None]) ** 2).sum(-1)
    kernel = np.where(r2 > 0, r2 * np.log(np.where(r2 > 0, r2, 1)), 0)
    p = np.hstack([np.ones((9, 1)), c])
    system = np.block([[kernel, p], [p.T, np.zeros((3, 3))]])
    assert s["stn_tps_bending"] == pytest.approx(0.25 * np.linalg.inv(system)[4, 4])
    assert s["stn_tps_bending"] > 0


def test_align_corners_moves_the_edge():
    # 3x3: centres at ±2/3 without align_corners (edges at ±1); at ±1 with it (edges at ±1.5)
    shift = torch.tensor([[0.4, 0.0]])
    without = D.per_sample("translation", shift, (3, 3), (3, 3), align_corners=False)
    assert float(without["outside"]) == pytest.approx(1 / 3)  # 2/3 + 0.4 > 1
    assert float(D.per_sample("translation", shift, (3, 3), (3, 3), align_corners=True)["outside"]) == 0


def test_bounded_families_report_pinning():
    s = stats("translation", [[10.0, 0.0]], max_shift=0.5)
    assert s["stn_pinned_share"] == 0.5  # tanh(10) at the bound, tanh(0) not
    s = stats("attention", [[-10.0, 0, 0], [0.0, 0, 0]], scale_range=(0.5, 2.0))
    assert s["stn_pinned_share"] == 0.5
    assert "stn_pinned_share" not in stats("affine", [[1, 0, 0, 0, 1, 0]])
    assert stats("tps", [[0.0] * 32], max_offset=0.2)["stn_pinned_share"] == 0


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        D.transformer_stats("affine", torch.zeros(2, 4), SIZE, SIZE)
    with pytest.raises(ValueError, match="at least one"):
        D.transformer_stats("affine", torch.zeros(0, 6), SIZE, SIZE)
    with pytest.raises(ValueError, match="input size"):
        D.transformer_stats("affine", torch.zeros(1, 6), SIZE, (0, 4))
    with pytest.raises(ValueError, match="images"):
        D.measure(nn.Identity(), torch.zeros(3, 8, 8))


class Fixed(nn.Module):
    """A localisation 'net' whose prediction is a constant (the bias of fc_loc)."""

    def forward(self, x):
        return x.new_zeros(x.shape[0], 1)


def fixed_transformer(params, cls=SpatialTransformer, **kwargs):
    st = cls(localization=Fixed(), in_features=1, **kwargs)
    with torch.no_grad():
        st.fc_loc.bias.copy_(torch.as_tensor(params, dtype=torch.float32).flatten())
    return st


def test_measure_finds_transformers_and_restores_modes():
    model = nn.Sequential(
        fixed_transformer([2, 0, 0, 0, 2, 0], transform="affine"),
        nn.Dropout(),
        fixed_transformer([[1, 0, 0], [0.5, 0, 0]], ParallelSpatialTransformers, k=2, transform="attention"),
    )
    model.train()
    model[1].eval()  # a mixed state must come back as it was
    stats = D.measure(model, torch.randn(5, 1, SIZE[0], SIZE[1]), batch_size=2)
    assert model.training and model[0].training and not model[1].training
    assert stats["stn1_outside_share"] == pytest.approx(0.75) and stats["stn1_scale_mean"] == pytest.approx(2)
    assert stats["stn2_scale_mean"] == pytest.approx(1) and stats["stn2_displacement_mean"] == 0
    assert stats["stn3_scale_mean"] == pytest.approx(0.5) and stats["stn3_outside_share"] == 0
    assert D.prefixes(stats) == ["stn1", "stn2", "stn3"]
    single = D.measure(fixed_transformer([1, 0, 0, 0, 1, 0]), torch.randn(2, 3, 6, 6))
    assert set(D.prefixes(single)) == {"stn"} and single["stn_displacement_mean"] == 0
    assert D.measure(nn.Conv2d(1, 1, 1), torch.randn(2, 1, 4, 4)) == {}


class Unreachable(nn.Module):
    def forward(self, x):
        raise AssertionError("measure ran the model past its last transformer")


def test_measure_stops_after_the_last_transformer():
    model = nn.Sequential(fixed_transformer([0.5, 0, 0, 0, 0.5, 0]), Unreachable())
    assert D.measure(model, torch.randn(3, 1, 8, 8), batch_size=2)["stn_scale_mean"] == pytest.approx(0.5)


def identity_stats():
    return stats("affine", [[1, 0, 0, 0, 1, 0]] * 4)


def test_identity_raises_nothing_for_a_few_epochs_then_says_it_has_not_moved():
    monitor = D.Monitor()
    for _ in range(D.IDENTITY_EPOCHS - 1):
        assert monitor.update(identity_stats()) == []
    (warning,) = monitor.update(identity_stats())
    assert "not moved from the identity" in warning and "--stn-lr-scale" in warning
    assert monitor.update(identity_stats()) == []  # once per condition


def test_a_learning_transformer_raises_nothing():
    # zooms in a little, rotates a few degrees, shifts: what the demo and MNIST transformers do
    rows = [[0.8, -0.05, 0.02, 0.04, 0.85, -0.03], [0.9, 0.03, -0.05, -0.02, 0.8, 0.04]]
    monitor = D.Monitor()
    assert all(monitor.update(stats("affine", rows)) == [] for _ in range(10))


@pytest.mark.parametrize(
    ("family", "rows", "options", "expected", "hint"),
    [
        ("affine", [[2, 0, 0, 0, 2, 0]], {}, "reads outside the image", "--stn-fill black"),
        ("affine", [[0.1, 0, 0, 0, 0.1, 0]], {}, "collapsing", "--stn-lr-scale"),
        ("affine", [[-1, 0, 0, 0, 1, 0]], {}, "mirrors", "--stn-lr-scale"),
        ("translation", [[5.0, -5.0]], {"max_shift": 0.05}, "pinned", "--stn-lr-scale"),
        ("tps", [[0.0, 0.0] * 16], {}, "not moved", "--stn-lr-scale"),
    ],
)
def test_each_warning_fires_once(family, rows, options, expected, hint):
    monitor = D.Monitor()
    new = []
    for epoch in range(1, D.IDENTITY_EPOCHS + 1):
        new += monitor.update({"epoch": epoch, **stats(family, rows, **options)})
    assert len(new) == 1, new
    assert expected in new[0] and hint in new[0] and "\n" not in new[0] and new[0].startswith("epoch ")
    assert monitor.update(stats(family, rows, **options)) == []
    assert monitor.warnings == new
    assert D.warnings_for([stats(family, rows, **options)] * D.IDENTITY_EPOCHS) == [new[0].split(": ", 1)[1]]


def test_hints_follow_the_run_settings():
    zoom = [stats("affine", [[2, 0, 0, 0, 2, 0]])]
    (plain,) = D.warnings_for(zoom)
    assert "--stn-fill black" in plain and "e.g. 0.1" in plain
    (tuned,) = D.warnings_for(zoom, fill="black", lr_scale=0.1)
    assert "--stn-fill" not in tuned and "now 0.1; e.g. 0.01" in tuned and "bounded family" in tuned


def test_warnings_are_per_transformer():
    zoom = {k.replace("stn_", "stn2_"): v for k, v in stats("affine", [[2, 0, 0, 0, 2, 0]]).items()}
    fine = {k.replace("stn_", "stn1_"): v for k, v in stats("affine", [[0.9, 0, 0, 0, 0.9, 0]]).items()}
    (warning,) = D.Monitor().update({**fine, **zoom})
    assert warning.startswith("stn2 reads outside")


def test_format_table():
    rows = [
        {"epoch": 1, **stats("affine", [[1, 0, 0, 0, 1, 0], [2, 0, 0, 0, 2, 0]])},
        {"epoch": 2, "test_accuracy": 50.0},
    ]
    text = D.format_table(rows)
    lines = text.splitlines()
    assert lines[0] == "stn"
    assert lines[1].split()[:3] == ["epoch", "scale", "aniso"]
    assert "1.50±0.50" in lines[2] and "37.5%" in lines[2]
    assert lines[3].split()[0] == "2" and set(lines[3].split()[1:]) == {"-"}
    assert "offset" not in text and "pinned" not in text  # columns no row holds are left out
    assert D.format_table([{"epoch": 1}]) == "no transformer statistics"


FAMILIES = [*T.names(), "field-diffeomorphic"]


def family(name):
    return T.get("field", diffeomorphic=True) if name == "field-diffeomorphic" else T.get(name)


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_has_the_statistics_family_keys_names(name):
    transform = family(name)
    params = transform.identity(4, dtype=torch.float64) + 0.02 * torch.randn(4, transform.num_params).double()
    values = D.per_sample(transform, params, SIZE, SIZE)
    common = {"outside", "displacement"} | ({"pinned"} & set(values))
    assert set(values) == common | set(D.family_keys(transform)) and D.family_keys(transform)
    assert all(v.shape == (4,) and torch.isfinite(v).all() for v in values.values())
    stats = D.transformer_stats(transform, params, SIZE, SIZE)
    assert D.prefixes(stats) == ["stn"] and all(math.isfinite(v) for v in stats.values())


def test_field_displacement_and_folding():
    field = T.get("field", grid_size=2)  # nodes at the corners: the field is bilinear between them
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    shift = torch.tensor([[0.25, 0.0] * 4], dtype=torch.float64)  # every point reads 0.25 to its right
    mirror = (corners * torch.tensor([-2.0, 0.0], dtype=torch.float64)).reshape(1, -1)  # x -> -x
    s = D.transformer_stats(field, torch.cat((shift, mirror)), SIZE, SIZE)
    centres = (2 * torch.arange(8) + 1) / 8 - 1
    assert s["stn_field_max"] == pytest.approx(2 * float(centres.max()))  # the mirror moves x by 2|x|
    values = D.per_sample(field, torch.cat((shift, mirror)), SIZE, SIZE)
    assert values["field_max"][0] == pytest.approx(0.25) and values["displacement"][0] == pytest.approx(0.25)
    assert values["folding"].tolist() == [0.0, 1.0]  # the mirror reverses every cell
    assert s["stn_folding_share"] == pytest.approx(0.5)
    # a fold down the middle: x -> -2x left of 0 (the nodes at x = -1 read x = 2), x -> x right of it
    fold = torch.zeros(1, 2 * 3 * 3, dtype=torch.float64)
    fold.view(3, 3, 2)[:, 0, 0] = 3.0
    folding = D.per_sample(T.get("field", grid_size=3), fold, SIZE, SIZE)["folding"]
    # of the 7 columns of cells between the 8 grid columns, the 3 left of x = -1/8 are reversed, and
    # so is the one across x = 0 (from -1/8 to 1/8 it reads from 1/4 back to 1/8): 4 of 7 fold
    assert folding.item() == pytest.approx(4 / 7)


def test_polar_origin():
    origins = torch.tensor([[0.3, 0.4], [0.0, -0.1]], dtype=torch.float64)
    s = D.transformer_stats("polar", origins, SIZE, SIZE)
    assert s["stn_origin_mean"] == pytest.approx(0.3) and s["stn_origin_std"] == pytest.approx(0.2)
    assert "stn_scale_mean" not in s and "stn_tps_offset_max" not in s


def test_format_table_shows_the_field_and_polar_columns():
    field = T.get("field", grid_size=2)
    rows = [{"epoch": 1, **D.transformer_stats(field, torch.full((2, 8), 0.1), SIZE, SIZE)}]
    lines = D.format_table(rows).splitlines()
    assert lines[1].split()[-3:] == ["field", "max", "folded"] and lines[2].split()[-2:] == ["0.141", "0.0%"]
    rows = [{"epoch": 1, **D.transformer_stats("polar", torch.tensor([[0.3, 0.4]]), SIZE, SIZE)}]
    lines = D.format_table(rows).splitlines()
    assert lines[1].split()[-1] == "origin" and lines[2].split()[-1] == "0.50±0.00"


# ------------------------------------------------------------------------------------ volumes
CUBE = (8, 8, 8)


def stats3d(transform, rows, **options):
    params = torch.tensor(rows, dtype=torch.float64)
    return D.transformer_stats(T.get(transform, **options), params, CUBE, CUBE)


def affine3d(linear, shift=(0.0, 0.0, 0.0)):
    """``affine3d`` parameters of a 3x3 linear part and a shift."""
    return [v for row, t in zip(linear, shift, strict=True) for v in (*row, t)]


def test_volume_zoom_out_by_two():
    s = stats3d("affine3d", [affine3d([[2, 0, 0], [0, 2, 0], [0, 0, 2]])])
    assert s["stn_scale_mean"] == pytest.approx(2)  # the cube root of det = 8
    assert s["stn_anisotropy_mean"] == pytest.approx(1) and s["stn_shear_mean"] == pytest.approx(0)
    assert s["stn_rotation_mean"] == pytest.approx(0, abs=1e-6) and s["stn_translation_mean"] == 0
    assert s["stn_outside_share"] == pytest.approx(7 / 8)  # inside only where |x|, |y|, |z| <= 1/2
    assert s["stn_outside_samples"] == 1 and s["stn_reflection_share"] == 0 and s["stn_collapse_share"] == 0
    centres = (2 * np.arange(8) + 1) / 8 - 1
    x, y, z = np.meshgrid(centres, centres, centres)
    assert s["stn_displacement_mean"] == pytest.approx(np.sqrt(x**2 + y**2 + z**2).mean())


def test_volume_rotation_is_the_angle_about_any_axis():
    from stn.transforms import rotation_matrix

    axes = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.6, 0.0, 0.8]], dtype=torch.float64)
    angles = torch.tensor([30.0, 90.0, 150.0], dtype=torch.float64)
    rotvec = axes * torch.deg2rad(angles).unsqueeze(1)
    s = D.transformer_stats("rigid3d", torch.cat((rotvec, torch.full((3, 3), 0.1, dtype=torch.float64)), 1), CUBE, CUBE)
    assert s["stn_rotation_mean"] == pytest.approx(90) and s["stn_rotation_std"] == pytest.approx(2400**0.5)
    assert s["stn_scale_mean"] == pytest.approx(1) and s["stn_anisotropy_mean"] == pytest.approx(1)
    assert s["stn_shear_mean"] == pytest.approx(0, abs=1e-6) and s["stn_translation_mean"] == pytest.approx(0.03**0.5)
    # a rotation scaled anisotropically: the angle is that of the rotation nearest to the map
    stretched = rotation_matrix(rotvec[:1]) @ torch.diag(torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64))
    values = D.per_sample("affine3d", torch.tensor([affine3d(stretched[0].tolist())]), CUBE, CUBE)
    assert float(values["rotation"]) == pytest.approx(30) and float(values["anisotropy"]) == pytest.approx(4)
    assert float(values["scale"]) == pytest.approx(1) and float(values["shear"]) == pytest.approx(0, abs=1e-6)


def test_volume_shear_reflection_collapse():
    s = stats3d("affine3d", [affine3d([[1, 1, 0], [0, 1, 0], [0, 0, 1]])])
    assert s["stn_shear_mean"] == pytest.approx(45)  # the images (1, 0, 0) and (1, 1, 0) of the x and y axes
    assert s["stn_scale_mean"] == pytest.approx(1) and s["stn_reflection_share"] == 0
    s = stats3d(
        "affine3d", [affine3d([[-1, 0, 0], [0, 1, 0], [0, 0, 1]]), affine3d([[0.2, 0, 0], [0, 0.2, 0], [0, 0, 1]])]
    )
    assert s["stn_reflection_share"] == 0.5 and s["stn_collapse_share"] == 0.5  # det 0.04 < COLLAPSE_DET
    assert s["stn_shear_mean"] == pytest.approx(0)
    s = stats3d("translation3d", [[0.3, 0.0, 0.4]])
    assert s["stn_translation_mean"] == pytest.approx(0.5) and s["stn_scale_mean"] == pytest.approx(1)


def test_volume_field_displacement_and_folding():
    field = T.get("field3d", grid_size=2)  # nodes at the cube's corners: trilinear between them
    corners = T.base_grid((2, 2, 2), align_corners=True, dtype=torch.float64).reshape(-1, 3)
    shift = torch.tensor([[0.0, 0.0, 0.25] * 8], dtype=torch.float64)  # every point reads 0.25 deeper
    mirror = (corners * torch.tensor([0.0, 0.0, -2.0], dtype=torch.float64)).reshape(1, -1)  # z -> -z
    values = D.per_sample(field, torch.cat((shift, mirror)), CUBE, CUBE)
    assert values["field_max"][0] == pytest.approx(0.25) and values["displacement"][0] == pytest.approx(0.25)
    assert values["folding"].tolist() == [0.0, 1.0]  # the mirror reverses every cell
    s = D.transformer_stats(field, torch.cat((shift, mirror)), CUBE, CUBE)
    assert s["stn_folding_share"] == pytest.approx(0.5) and s["stn_field_max"] == pytest.approx(2 * 7 / 8)
    assert D.family_keys("field3d") == ("field_max", "folding")


@pytest.mark.parametrize("name", [*T.names(3), "field3d-diffeomorphic"])
def test_every_volume_family_has_its_statistics(name):
    transform = T.get("field3d", grid_size=3, diffeomorphic=True) if name.endswith("-diffeomorphic") else T.get(name)
    params = transform.identity(4, dtype=torch.float64) + 0.02 * torch.randn(4, transform.num_params).double()
    values = D.per_sample(transform, params, (6, 7, 8), (6, 7, 8))
    assert set(values) == {"outside", "displacement", *D.family_keys(transform)} and D.family_keys(transform)
    assert all(v.shape == (4,) and torch.isfinite(v).all() for v in values.values())
    stats = D.transformer_stats(transform, params, (6, 7, 8), (6, 7, 8), align_corners=True)
    assert D.prefixes(stats) == ["stn"] and all(math.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        D.per_sample(transform, params, (6, 7), (6, 7))


def test_volume_statistics_of_many_samples_are_computed_in_pieces():
    params = T.get("affine3d").identity(40, dtype=torch.float64) + 0.1 * torch.randn(40, 12).double()
    whole = D.per_sample("affine3d", params, (4, 4, 4), (4, 4, 4))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(D, "_GRID_POINTS", 3 * 64)  # three volumes at a time
        pieces = D.per_sample("affine3d", params, (4, 4, 4), (4, 4, 4))
    assert all(torch.allclose(whole[key], pieces[key], rtol=1e-12, atol=1e-12) for key in whole)


def test_measure_takes_volumes():
    model = nn.Sequential(fixed_transformer(affine3d([[2, 0, 0], [0, 2, 0], [0, 0, 2]]), transform="affine3d"))
    stats = D.measure(model, torch.randn(5, 1, *CUBE), batch_size=2)
    assert stats["stn_scale_mean"] == pytest.approx(2) and stats["stn_outside_share"] == pytest.approx(7 / 8)
    with pytest.raises(ValueError, match=r"volumes \(N, C, D, H, W\)"):
        D.measure(model, torch.randn(5, 1, 2, *CUBE))


@pytest.mark.parametrize(
    ("rows", "expected", "hint", "not_hinted"),
    [
        ([affine3d([[2, 0, 0], [0, 2, 0], [0, 0, 2]])], "reads outside the volume", "--stn-fill black", "bounded"),
        (
            [affine3d([[0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]])],
            "less than 5% of the volume",
            "--stn-lr-scale",
            "bounded",
        ),
        ([affine3d([[-1, 0, 0], [0, 1, 0], [0, 0, 1]])], "mirrors the volume", "rigid3d", "attention"),
    ],
)
def test_volume_warnings_name_volumes_and_volume_families(rows, expected, hint, not_hinted):
    (warning,) = D.warnings_for([stats3d("affine3d", rows)], ndim=3)
    assert expected in warning and hint in warning and not_hinted not in warning
    with pytest.raises(ValueError, match="ndim"):
        D.Monitor(ndim=4)
