"""The edge-object experiment's measurement: a centre crop loses objects near the edges."""

from __future__ import annotations

from training.demo.naflex_edges import centre_crop, edge_scenes, evaluate_demo


def test_edge_scenes_put_the_object_where_a_centre_crop_cuts():
    for tall in (False, True):
        for s in edge_scenes(20, seed=0, tall=tall):
            o = s.objects[0]
            along = o.y if tall else o.x  # position along the long side
            assert along <= 0.06 or along >= 0.94


def test_centre_crop_loses_edge_objects_that_the_whole_image_keeps():
    res = evaluate_demo(n=48)
    for shape in ("wide 1:3", "tall 3:1"):
        whole, crop = res[shape]["whole (squash)"], res[shape]["centre-crop"]
        assert whole["zero_shot_colour_acc"] > 0.9  # the demo model knows colours
        assert crop["zero_shot_colour_acc"] < 0.4  # the object is gone from the crop
        assert whole["mAP"] - crop["mAP"] > 0.5


def test_centre_crop_is_the_central_square():
    from PIL import Image

    img = Image.new("RGB", (300, 100))
    assert centre_crop(img).size == (100, 100)
