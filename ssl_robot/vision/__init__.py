"""Offline vision pretext tasks on the shared trainer, and their one evaluation protocol.

Modules by role (after lightly): `data` (IDX reader, Fashion-MNIST, unlabelled image
pools), `encoders` (the one conv encoder family), `augment` (the one augmentation module,
pure torch), `heads` (classifiers, projectors, decoder), `losses` (NT-Xent, InfoNCE,
masked reconstruction), `pretext` (one module per method, each a `Task` of the shared
trainer), `evaluate` (frozen features -> linear probe and k-NN at 1/10/100 % of the
labels, next to random init and supervised training).
"""
from __future__ import annotations

from ssl_robot.vision.errors import VisionError  # noqa: F401
