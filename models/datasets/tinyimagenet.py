"""TinyImageNet (Le & Yang, CS231n 2015): 64x64 RGB, 200 classes, 100k train / 10k val images.

Loaded from the official folder tree, extracted from
http://cs231n.stanford.edu/tiny-imagenet-200.zip::

    tiny-imagenet-200/wnids.txt                 the 200 class ids; line order = class index
    tiny-imagenet-200/words.txt                 "<wnid>\\t<name>, <synonym>, ..." (all of WordNet)
    tiny-imagenet-200/train/<wnid>/images/*.JPEG
    tiny-imagenet-200/val/images/*.JPEG
    tiny-imagenet-200/val/val_annotations.txt   "<file>\\t<wnid>\\t<x0>\\t<y0>\\t<x1>\\t<y1>"

Our "test" split is the official *validation* set, labelled by ``val_annotations.txt``; the
official ``test/`` folder ships without labels, so it cannot measure accuracy and is never read.
Class names are the first name before the comma in ``words.txt``, in ``wnids.txt`` order. The
official 200 (wnid, name) pairs are also embedded below, so ``dataset_info("tinyimagenet")``
answers before any data is loaded (configs record the labels); a folder whose ``wnids.txt``
differs (a subset, say) loads with its own classes in ``ImageData.info``.

``--data-root`` may name the folder holding ``tiny-imagenet-200`` or that folder itself; without
it, ``$CSRP_DATA_DIR/tinyimagenet``, ``./data/tinyimagenet`` and the cache are searched.

Cost: there is no array version, so every load decodes the JPEGs with PIL (converted to RGB; a
few are grey). A thread pool overlaps the decoding (PIL releases the GIL), but the 100k training
images still take about 40 s on 2 CPU cores (measured: 5,000 64x64 JPEGs in 1.9 s, files in
the page cache; longer from a cold disk), and the split is held as uint8 [100000, 3, 64, 64]
(1.2 GB). The 10k-image test split takes a few seconds.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from models.datasets.base import DatasetInfo, ImageData
from models.datasets.locations import candidate_roots, missing
from models.datasets.registry import register_dataset
from models.errors import UserError

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
SIZE = 64
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_CHUNK = 256  # images per thread-pool task
_PROGRESS_FROM = 2000  # show a progress bar for splits at least this large

# The official wnids.txt, in order, with each class's first name from words.txt.
_OFFICIAL_CLASSES = """
n02124075 Egyptian cat
n04067472 reel
n04540053 volleyball
n04099969 rocking chair
n07749582 lemon
n01641577 bullfrog
n02802426 basketball
n09246464 cliff
n07920052 espresso
n03970156 plunger
n03891332 parking meter
n02106662 German shepherd
n03201208 dining table
n02279972 monarch
n02132136 brown bear
n04146614 school bus
n07873807 pizza
n02364673 guinea pig
n04507155 umbrella
n03854065 organ
n03838899 oboe
n03733131 maypole
n01443537 goldfish
n07875152 potpie
n03544143 hourglass
n09428293 seashore
n03085013 computer keyboard
n02437312 Arabian camel
n07614500 ice cream
n03804744 nail
n04265275 space heater
n02963159 cardigan
n02486410 baboon
n01944390 snail
n09256479 coral reef
n02058221 albatross
n04275548 spider web
n02321529 sea cucumber
n02769748 backpack
n02099712 Labrador retriever
n07695742 pretzel
n02056570 king penguin
n02281406 sulphur butterfly
n01774750 tarantula
n02509815 lesser panda
n03983396 pop bottle
n07753592 banana
n04254777 sock
n02233338 cockroach
n04008634 projectile
n02823428 beer bottle
n02236044 mantis
n03393912 freight car
n07583066 guacamole
n04074963 remote control
n01629819 European fire salamander
n09332890 lakeside
n02481823 chimpanzee
n03902125 pay-phone
n03404251 fur coat
n09193705 alp
n03637318 lampshade
n04456115 torch
n02666196 abacus
n03796401 moving van
n02795169 barrel
n02123045 tabby
n01855672 goose
n01882714 koala
n02917067 bullet train
n02988304 CD player
n04398044 teapot
n02843684 birdhouse
n02423022 gazelle
n02669723 academic gown
n04465501 tractor
n02165456 ladybug
n03770439 miniskirt
n02099601 golden retriever
n04486054 triumphal arch
n02950826 cannon
n03814639 neck brace
n04259630 sombrero
n03424325 gasmask
n02948072 candle
n03179701 desk
n03400231 frying pan
n02206856 bee
n03160309 dam
n01984695 spiny lobster
n03977966 police van
n03584254 iPod
n04023962 punching bag
n02814860 beacon
n01910747 jellyfish
n04596742 wok
n03992509 potter's wheel
n04133789 sandal
n03937543 pill bottle
n02927161 butcher shop
n01945685 slug
n02395406 hog
n02125311 cougar
n03126707 crane
n04532106 vestment
n02268443 dragonfly
n02977058 cash machine
n07734744 mushroom
n03599486 jinrikisha
n04562935 water tower
n03014705 chest
n04251144 snorkel
n04356056 sunglasses
n02190166 fly
n03670208 limousine
n02002724 black stork
n02074367 dugong
n04285008 sports car
n04560804 water jug
n04366367 suspension bridge
n02403003 ox
n07615774 ice lolly
n04501370 turnstile
n03026506 Christmas stocking
n02906734 broom
n01770393 scorpion
n04597913 wooden spoon
n03930313 picket fence
n04118538 rugby ball
n04179913 sewing machine
n04311004 steel arch bridge
n02123394 Persian cat
n04070727 refrigerator
n02793495 barn
n02730930 apron
n02094433 Yorkshire terrier
n04371430 swimming trunks
n04328186 stopwatch
n03649909 lawn mower
n04417672 thatch
n03388043 fountain
n01774384 black widow
n02837789 bikini
n07579787 plate
n04399382 teddy
n02791270 barbershop
n03089624 confectionery
n02814533 beach wagon
n04149813 scoreboard
n07747607 orange
n03355925 flagpole
n01983481 American lobster
n04487081 trolleybus
n03250847 drumstick
n03255030 dumbbell
n02892201 brass
n02883205 bow tie
n03100240 convertible
n02415577 bighorn
n02480495 orangutan
n01698640 American alligator
n01784675 centipede
n04376876 syringe
n03444034 go-kart
n01917289 brain coral
n01950731 sea slug
n03042490 cliff dwelling
n07711569 mashed potato
n04532670 viaduct
n03763968 military uniform
n07768694 pomegranate
n02999410 chain
n03617480 kimono
n06596364 comic book
n01768244 trilobite
n02410509 bison
n03976657 pole
n01742172 boa constrictor
n03980874 poncho
n02808440 bathtub
n02226429 grasshopper
n02231487 walking stick
n02085620 Chihuahua
n01644900 tailed frog
n02129165 lion
n02699494 altar
n03837869 obelisk
n02815834 beaker
n07720875 bell pepper
n02788148 bannister
n02909870 bucket
n03706229 magnetic compass
n07871810 meat loaf
n03447447 gondola
n02113799 standard poodle
n12267677 acorn
n03662601 lifeboat
n02841315 binoculars
n07715103 cauliflower
n02504458 African elephant
"""
OFFICIAL_WNIDS: tuple[str, ...] = tuple(
    line.split(" ", 1)[0] for line in _OFFICIAL_CLASSES.strip().splitlines())
_OFFICIAL_NAMES = dict(line.split(" ", 1) for line in _OFFICIAL_CLASSES.strip().splitlines())

INFO = DatasetInfo(
    name="tinyimagenet", num_classes=200, in_channels=3, image_size=SIZE,
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),  # the usual ImageNet statistics
    labels=tuple(_OFFICIAL_NAMES[w] for w in OFFICIAL_WNIDS),
)


def _find_tree(root: Path | None) -> tuple[Path | None, list[Path]]:
    looked: list[Path] = []
    for base in candidate_roots(root, INFO.name):
        for where in (base / "tiny-imagenet-200", base):
            looked.append(where)
            if (where / "wnids.txt").is_file():
                return where, looked
    return None, looked


def _read_wnids(tree: Path) -> list[str]:
    path = tree / "wnids.txt"
    wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
             if line.strip()]
    if not wnids:
        raise UserError(f"{path}: empty (expected one class id per line)")
    if len(set(wnids)) != len(wnids):
        raise UserError(f"{path}: lists a class id twice")
    return wnids


def _class_names(tree: Path, wnids: list[str]) -> tuple[str, ...]:
    """First name before the comma in words.txt; the embedded name, or the wnid, if absent."""
    found: dict[str, str] = {}
    words = tree / "words.txt"
    if words.is_file():
        wanted = set(wnids)
        with words.open(encoding="utf-8") as handle:
            for line in handle:
                wnid, _, text = line.rstrip("\n").partition("\t")
                if wnid in wanted and text.strip():
                    found[wnid] = text.split(",")[0].strip()
    return tuple(found.get(w) or _OFFICIAL_NAMES.get(w) or w for w in wnids)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _train_samples(tree: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for index, wnid in enumerate(wnids):
        folder = tree / "train" / wnid / "images"
        if not folder.is_dir():
            raise UserError(f"dataset 'tinyimagenet': {folder} is missing (wnids.txt lists "
                            f"{wnid}); re-extract {URL}")
        found = _images_in(folder)
        paths += found
        labels += [index] * len(found)
    return paths, labels


def _val_samples(tree: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    annotations = tree / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise UserError(f"dataset 'tinyimagenet': {annotations} is missing (the test split is the "
                        "official validation set, labelled by that file); re-extract " + URL)
    index = {wnid: i for i, wnid in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    lines = annotations.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()  # tab-separated: file, wnid, bounding box
        if len(fields) < 2:
            raise UserError(f"{annotations}:{number}: expected '<file>\\t<wnid>\\t<bbox...>'")
        if fields[1] not in index:
            raise UserError(f"{annotations}:{number}: class {fields[1]!r} is not in wnids.txt")
        paths.append(tree / "val" / "images" / fields[0])
        labels.append(index[fields[1]])
    return paths, labels


def _decode(path: Path) -> np.ndarray:
    """One image as uint8 [3, 64, 64] RGB."""
    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:  # missing, truncated or not an image
        raise UserError(f"{path}: cannot read image ({error})") from None
    if array.shape != (SIZE, SIZE, 3):
        raise UserError(f"{path}: {array.shape[1]}x{array.shape[0]} image; TinyImageNet images "
                        f"are {SIZE}x{SIZE}")
    return array.transpose(2, 0, 1)


def _decode_all(paths: list[Path], description: str) -> np.ndarray:
    """Decode ``paths`` into one uint8 [N, 3, 64, 64] array with a thread pool."""
    out = np.empty((len(paths), 3, SIZE, SIZE), dtype=np.uint8)

    def work(start: int) -> int:
        stop = min(start + _CHUNK, len(paths))
        for i in range(start, stop):
            out[i] = _decode(paths[i])
        return stop - start

    workers = min(8, 2 * (os.cpu_count() or 1))  # I/O and decoding overlap across threads
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    with progress, ThreadPoolExecutor(max_workers=workers) as pool:
        task = progress.add_task(description, total=len(paths),
                                 visible=len(paths) >= _PROGRESS_FROM)
        try:
            for done in pool.map(work, range(0, len(paths), _CHUNK)):
                progress.advance(task, done)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return out


@register_dataset(INFO)
def load_tinyimagenet(split: str, root: Path | None) -> ImageData:
    tree, looked = _find_tree(root)
    if tree is None:
        raise missing(INFO.name, looked,
                      f"download {URL}, unzip it and pass --data-root FOLDER (the folder holding "
                      "tiny-imagenet-200/, or that folder)")
    wnids = _read_wnids(tree)
    names = _class_names(tree, wnids)
    info = INFO
    if tuple(wnids) != OFFICIAL_WNIDS or names != INFO.labels:
        info = replace(INFO, num_classes=len(wnids), labels=names)
    paths, labels = (_train_samples if split == "train" else _val_samples)(tree, wnids)
    if not paths:
        raise UserError(f"dataset 'tinyimagenet': no {split} images under {tree}")
    images = _decode_all(paths, f"decode tinyimagenet {split}")
    return ImageData(info, split, torch.from_numpy(images), torch.tensor(labels),
                     source=str(tree))
