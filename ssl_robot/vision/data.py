"""Image data for the vision pretexts: the IDX reader, Fashion-MNIST, unlabelled pools.

Pools are uint8 tensors [N, C, H, W] of square images (centre-cropped, area-resized):
Fashion-MNIST train images without their labels, frames of the package's labelled
datasets (`ssl_robot.dataset`), any folder of PNG/JPG images, or a .npy array.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ssl_robot.vision import VisionError

#: Where Debian's dataset-fashion-mnist package installs the files.
FASHION_MNIST_DIR = Path('/usr/share/datasets/fashion-mnist')
FASHION_MNIST_CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal',
                         'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp')

#: IDX type codes -> big-endian numpy dtypes.
_IDX_DTYPES = {0x08: np.dtype('>u1'), 0x09: np.dtype('>i1'), 0x0B: np.dtype('>i2'),
               0x0C: np.dtype('>i4'), 0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def read_idx(path: Path | str) -> np.ndarray:
    """Read an IDX file (MNIST's format), gzipped or not.

    Header: two zero bytes, a type code, the number of dimensions, then one big-endian
    uint32 per dimension; the data follow in C order.

    Raises:
        VisionError: When the file is missing, truncated or not IDX.
    """
    path = Path(path)
    if not path.exists():
        raise VisionError(f'{path}: no such IDX file')
    opener = gzip.open if path.suffix == '.gz' else open
    try:
        with opener(path, 'rb') as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise VisionError(f'{path}: cannot read: {exc}') from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise VisionError(f'{path}: not an IDX file (bad magic number)')
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise VisionError(f'{path}: truncated IDX header')
    shape = tuple(int(d) for d in np.frombuffer(raw, '>u4', count=ndim, offset=4))
    count = int(np.prod(shape)) if shape else 0
    if len(raw) - header != count * dtype.itemsize:
        raise VisionError(f'{path}: IDX data has {len(raw) - header} bytes, shape {shape} '
                          f'needs {count * dtype.itemsize}')
    data = np.frombuffer(raw, dtype, count=count, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder('='))


def fashion_mnist(split: str = 'train', *, root: Path | str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images uint8 [N, 28, 28] and labels int64 [N] of 'train' or 'test'.

    Raises:
        VisionError: When the files are missing (install Debian's dataset-fashion-mnist,
            e.g. with `make eval-data`).
    """
    if split not in ('train', 'test'):
        raise VisionError(f"fashion-mnist split {split!r}: use 'train' or 'test'")
    root = Path(root) if root is not None else FASHION_MNIST_DIR
    prefix = 'train' if split == 'train' else 't10k'
    images_path = root / f'{prefix}-images-idx3-ubyte.gz'
    labels_path = root / f'{prefix}-labels-idx1-ubyte.gz'
    if not images_path.exists() or not labels_path.exists():
        raise VisionError(f"Fashion-MNIST not found in {root}: install Debian's "
                          f'dataset-fashion-mnist (make eval-data, or '
                          f'tools/install_eval_data.sh)')
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise VisionError(f'{root}: images {images.shape} and labels {labels.shape} '
                          f'do not match')
    return images, labels.astype(np.int64)


def to_square(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Centre-crop images to square, area-resize to `size`, convert to `channels`.

    Args:
        images: uint8 [N, H, W] or [N, H, W, C] (C 1 or 3, RGB order).
        size: Output side length.
        channels: 1 (grey, BT.601 luma) or 3.

    Returns:
        uint8 [N, channels, size, size].
    """
    import cv2
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise VisionError(f'images of shape {images.shape}: want [N, H, W] or [N, H, W, 1|3]')
    n, h, w, c = images.shape
    if h == w == size and c == channels:  # e.g. Fashion-MNIST at 28 px: nothing to do
        return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    out = np.empty((n, channels, size, size), np.uint8)
    for i in range(n):
        img = np.ascontiguousarray(images[i, top:top + side, left:left + side])
        if side != size:
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        img = img.reshape(size, size, -1)
        if channels == 1 and img.shape[-1] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None]
        elif channels == 3 and img.shape[-1] == 1:
            img = np.repeat(img, 3, axis=-1)
        out[i] = img.transpose(2, 0, 1)
    return out


def _read_image_folder(path: Path, limit: int | None) -> np.ndarray:
    import cv2
    files = sorted(p for p in path.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise VisionError(f'{path}: no {"/".join(IMAGE_SUFFIXES)} images in this folder')
    images, shape = [], None
    for file in files[:limit]:
        img = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if img is None:
            raise VisionError(f'{file}: not a readable image')
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        side = min(img.shape[:2])  # crop per image: folders may mix sizes
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        img = img[top:top + side, left:left + side]
        if shape is None:
            shape = img.shape
        elif img.shape != shape:
            img = cv2.resize(img, shape[1::-1], interpolation=cv2.INTER_AREA)
        images.append(img)
    return np.stack(images)


def load_pool(source: str | Path, *, image_size: int | None = None,
              channels: int | None = None, limit: int | None = None,
              seed: int = 0) -> torch.Tensor:
    """Load an unlabelled image pool as uint8 [N, C, S, S].

    Args:
        source: 'fashion-mnist' (train images, labels dropped), a labelled dataset
            directory (with meta.json; its frames), a folder of images, or a .npy array
            ([N, H, W] or [N, H, W, C]).
        image_size: Side length (default: 28 for Fashion-MNIST, else 64).
        channels: 1 or 3 (default: 1 for Fashion-MNIST, else 3).
        limit: Keep at most this many images (a fixed-seed random subset).
        seed: Seed of that subset.

    Raises:
        VisionError: When the source is missing, empty or unreadable.
    """
    source_str = str(source)
    if source_str == 'fashion-mnist':
        images = fashion_mnist('train')[0]
        default_size, default_channels = 28, 1
    else:
        path = Path(source)
        default_size, default_channels = 64, 3
        if not path.exists():
            raise VisionError(f'{path}: no such image source (want fashion-mnist, a dataset '
                              f'directory, an image folder or a .npy file)')
        if path.is_file() and path.suffix == '.npy':
            images = np.load(path, mmap_mode='r')
            if images.dtype != np.uint8:
                raise VisionError(f'{path}: want a uint8 array, got {images.dtype}')
        elif path.is_dir() and (path / 'meta.json').exists():
            from ssl_robot.dataset import DatasetError, LabelledDataset
            try:
                images = LabelledDataset.open(path).frames
            except DatasetError as exc:
                raise VisionError(f'{path}: cannot open the dataset: {exc}') from exc
        elif path.is_dir():
            images = _read_image_folder(path, None if limit is None else limit * 4)
        else:
            raise VisionError(f'{path}: not a .npy file or a directory')
    if len(images) == 0:
        raise VisionError(f'{source_str}: no images')
    if limit is not None and limit < len(images):
        idx = np.sort(np.random.default_rng(seed).choice(len(images), limit, replace=False))
        images = images[idx]
    size = int(image_size or default_size)
    chans = int(channels or default_channels)
    if chans not in (1, 3):
        raise VisionError(f'channels {chans}: use 1 or 3')
    return torch.from_numpy(to_square(np.asarray(images), size, chans))


def labelled_image_folder(path: Path | str, *, image_size: int = 32, channels: int = 3,
                          limit_per_class: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read a labelled image folder: one sub-folder per class, images inside (any depth).

    Args:
        path: The folder; its sub-folders, sorted by name, are the classes.
        image_size: Side length the images are centre-cropped and resized to.
        channels: 1 (grey) or 3 (RGB).
        limit_per_class: Keep at most this many images of each class (the first by name).

    Returns:
        (images uint8 [N, channels, S, S], labels int64 [N], class names).

    Raises:
        VisionError: When the folder is missing, has fewer than two classes with images,
            or holds an unreadable image.
    """
    path = Path(path)
    if not path.is_dir():
        raise VisionError(f'{path}: no such folder (want one sub-folder of images per class)')
    images, labels, names = [], [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob('*')):
            continue
        block = to_square(_read_image_folder(folder, limit_per_class), image_size, channels)
        images.append(block)
        labels.append(np.full(len(block), len(names), np.int64))
        names.append(folder.name)
    if len(names) < 2:
        raise VisionError(f'{path}: found {len(names)} class folder(s) with '
                          f'{"/".join(IMAGE_SUFFIXES)} images; want one sub-folder per class, '
                          f'at least two')
    return np.concatenate(images), np.concatenate(labels), tuple(names)


class ImagePool(Dataset):
    """A uint8 image tensor [N, C, H, W] as a dataset of single images."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def pixel_stats(images: torch.Tensor, *, sample: int = 5000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on [0, 1] pixels of (a fixed subset of) a uint8 pool."""
    x = images[:sample].float().div(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-3)
    return [round(float(m), 4) for m in mean], [round(float(s), 4) for s in std]
