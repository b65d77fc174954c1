"""The three pipelines: result formats, parity with running model + processor by hand, coordinates of forced
detections on a synthetic scene, batching, and loading from bare folders with trust_remote_code."""

import json
import math
import types

import numpy as np
import pytest
import torch
from PIL import Image
from shapely.geometry import Polygon
from transformers import pipeline

from scenetext.data.synthetic import SyntheticSceneConfig, render_scene_sample
from scenetext.data.synthetic_text import TextSampling
from scenetext.modeling.clip4str import Clip4StrForSceneTextRecognition
from scenetext.pipelines import DEFAULT_CROP_MARGIN, reading_order, rectify_region
from scenetext.pipelines.pipeline_clip4str import SceneTextRecognitionPipeline
from scenetext.processors.clip4str import Clip4StrProcessor
from scenetext.processors.tcm import TcmImageProcessor

from ..tiny_models import save_tiny_detector, save_tiny_recognizer

SCENE_CONFIG = SyntheticSceneConfig(
    # Words with ascenders in every casing (as tall as the font) and longer than tall, so that their DB kernels
    # survive the half-resolution map and their rectified crops lie along the text.
    text=TextSampling(word_probability=1.0, words=("hotel", "bakery", "kitchen", "dental", "black")),
    image_size=(200, 260),
    num_words=(3, 4),
    font_size=(24, 36),
    max_angle=20.0,
    distractors=(0, 0),
    blur_probability=0.0,
    noise_probability=0.0,
    jpeg_probability=0.0,
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Tiny random recognizer and detector folders with their processors and pipelines."""
    root = tmp_path_factory.mktemp("models")
    save_tiny_recognizer(root / "recognizer")
    image_processor = TcmImageProcessor(
        size={"shortest_edge": 128, "longest_edge": 256}, post_processing="mmocr"
    )
    save_tiny_detector(root / "detector", image_processor)
    return root / "recognizer", root / "detector"


@pytest.fixture(scope="module")
def scene():
    sample = render_scene_sample(3, seed=11, config=SCENE_CONFIG)
    quads = [np.asarray(polygon).reshape(4, 2) for polygon in sample["polygons"]]
    assert len(quads) >= 3
    return sample["image"].convert("RGB"), quads


def force_ground_truth(detector_pipeline, images, quads_per_image):
    """Replace the detector's output by the DB shrink map of the true word quads, at the resolution the
    pipeline's image processor gives these images; post-processing then has to map it back."""
    processor = detector_pipeline.image_processor
    shrink_map = processor(images, polygons=quads_per_image)["labels"]["shrink_map"]

    def forward(pixel_values, output_threshold_maps=True):
        assert pixel_values.shape[-2:] == shrink_map.shape[-2:]
        assert output_threshold_maps is False  # detection reads only the probability map
        return types.SimpleNamespace(prob_map=shrink_map[:, None])

    detector_pipeline.detector.forward = forward  # what the pipeline runs (on CPU, the optimized copy)


def ocr_pipeline_with_forced_detections(folders, images, quads_per_image):
    """The OCR pipeline of the tiny folders whose detector finds exactly `quads_per_image` in `images`."""
    recognizer_folder, detector_folder = folders
    ocr = pipeline(
        "ocr", model=detector_folder, recognizer=str(recognizer_folder), trust_remote_code=True, device="cpu"
    )
    force_ground_truth(ocr, images, quads_per_image)
    return ocr


def box_of(quad):
    return np.concatenate([quad.min(axis=0), quad.max(axis=0)])


def box_tolerance(quad, shrink_ratio=0.4, unclip_ratio=1.5):
    """Pixels a detected box may differ from the word's: a few for the half-resolution map, plus what DB's
    round trip leaves out. Targets shrink a word by D = A (1 - r^2) / L; post-processing grows the kernel by
    D' = A' x unclip_ratio / L', which falls short of D; a rotated word's axis-aligned box sees that gap up to
    sqrt(2) times. A coordinate-mapping bug (wrong scale or offset) is not absorbed by this bound."""
    word = Polygon(quad)
    shrink = word.area * (1 - shrink_ratio**2) / word.length
    kernel = word.buffer(-shrink, join_style="mitre")
    regrow = kernel.area * unclip_ratio / kernel.length
    return 4 + math.sqrt(2) * max(shrink - regrow, 0.0)


def test_recognition_matches_model_and_processor_by_hand(folders):
    recognizer_folder, _ = folders
    reader = pipeline("scene-text-recognition", model=recognizer_folder, trust_remote_code=True, device="cpu")
    crops = [
        Image.fromarray(np.random.RandomState(i).randint(0, 255, (24, 80, 3), dtype=np.uint8))
        for i in range(3)
    ]
    model = Clip4StrForSceneTextRecognition.from_pretrained(recognizer_folder).eval()
    processor = Clip4StrProcessor.from_pretrained(recognizer_folder)

    def by_hand(batches):
        # Official decoding depends on the batch: it runs until every sample has emitted [E], and the
        # refinement reads the cross-modal predictions of all those steps. Compare like with like.
        results = []
        for batch in batches:
            with torch.no_grad():
                decoded = processor.batch_decode(model(processor(images=batch)["pixel_values"]).logits)
            results += [
                [{"generated_text": text, "score": pytest.approx(score, rel=1e-5, abs=1e-12)}]
                for text, score in zip(decoded["generated_text"], decoded["scores"], strict=True)
            ]
        return results

    batched = reader(crops, batch_size=2)
    single = [reader(crop) for crop in crops]
    from_arrays = reader([np.asarray(crop) for crop in crops])
    assert batched == by_hand([crops[:2], crops[2:]])
    expected = by_hand([[crop] for crop in crops])
    assert single == expected
    assert from_arrays == expected


def test_recognizer_answers_to_image_to_text_and_reads_files(folders, tmp_path):
    recognizer_folder, _ = folders
    crop = Image.fromarray(np.random.RandomState(5).randint(0, 255, (24, 80, 3), dtype=np.uint8))
    crop.save(tmp_path / "crop.png")
    reader = pipeline("image-to-text", model=recognizer_folder, trust_remote_code=True, device="cpu")
    assert type(reader).__name__ == "SceneTextRecognitionPipeline"
    assert reader(str(tmp_path / "crop.png")) == reader(crop)


def test_detection_maps_forced_ground_truth_back_to_word_boxes(folders, scene):
    _, detector_folder = folders
    image, quads = scene
    detector = pipeline("scene-text-detection", model=detector_folder, trust_remote_code=True, device="cpu")
    force_ground_truth(detector, [image], [quads])
    results = detector(image)

    assert len(results) == len(quads)
    assert all(result["label"] == "text" and 0.5 < result["score"] <= 1 for result in results)
    assert all(set(result["box"]) == {"xmin", "ymin", "xmax", "ymax"} for result in results)
    assert all(isinstance(value, int) for result in results for value in result["box"].values())
    for quad in quads:
        truth = box_of(quad)
        found = min(
            results,
            key=lambda r: np.abs(np.array(list(r["box"].values())) - truth).sum(),
        )
        box = np.array([found["box"][key] for key in ("xmin", "ymin", "xmax", "ymax")])
        assert np.abs(box - truth).max() <= box_tolerance(quad), (box, truth)
        assert len(found["polygon"]) == 4


def test_detection_batches_give_the_results_of_single_images(folders, scene):
    _, detector_folder = folders
    image, quads = scene
    smaller = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    smaller_quads = [quad * 0.75 for quad in quads]
    detector = pipeline("scene-text-detection", model=detector_folder, trust_remote_code=True, device="cpu")
    alone = []
    for picture, truth in ((image, quads), (smaller, smaller_quads)):
        force_ground_truth(detector, [picture], [truth])
        alone.append(detector(picture))
    force_ground_truth(detector, [image, smaller], [quads, smaller_quads])
    assert detector([image, smaller], batch_size=2) == alone


def test_ocr_reads_forced_regions_in_reading_order_with_the_recognizer(folders, scene):
    recognizer_folder, _ = folders
    image, quads = scene
    ocr = ocr_pipeline_with_forced_detections(folders, [image], [quads])
    results = ocr(np.asarray(image), recognizer_batch_size=2)

    assert [set(result) for result in results] == [
        {"polygon", "box", "text", "score", "detection_score"}
    ] * len(quads)
    boxes = np.array([[r["box"][key] for key in ("xmin", "ymin", "xmax", "ymax")] for r in results])
    truth = np.array([box_of(quad) for quad in quads])
    assert np.abs(np.sort(boxes, axis=0) - np.sort(truth, axis=0)).max() <= max(map(box_tolerance, quads))
    assert boxes.tolist() == [boxes[i].tolist() for i in reading_order(boxes.tolist())]
    # the texts are the recognizer's reading of each region's rectified crop
    reader = pipeline("scene-text-recognition", model=recognizer_folder, trust_remote_code=True, device="cpu")
    crops = [
        rectify_region(np.asarray(image), np.array(result["polygon"]), DEFAULT_CROP_MARGIN)
        for result in results
    ]
    assert [result["text"] for result in results] == [out[0]["generated_text"] for out in reader(crops)]


def test_ocr_polygon_mode_rectifies_contours_of_every_word(folders, scene):
    recognizer_folder, _ = folders
    image, quads = scene
    ocr = ocr_pipeline_with_forced_detections(folders, [image], [quads])
    results = ocr(image, box_type="poly", crop_margin=0.3)
    assert len(results) == len(quads)
    reader = pipeline("scene-text-recognition", model=recognizer_folder, trust_remote_code=True, device="cpu")
    crops = [rectify_region(np.asarray(image), np.array(result["polygon"]), 0.3) for result in results]
    assert all(crop.shape[1] > crop.shape[0] for crop in crops)  # words lie along the strips
    assert [result["text"] for result in results] == [out[0]["generated_text"] for out in reader(crops)]


def test_pipelines_run_in_the_requested_dtype(folders, scene):
    recognizer_folder, detector_folder = folders
    image, _ = scene
    reader = pipeline(
        "scene-text-recognition",
        model=recognizer_folder,
        trust_remote_code=True,
        device="cpu",
        dtype="bfloat16",
    )
    assert reader.model.dtype == torch.bfloat16
    (reading,) = reader(image.crop((0, 0, 90, 30)))
    assert isinstance(reading["generated_text"], str) and 0 <= reading["score"] <= 1
    ocr = pipeline(
        "ocr",
        model=detector_folder,
        recognizer=str(recognizer_folder),
        trust_remote_code=True,
        device="cpu",
        dtype=torch.bfloat16,
    )
    assert ocr.model.dtype == torch.bfloat16 and ocr.recognizer.dtype == torch.bfloat16
    results = ocr(image, threshold=0.0, min_score=0.0)
    assert len(results) >= 1 and all(isinstance(result["text"], str) for result in results)


def test_a_scene_without_text_gives_no_results(folders, scene):
    image, _ = scene
    ocr = ocr_pipeline_with_forced_detections(folders, [image], [[]])
    assert ocr(image) == []


def test_ocr_without_recognizer_is_a_clear_error(folders):
    _, detector_folder = folders
    with pytest.raises(ValueError, match="needs a recognizer"):
        pipeline("ocr", model=detector_folder, trust_remote_code=True, device="cpu")


def test_recognition_rejects_unknown_input_types(folders):
    recognizer_folder, _ = folders
    reader = SceneTextRecognitionPipeline(
        model=Clip4StrForSceneTextRecognition.from_pretrained(recognizer_folder),
        processor=Clip4StrProcessor.from_pretrained(recognizer_folder),
        device="cpu",
    )
    with pytest.raises(
        TypeError, match="image path, URL, bytes, PIL image, numpy array or torch tensor, got float"
    ):
        reader(3.5)


@pytest.mark.slow
def test_pipelines_load_from_bare_folders_in_an_isolated_process(folders, scene, tmp_path, run_isolated):
    recognizer_folder, detector_folder = folders
    image, _ = scene
    image.save(tmp_path / "scene.png")
    crop = image.crop((0, 0, 120, 40))
    crop.save(tmp_path / "crop.png")
    settings = {"threshold": 0.0, "min_score": 0.0}
    expected = {
        "recognition": pipeline(
            "scene-text-recognition", model=recognizer_folder, trust_remote_code=True, device="cpu"
        )([crop, crop], batch_size=2),
        "detection": pipeline(
            "scene-text-detection", model=detector_folder, trust_remote_code=True, device="cpu"
        )(image, **settings),
        "ocr": pipeline(
            "ocr",
            model=detector_folder,
            recognizer=str(recognizer_folder),
            trust_remote_code=True,
            device="cpu",
        )(image, **settings),
    }
    stdout = run_isolated(
        f"""
        import json
        from transformers import pipeline
        recognizer, detector = {str(recognizer_folder)!r}, {str(detector_folder)!r}
        scene, crop = {str(tmp_path / "scene.png")!r}, {str(tmp_path / "crop.png")!r}
        settings = {settings!r}
        out = {{
            "recognition": pipeline("scene-text-recognition", model=recognizer, trust_remote_code=True,
                                    device="cpu")([crop, crop], batch_size=2),
            "detection": pipeline("scene-text-detection", model=detector, trust_remote_code=True,
                                  device="cpu")(scene, **settings),
            "ocr": pipeline("ocr", model=detector, recognizer=recognizer, trust_remote_code=True,
                            device="cpu")(scene, **settings),
        }}
        print(json.dumps(out))
        """
    )
    actual = json.loads(stdout.strip().splitlines()[-1])
    assert actual == json.loads(json.dumps(expected))
    assert len(actual["detection"]) >= 1 and len(actual["ocr"]) == len(actual["detection"])


def test_save_pretrained_declares_the_tasks_and_copies_their_code(folders):
    recognizer_folder, detector_folder = folders
    recognizer_config = json.loads((recognizer_folder / "config.json").read_text())
    detector_config = json.loads((detector_folder / "config.json").read_text())
    assert recognizer_config["custom_pipelines"]["image-to-text"]["impl"] == (
        "pipeline_clip4str.SceneTextRecognitionPipeline"
    )
    assert sorted(detector_config["custom_pipelines"]) == ["ocr", "scene-text-detection"]
    for name in ("pipeline_tcm.py", "pipeline_ocr.py", "cropping_ocr.py", "reading_order_ocr.py"):
        assert (detector_folder / name).is_file()
